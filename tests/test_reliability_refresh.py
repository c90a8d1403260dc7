"""Nothing goes stale: after enrol and transfer the booking windows are rebuilt; `evalkit
refresh` rebuilds every derived file from the register."""

from __future__ import annotations

import pandas as pd
from reliability_helpers import make_trial
from typer.testing import CliRunner

from evalkit.allocation.assign import run_assign
from evalkit.audit.verify import verify_allocation
from evalkit.cli import app

runner = CliRunner()


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_enrol_and_transfer_rebuild_booking_windows_and_refresh_rebuilds_all(tmp_path):
    run = run_assign(make_trial(tmp_path), out=tmp_path / "run").directory
    _ok("windows", str(run))
    _ok("enrol", str(run), "--staff", str(tmp_path / "joiners.csv"))
    _ok("transfer", str(run), "--staff-id", "S001", "--to-pdu", "P09")
    windows = pd.read_csv(run / "booking_windows.csv", dtype=str).set_index("staff_id")
    assert {"N001", "N002"} <= set(windows.index)  # the new starters are in the mail merge
    assert windows.at["S001", "pdu_code"] == "P09"  # the mover is listed under the new PDU
    (run / "booking_windows.csv").unlink()
    (run / "allocation.csv").write_text("tampered\n", encoding="utf-8")
    assert not verify_allocation(run).matches
    (run / "booking_windows.csv").write_text("", encoding="utf-8")  # refresh rebuilds what
    output = _ok("refresh", str(run))                                 # had been made
    assert "booking_windows.csv" in output.replace("\n", "")
    assert len(pd.read_csv(run / "booking_windows.csv")) == len(windows)
    report = verify_allocation(run)
    assert report.matches, report.differences
