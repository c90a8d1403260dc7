"""Running out of memory is a message and exit 3, never a traceback, and nothing is changed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.cli.common import OUT_OF_MEMORY_EXIT
from tests.conftest import SEEDS2_CONFIG

runner = CliRunner()


def folder_state(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_out_of_memory(monkeypatch, target: str, args: list[str]):
    def exhausted(*_args, **_kwargs):
        raise MemoryError
    monkeypatch.setattr(target, exhausted)
    return runner.invoke(app, args)


def test_assign_out_of_memory_says_so_and_leaves_no_folder(monkeypatch, tmp_path: Path,
                                                           example_files) -> None:
    out = tmp_path / "run"
    result = run_out_of_memory(
        monkeypatch, "evalkit.register.Register.create",
        ["assign", str(SEEDS2_CONFIG), "--pdus", str(example_files["pdus"]), "--staff",
         str(example_files["staff"]), "--out", str(out)])
    assert result.exit_code == OUT_OF_MEMORY_EXIT
    assert "ran out of memory" in result.output and "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


@pytest.mark.parametrize("target", ["evalkit.audit.verify.compute_assignment",
                                    "evalkit.audit.verify.turnover_differences_but_sequence"])
def test_verify_out_of_memory_changes_nothing(monkeypatch, fresh_run: Path, target: str) -> None:
    before = folder_state(fresh_run)
    result = run_out_of_memory(monkeypatch, target, ["verify", str(fresh_run)])
    assert result.exit_code == OUT_OF_MEMORY_EXIT, result.output
    assert "ran out of memory" in result.output
    assert folder_state(fresh_run) == before
