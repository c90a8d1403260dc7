"""Parallel commands on one run folder: none is lost, nothing is doubled, a busy folder says who."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from reliability_helpers import evalkit, make_trial, popen

from evalkit.allocation.assign import run_assign
from evalkit.audit.verify import verify_allocation
from evalkit.io.runfolder import folder_lock
from evalkit.register import Register

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trial(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("concurrency")
    design = make_trial(folder)
    return design, run_assign(design, out=folder / "sealed").directory


def test_parallel_transfers_are_all_kept(trial, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trial[1], run)
    moves = {"S001": "P06", "S012": "P07", "S020": "P08", "S031": "P09"}
    processes = [popen("transfer", run, "--staff-id", s, "--to-pdu", p) for s, p in moves.items()]
    results = [(p.wait(timeout=120), p.communicate()) for p in processes]
    assert all(code == 0 for code, _ in results), results
    staff = Register.open(run).table("staff_allocation").set_index("staff_id")
    assert {s: staff.at[s, "pdu_code"] for s in moves} == moves
    events = Register.open(run).events()
    assert (events["kind"] == "transferred").sum() == len(moves)
    report = verify_allocation(run)
    assert report.matches, report.differences


def test_parallel_enrols_do_not_double_rows(trial, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trial[1], run)
    before = len(Register.open(run).table("staff_allocation"))
    joiners = trial[0].parent / "joiners.csv"
    processes = [popen("enrol", run, "--staff", joiners) for _ in range(2)]
    codes = sorted(p.wait(timeout=120) for p in processes)
    assert codes == [0, 2]  # the second finds them already enrolled
    assert len(Register.open(run).table("staff_allocation")) == before + 2
    report = verify_allocation(run)
    assert report.matches, report.differences


def test_a_busy_folder_waits_then_exits_2_naming_the_holder(trial, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trial[1], run)
    with folder_lock(run, "evalkit windows (test)"):
        result = evalkit("transfer", run, "--staff-id", "S001", "--to-pdu", "P07",
                         env={"EVALKIT_LOCK_WAIT": "0.5"})
    assert result.returncode == 2
    assert "the run folder is busy: evalkit windows (test) by " in result.stderr
    assert "@" in result.stderr and "since" in result.stderr
    assert not (run / ".evalkit.lock").exists()  # removed on release
    assert evalkit("transfer", run, "--staff-id", "S001", "--to-pdu", "P07").returncode == 0
