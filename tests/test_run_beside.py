"""Work run beside this process (`run_beside`): the same results and errors as in turn, and
`assign`'s CSV exports written by a second process give the same run folder."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from evalkit.allocation import assign as assign_module
from evalkit.audit.verify import verify_allocation
from evalkit.io import parallel
from evalkit.register import Register
from tests.test_output_digests import PINNED, run_case

needs_fork = pytest.mark.skipif(not parallel.sys.platform.startswith("linux")
                                or parallel.usable_cores() < 2,
                                reason="workers are forked on Linux, with two cores or more")


@needs_fork
def test_the_background_runs_in_another_process_and_both_results_come_back():
    background, foreground = parallel.run_beside(os.getpid, lambda: ("here", os.getpid()))
    assert foreground == ("here", os.getpid()) and background != os.getpid()


def test_one_core_runs_both_here_in_turn(monkeypatch):
    monkeypatch.setattr(parallel, "usable_cores", lambda: 1)
    order: list[str] = []
    background, foreground = parallel.run_beside(lambda: order.append("b") or os.getpid(),
                                                 lambda: order.append("f") or "here")
    assert (background, foreground) == (os.getpid(), "here") and order == ["f", "b"]


def test_a_failing_foreground_raises_its_own_error_once():
    calls: list[int] = []

    def foreground() -> None:
        calls.append(1)
        raise OSError("disk full while writing the register")

    with pytest.raises(OSError, match="disk full"):
        parallel.run_beside(lambda: 1, foreground)
    assert calls == [1]  # not run a second time (a rerun could meet a half-written file)


def test_a_failing_background_raises_here_as_in_turn():
    def background() -> None:
        raise ValueError("the CSV could not be written")

    with pytest.raises(ValueError, match="could not be written"):
        parallel.run_beside(background, lambda: "here")


@pytest.mark.slow
@pytest.mark.parametrize("case", ["national", "staff_50k"])
def test_csvs_written_beside_the_register_give_the_pinned_folder(tmp_path: Path, monkeypatch,
                                                                  case: str):
    monkeypatch.setattr(assign_module, "BESIDE_ROWS", 0)  # fork even for the example
    writers = tmp_path / "writers.txt"  # the process that wrote the CSVs (a fork's memory
    original = assign_module.table_csvs  # is its own, so it tells us through a file)

    def table_csvs(*args):
        with open(writers, "a", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()}\n")
        return original(*args)

    monkeypatch.setattr(assign_module, "table_csvs", table_csvs)
    assert run_case(case, tmp_path) == PINNED[case]
    pids = writers.read_text(encoding="utf-8").split()
    assert len(pids) == 1
    if parallel.sys.platform.startswith("linux") and parallel.usable_cores() >= 2:
        assert pids != [str(os.getpid())]
    recorded = set(Register.open(tmp_path / "run").artefacts()["path"])
    assert {"allocation.csv", "staff_allocation.csv", "balance.csv"} <= recorded
    key = {"key_file": tmp_path / "joiner.key"} if case == "staff_50k" else {}
    assert verify_allocation(tmp_path / "run", **key).matches
    assert not (tmp_path / "run" / assign_module.SIDE_FILE).exists()
    monkeypatch.setattr(assign_module, "BESIDE_ROWS", 10**9)  # the same run, all here
    run_case(case, tmp_path / "in_turn")
    beside, in_turn = Register.open(tmp_path / "run"), Register.open(tmp_path / "in_turn" / "run")
    for table in ("units", "allocation", "staff_allocation"):
        pd.testing.assert_frame_equal(beside.table(table), in_turn.table(table))
        assert beside.columns(table) == in_turn.columns(table)


def _report(run: Path, **options) -> tuple:
    report = verify_allocation(run, **options)
    return report.matches, report.summary, report.differences, report.notes[:-1]


@pytest.mark.slow
def test_verify_with_integrity_beside_gives_the_same_report(tmp_path: Path, monkeypatch):
    from evalkit.audit import verify as verify_module

    run_case("national", tmp_path)
    run = tmp_path / "run"
    in_turn = _report(run)
    monkeypatch.setattr(verify_module, "INTEGRITY_BESIDE_ROWS", 0)
    assert _report(run) == in_turn and in_turn[0]
    with open(run / "allocation.csv", "a", encoding="utf-8") as handle:
        handle.write("X999,edited\n")  # an integrity difference ...
    reseeded = tmp_path / "reseeded.toml"  # ... and recomputation differences
    config = Path(__file__).resolve().parents[1] / "configs" / "seeds2.toml"
    reseeded.write_text(config.read_text().replace("seed = ", "seed = 1", 1))
    beside = _report(run, config=reseeded)
    monkeypatch.setattr(verify_module, "INTEGRITY_BESIDE_ROWS", 10**9)
    assert beside == _report(run, config=reseeded)
    assert not beside[0] and any("allocation.csv" in d for d in beside[2])
    assert any("seed" in d for d in beside[2])


@pytest.mark.slow
def test_a_clean_verify_reads_the_stored_allocation_and_units_once(tmp_path: Path,
                                                                   monkeypatch):
    """The integrity pass's digests answer the stored-allocation and stored-units checks;
    an edited allocation still gets its differences listed (read again, cell by cell)."""
    import sqlite3

    from evalkit.audit import verify as verify_module

    run_case("national", tmp_path)
    run = tmp_path / "run"
    calls: list[str] = []
    original_units = verify_module._stored_units_differences
    original_compare = verify_module.compare_allocations
    monkeypatch.setattr(verify_module, "_stored_units_differences",
                        lambda *args: calls.append("units") or original_units(*args))
    monkeypatch.setattr(verify_module, "compare_allocations",
                        lambda *args: calls.append("allocation") or original_compare(*args))
    assert verify_allocation(run).matches and calls == ["units"]
    with sqlite3.connect(run / "register.sqlite") as connection:
        connection.execute("DROP TRIGGER allocation_sealed_update")
        unit = connection.execute("SELECT unit_id FROM allocation LIMIT 1").fetchone()[0]
        connection.execute("UPDATE allocation SET \"group\" = 'Tampered' WHERE unit_id = ?",
                           (unit,))
    calls.clear()
    report = verify_allocation(run)
    assert calls == ["units", "allocation"]
    assert any(f"unit {unit}: group 'Tampered' recorded" in d for d in report.differences)


@pytest.mark.slow
@pytest.mark.parametrize("shuffled", [False, True])
def test_an_edited_stored_unit_is_found_in_order_or_not(tmp_path: Path, shuffled: bool):
    """The stored units are hashed a column at a time when they are in ID order (else as one
    frame): either way an edited covariate is reported, and a clean register is not."""
    import sqlite3

    from evalkit.audit.verify import _stored_units_differences

    run_case("national", tmp_path)
    run = tmp_path / "run"
    register = Register.open(run)
    manifest = register.manifest
    columns = ["unit_id", *manifest["strata"], *manifest["balance_covariates"]]
    with sqlite3.connect(run / "register.sqlite") as connection:
        if shuffled:  # the same rows, stored out of ID order
            connection.execute("CREATE TABLE units_copy AS SELECT * FROM units ORDER BY "
                               "unit_id DESC")
            connection.execute("DROP TABLE units")
            connection.execute("ALTER TABLE units_copy RENAME TO units")
    assert _stored_units_differences(register, columns, manifest["units_sha256"]) == []
    with sqlite3.connect(run / "register.sqlite") as connection:
        connection.execute(f'UPDATE units SET "{columns[-1]}" = "{columns[-1]}" + 1 '
                           "WHERE rowid = 3")
    assert _stored_units_differences(register, columns, manifest["units_sha256"]) == [
        "register: the stored units (IDs, strata, covariates) differ from those allocated"]
