"""`evalkit demo`: every stage runs on the shipped example, and a rerun replaces the scratch run."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.register import Register
from tests.conftest import SEEDS2_CONFIG


@pytest.mark.slow
def test_demo_runs_every_stage_and_can_be_rerun(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["demo", str(tmp_path), "--config", str(SEEDS2_CONFIG)])
    assert result.exit_code == 0, result.output
    run = tmp_path / "demo"
    printed = "".join(result.output.split())      # paths may wrap in a narrow terminal
    for name in ["allocation.xlsx", "booking_windows.xlsx", "guidance.html", "site/index.html",
                 "monitoring.html", "analysis/report.html", "analysis/results.json"]:
        assert (run / name).is_file(), name
        if name != "analysis/results.json":
            assert str(run / name) in printed, name
    kinds = set(Register.open(run).events()["kind"])
    assert {"created", "exported", "published", "monitored", "analysed"} <= kinds
    results = json.loads((run / "analysis" / "results.json").read_text())
    assert results
    again = runner.invoke(app, ["demo", str(tmp_path), "--config", str(SEEDS2_CONFIG)])
    assert again.exit_code == 0, again.output
    assert "Demo done" in again.output
