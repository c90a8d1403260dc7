"""SQLite-style crash test: SIGKILL a real `evalkit` process at named points and at random
moments during assign, enrol, transfer and windows. Afterwards the folder is either absent or
sealed and verifiable, and re-running the command works."""

from __future__ import annotations

import random
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from reliability_helpers import evalkit, make_trial, popen
from typer.testing import CliRunner

from evalkit.allocation.assign import run_assign
from evalkit.audit.verify import verify_allocation
from evalkit.cli import app
from evalkit.register import Register

pytestmark = pytest.mark.slow
runner = CliRunner()
KILLED = -signal.SIGKILL
TURNOVER = {
    "enrol": ["--staff", "{trial}/joiners.csv"],
    "transfer": ["--staff-id", "S001", "--to-pdu", "P07"],
    "windows": [],
}
POINTS = [("enrol", "enrol:start"), ("enrol", "enrol:tables"), ("enrol", "enrol:before-commit"),
          ("enrol", "enrol:committed"), ("enrol", "exports:written"), ("enrol", "enrol:done"),
          ("transfer", "transfer:table"), ("transfer", "transfer:committed"),
          ("transfer", "exports:written"), ("windows", "windows:start"),
          ("windows", "windows:done")]


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> tuple[Path, Path]:
    """The synthetic design and a sealed run of it."""
    folder = tmp_path_factory.mktemp("kill")
    design = make_trial(folder)
    run = run_assign(design, out=folder / "sealed").directory
    return design, run


def _arguments(command: str, run: Path, trial_folder: Path) -> list[str]:
    return [command, str(run), *[a.format(trial=trial_folder) for a in TURNOVER[command]]]


def _assert_verifies(run: Path) -> None:
    report = verify_allocation(run)
    assert report.matches, report.differences


def _assert_rerun_works(command: str, run: Path, trial_folder: Path) -> None:
    result = runner.invoke(app, _arguments(command, run, trial_folder))
    already = "already" in result.output  # the killed run had committed: a clear refusal
    assert result.exit_code == 0 or (result.exit_code == 2 and already), result.output
    report = verify_allocation(run)
    assert report.matches, report.differences
    assert not any("interrupted" in n for n in report.notes), report.notes
    staff = pd.read_csv(run / "staff_allocation.csv", dtype=str)
    assert len(staff) == len(Register.open(run).table("staff_allocation"))


def _kill_at(point: tuple[str, str], trial: tuple[Path, Path], work: Path) -> tuple[str, Path, int]:
    command, step = point
    run = work / f"{command}_{step.replace(':', '_')}"
    shutil.copytree(trial[1], run)
    result = evalkit(*_arguments(command, run, trial[0].parent),
                     env={"EVALKIT_TEST_KILL_AT": step})
    return command, run, result.returncode


def test_kill_at_every_named_step_leaves_old_or_new_state(trial, tmp_path):
    with ThreadPoolExecutor(max_workers=3) as pool:
        outcomes = list(pool.map(lambda p: _kill_at(p, trial, tmp_path), POINTS))
    for (command, run, returncode), (_, step) in zip(outcomes, POINTS, strict=True):
        assert returncode == KILLED, f"{step}: the kill point was not reached ({returncode})"
        _assert_verifies(run)
        _assert_rerun_works(command, run, trial[0].parent)


def test_kill_during_assign_leaves_no_folder_or_a_complete_one(trial, tmp_path):
    design = trial[0]
    for step in ("assign:registered", "assign:staged"):
        out = tmp_path / step.replace(":", "_")
        result = evalkit("assign", design, "--out", out, env={"EVALKIT_TEST_KILL_AT": step})
        assert result.returncode == KILLED
        assert not out.exists()  # killed before the rename: no folder at all
        rerun = runner.invoke(app, ["assign", str(design), "--out", str(out)])
        assert rerun.exit_code == 0, rerun.output
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".{out.name}.")]
        _assert_verifies(out)


def test_kill_at_random_moments(trial, tmp_path):
    rng = random.Random(20261202)
    for index, command in enumerate(["enrol", "transfer", "windows", "assign"]):
        run = tmp_path / f"random{index}"
        if command == "assign":
            process = popen("assign", trial[0], "--out", run)
        else:
            shutil.copytree(trial[1], run)
            process = popen(*_arguments(command, run, trial[0].parent))
        time.sleep(rng.uniform(0.5, 3.0))
        process.send_signal(signal.SIGKILL)
        process.communicate()
        if command == "assign":
            if (run / "register.sqlite").exists():
                _assert_verifies(run)
            else:
                assert not run.exists() or not any(run.iterdir())
            continue
        _assert_verifies(run)
        _assert_rerun_works(command, run, trial[0].parent)


def test_killed_workers_and_a_killed_parent_beside_them(trial, tmp_path):
    """With the staff table and CSVs written by a forked worker (forced on the small trial):
    a killed worker is redone here, so the run completes and verifies; a parent killed while
    its worker writes leaves no folder, and the rerun cleans the staging folder."""
    design = trial[0]
    forced = {"EVALKIT_TEST_BESIDE_ROWS": "0"}
    out = tmp_path / "worker_killed"
    result = evalkit("assign", design, "--out", out,
                     env={**forced, "EVALKIT_TEST_KILL_AT": "assign:beside (worker)"})
    assert result.returncode == 0, result.stderr
    _assert_verifies(out)
    assert not any(p.name.endswith(".side.sqlite") for p in out.iterdir())
    checked = evalkit("verify", out,
                      env={**forced, "EVALKIT_TEST_KILL_AT": "verify:integrity (worker)"})
    assert checked.returncode == 0 and "identical allocation" in checked.stdout, checked.stderr
    out = tmp_path / "parent_killed"
    result = evalkit("assign", design, "--out", out,
                     env={**forced, "EVALKIT_TEST_KILL_AT": "assign:sealing"})
    assert result.returncode == KILLED
    assert not out.exists()
    rerun = evalkit("assign", design, "--out", out, env=forced)
    assert rerun.returncode == 0, rerun.stderr
    _assert_verifies(out)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".{out.name}.")]


def _kill_inside_a_transaction(register_file: Path) -> None:
    """A process that changes the register and is SIGKILLed before it commits (what a command
    killed mid-change leaves: a hot rollback journal beside the register)."""
    import subprocess
    import sys

    script = ("import os, signal, sqlite3, sys\n"
              "connection = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
              "connection.execute('PRAGMA cache_size = 1')\n"  # changed pages reach the file
              "connection.execute('BEGIN IMMEDIATE')\n"
              "connection.execute('UPDATE staff_allocation SET name = hex(randomblob(3000))')\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    process = subprocess.run([sys.executable, "-c", script, str(register_file)], check=False)
    assert process.returncode == KILLED
    assert register_file.with_name(register_file.name + "-journal").exists()


def test_verify_after_a_kill_inside_a_transaction_rolls_it_back(trial, tmp_path):
    """`verify` reads the register read-only, which cannot undo a hot journal: it lets SQLite
    roll the unfinished change back first (found by killing `enrol` at random moments)."""
    run = tmp_path / "hot"
    shutil.copytree(trial[1], run)
    before = Register.open(run).table("staff_allocation")
    _kill_inside_a_transaction(run / "register.sqlite")
    _assert_verifies(run)
    pd.testing.assert_frame_equal(Register.open(run, readonly=True).table("staff_allocation"),
                                  before)
    assert not (run / "register.sqlite-journal").exists()


def test_a_read_only_folder_with_a_hot_journal_gets_a_clear_message(trial, tmp_path,
                                                                   monkeypatch):
    """Without write access the journal cannot be undone: a clear error (the CLI prints it
    and exits 2), not sqlite's. No write access is simulated by skipping the roll-back: the
    tests may run as root."""
    from evalkit import register as register_module
    from evalkit.errors import EvalkitError

    run = tmp_path / "hot_read_only"
    shutil.copytree(trial[1], run)
    _kill_inside_a_transaction(run / "register.sqlite")
    monkeypatch.setattr(register_module, "_roll_back_interrupted_change", lambda path: None)
    with pytest.raises(EvalkitError, match="stopped in the middle of changing the register"):
        verify_allocation(run)
    assert (run / "register.sqlite-journal").exists()  # left for a writer to undo
