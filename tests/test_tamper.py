"""Tamper tests: every change to a sealed run folder that `verify` must find, and what it says."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from reliability_helpers import DESIGN, make_trial
from typer.testing import CliRunner

from evalkit.allocation.assign import run_assign
from evalkit.audit.verify import verify_allocation
from evalkit.cli import app
from evalkit.register import Register

runner = CliRunner()


@pytest.fixture(scope="module")
def sealed(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tamper")
    return run_assign(make_trial(folder), out=folder / "sealed").directory


@pytest.fixture()
def run(sealed, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(sealed, copy)
    return copy


def _sql(run: Path, *statements: str) -> None:
    with sqlite3.connect(run / "register.sqlite") as connection:
        for statement in statements:
            connection.execute(statement)
    connection.close()


def _differences(run: Path, **options) -> list[str]:
    report = verify_allocation(run, **options)
    assert not report.matches
    return report.differences


def test_an_untouched_folder_verifies(run):
    report = verify_allocation(run, receipt=run / "receipt.txt")
    assert report.matches, report.differences


@pytest.mark.parametrize("name", ["allocation.csv", "staff_allocation.csv", "balance.csv",
                                  "manifest.json", "allocation.xlsx", "receipt.txt"])
def test_an_edited_or_deleted_export_is_named(run, name):
    path = run / name
    path.write_bytes(path.read_bytes() + b"\n")
    assert any(d.startswith(f"{name}: changed since evalkit wrote it") for d in _differences(run))
    path.unlink()
    assert any(d.startswith(f"{name}: deleted") for d in _differences(run))


def test_a_seed_edited_in_the_stored_manifest_is_found(run):
    _sql(run, "UPDATE meta SET value = replace(value, '\"seed\": 777', '\"seed\": 1') "
              "WHERE key = 'manifest'")
    differences = _differences(run)
    assert "seed: the manifest says 1, the stored design says 777" in differences
    assert any(d.startswith("seal: the sealed contents") for d in differences)


@pytest.mark.parametrize(("old", "new", "message"), [
    ("2022-09-30", "2022-09-29", "stored design: section(s) [courses] differ"),
    ("2022-06-01", "2023-04-01", "stored design: no longer a valid design")])
def test_an_edited_stored_design_is_found(run, old, new, message):
    _sql(run, f"UPDATE meta SET value = replace(value, '{old}', '{new}') WHERE key = 'design'")
    differences = _differences(run)
    assert any(d.startswith(message) for d in differences), differences


@pytest.mark.parametrize("column", ["name", "region"])
def test_edited_units_are_found(run, column):
    _sql(run, f"UPDATE units SET {column} = 'Elsewhere' WHERE unit_id = 'P00'")
    assert any(d.startswith("seal: the sealed contents") for d in _differences(run))


def test_a_dropped_trigger_is_found(run):
    _sql(run, "DROP TRIGGER allocation_sealed_update")
    assert any("trigger allocation_sealed_update is missing" in d for d in _differences(run))


def test_a_deleted_event_is_found(run):
    runner.invoke(app, ["transfer", str(run), "--staff-id", "S001", "--to-pdu", "P07"])
    _sql(run, "DROP TRIGGER events_no_delete", "DELETE FROM events WHERE id = 2")
    assert "events: event 2 is missing (deleted); the log jumps to event 3" in _differences(run)


def test_a_deleted_last_event_is_found(run):
    runner.invoke(app, ["transfer", str(run), "--staff-id", "S001", "--to-pdu", "P07"])
    last = Register.open(run).events()["id"].max()
    _sql(run, "DROP TRIGGER events_no_delete", f"DELETE FROM events WHERE id = {last}")
    assert any("were deleted from the end of the log" in d for d in _differences(run))


def test_an_edited_event_time_is_found(run):
    _sql(run, "DROP TRIGGER events_no_update",
         "UPDATE events SET time = '2020-01-01T00:00:00+00:00' WHERE id = 1")
    assert any(d.startswith("events: event 1 (created at 2020-01-01") for d in _differences(run))


def test_a_folder_resealed_with_another_seed_fails_the_receipt(run, tmp_path):
    receipt = tmp_path / "receipt-kept-elsewhere.txt"
    shutil.copy(run / "receipt.txt", receipt)
    other = tmp_path / "other"
    design = make_trial(other)
    design.write_text(DESIGN.replace("seed = 777", "seed = 778"), encoding="utf-8")
    resealed = run_assign(design, out=other / "run").directory
    assert verify_allocation(resealed).matches  # consistent in itself ...
    differences = _differences(resealed, receipt=receipt)  # ... but not the seal on file
    assert any(d.startswith("receipt: the register's root hash is") for d in differences)
    good = Register.open(run).root_hash()
    assert verify_allocation(run, root_hash=good).matches


def test_verify_needs_only_read_access(run, monkeypatch):
    before = (run / "register.sqlite").read_bytes()
    monkeypatch.setattr("evalkit.audit.verify.os.access", lambda *a, **k: False)
    report = verify_allocation(run)
    assert report.matches, report.differences
    assert any("read-only" in note for note in report.notes)
    assert (run / "register.sqlite").read_bytes() == before


def test_events_record_who_ran_which_command(run):
    result = runner.invoke(app, ["transfer", str(run), "--staff-id", "S001", "--to-pdu", "P07"])
    assert result.exit_code == 0, result.output
    events = Register.open(run).events()
    detail = json.loads(events[events["kind"] == "transferred"].iloc[-1]["detail"])
    assert set(detail["who"]) == {"user", "host", "command"}
    assert detail["who"]["user"] and detail["who"]["host"]


def test_a_copied_folder_does_not_write_into_the_original(run, tmp_path):
    assert runner.invoke(app, ["publish", str(run)]).exit_code == 0
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    original_page = (run / "site" / "index.html").read_bytes()
    result = runner.invoke(app, ["transfer", str(copy), "--staff-id", "S001", "--to-pdu", "P07"])
    assert result.exit_code == 0, result.output
    assert (run / "site" / "index.html").read_bytes() == original_page
    assert str(copy / "site" / "index.html") in result.output.replace("\n", "")
