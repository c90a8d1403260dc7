"""Concealment of the joiner sequence: reading the run folder must not tell the next group.

The sequence comes from a secret key kept outside the run folder; the register holds only
HMAC commitments of its slots. Tests run as someone who can read (or write) the folder but has
no key, and as the auditor who has it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from evalkit.allocation.joiner_sequence import KEY_META, SEQUENCE_TABLE, reveal
from evalkit.allocation.keys import key_fingerprint, read_key, slot_commitment
from evalkit.cli import app
from evalkit.register import Register, register_path
from tests.helpers import small_pdus, small_staff, write_trial
from tests.turnover_helpers import (  # noqa: F401 (fixtures)
    small_pdu_run_fixture,
    staff_level_run_fixture,
)

runner = CliRunner()


def said(result) -> str:
    """The command's output with rich's line wrapping undone."""
    return " ".join(result.output.split())


@pytest.fixture()
def run(staff_level_run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(staff_level_run, target)
    return target


@pytest.fixture(scope="session")
def key_file(staff_level_run: Path) -> Path:
    return staff_level_run.parent / "joiner.key"


def starters(path: Path, rows: list[tuple[str, str]]) -> Path:
    frame = pd.DataFrame([{"staff_id": s, "name": f"New {s}", "email": f"{s}@x.gov.uk",
                           "grade": "PO", "pdu_code": pdu} for s, pdu in rows])
    frame.to_csv(path, index=False)
    return path


def first_pdu(run: Path) -> str:
    return Register.open(run).table("staff_allocation").iloc[0]["pdu_code"]


def test_the_register_holds_no_group_of_any_unused_slot(run, key_file) -> None:
    register = Register.open(run)
    stored = register.table(SEQUENCE_TABLE)
    assert list(stored.columns) == ["stratum", "slot", "commitment", "used_by", "used_at"]
    assert stored["commitment"].is_unique  # no pattern by group: every slot looks different
    raw = register_path(run).read_bytes()
    key = read_key(key_file)
    assert key.hex().encode() not in raw and key not in raw
    groups = ["Treatment", "Control"]
    for row in stored.head(50).itertuples():  # without the key no group can be tested
        guesses = {slot_commitment(bytes(32), row.stratum, row.slot, g) for g in groups}
        guesses |= {slot_commitment(str(register.manifest["seed"]).encode(), row.stratum,
                                    row.slot, g) for g in groups}
        assert row.commitment not in guesses
    # with the key, each commitment opens to exactly one group
    revealed = reveal(register.design, register.table("allocation"), stored, key)
    for row in revealed.head(50).itertuples():
        matches = [g for g in groups
                   if slot_commitment(key, row.stratum, row.slot, g) == row.commitment]
        assert matches == [row.group]


def test_the_register_records_only_the_keys_fingerprint(run, key_file) -> None:
    recorded = Register.open(run).meta(KEY_META)
    assert recorded == {"fingerprint": key_fingerprint(read_key(key_file))}


def test_enrol_without_the_key_exits_2_and_changes_nothing(run, tmp_path) -> None:
    before = register_path(run).read_bytes()
    path = starters(tmp_path / "new.csv", [("N1", first_pdu(run))])
    result = runner.invoke(app, ["enrol", str(run), "--staff", str(path)])
    assert result.exit_code == 2
    assert "--key-file" in said(result) and "staff-level" in said(result)
    assert "Traceback" not in result.output
    assert register_path(run).read_bytes() == before


def test_enrol_with_another_key_exits_2_and_changes_nothing(run, tmp_path) -> None:
    before = register_path(run).read_bytes()
    other = tmp_path / "other.key"
    assert runner.invoke(app, ["assign", str(write_trial(tmp_path / "t", unit="staff",
                                                         fixed="[]")),
                               "--out", str(tmp_path / "t" / "run"),
                               "--key-file", str(other)]).exit_code == 0
    path = starters(tmp_path / "new.csv", [("N1", first_pdu(run))])
    result = runner.invoke(app, ["enrol", str(run), "--staff", str(path),
                                 "--key-file", str(other)])
    assert result.exit_code == 2
    assert "not the one this run was sealed with" in said(result)
    assert register_path(run).read_bytes() == before


def _forge_joiner(run: Path, key: bytes) -> str:
    """Add joiner N2 who took the right next slot but the other group, as a folder writer
    without the key could (events are append-only, so the forger appends)."""
    register = Register.open(run)
    [real] = [json.loads(d) for d in register.events().query("kind == 'enrolled'")["detail"]]
    revealed = reveal(register.design, register.table("allocation"),
                      register.table(SEQUENCE_TABLE), key).set_index(["stratum", "slot"])
    due = revealed.loc[(real["stratum"], real["slot"] + 1), "group"]
    wrong = "Control" if due == "Treatment" else "Treatment"
    fake = real | {"staff_id": "N2", "name": "New N2", "email": "N2@x.gov.uk",
                   "slot": real["slot"] + 1, "group": wrong}
    with sqlite3.connect(register_path(run)) as connection:
        connection.execute("INSERT INTO events (time, kind, reason, detail) VALUES "
                           "('2024-01-01T00:00:00+00:00', 'enrolled', '', ?)",
                           (json.dumps(fake),))
    connection.close()
    staff = register.table("staff_allocation")
    row = staff[staff["staff_id"] == "N1"].assign(staff_id="N2", name="New N2",
                                                  email="N2@x.gov.uk", group=wrong)
    register.replace_table("staff_allocation", pd.concat([staff, row], ignore_index=True))
    return wrong


def test_verify_with_the_key_finds_a_joiner_given_the_wrong_group(run, key_file,
                                                                 tmp_path) -> None:
    path = starters(tmp_path / "new.csv", [("N1", first_pdu(run))])
    key = ["--key-file", str(key_file)]
    assert runner.invoke(app, ["enrol", str(run), "--staff", str(path), *key]).exit_code == 0
    assert runner.invoke(app, ["verify", str(run), *key]).exit_code == 0
    wrong = _forge_joiner(run, read_key(key_file))
    blind = runner.invoke(app, ["verify", str(run)])
    assert "pass --key-file" in said(blind)  # says what it could not check
    checked = runner.invoke(app, ["verify", str(run), *key])
    assert checked.exit_code == 1
    assert f"joiner N2: group {wrong!r} recorded" in said(checked)


def test_verify_with_another_key_is_a_mismatch(run, tmp_path) -> None:
    other = tmp_path / "other.key"
    other.write_text("ab" * 32 + "\n")
    result = runner.invoke(app, ["verify", str(run), "--key-file", str(other)])
    assert result.exit_code == 1
    assert "not the one this run was sealed with" in said(result)


def _staff_trial(tmp_path: Path) -> Path:
    pdus = small_pdus(2, 3)
    return write_trial(tmp_path / "trial", unit="staff", fixed="[]", pdus=pdus,
                       staff=small_staff(pdus, per_pdu=5))


def test_staff_level_assign_needs_a_key_file(tmp_path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["assign", str(_staff_trial(tmp_path)), "--out", str(out)])
    assert result.exit_code == 2
    assert "--key-file" in said(result) and "Traceback" not in result.output
    assert not register_path(out).exists()


def test_assign_creates_a_private_key_file_and_says_where_to_keep_it(tmp_path) -> None:
    key = tmp_path / "secrets" / "trial.key"
    result = runner.invoke(app, ["assign", str(_staff_trial(tmp_path)), "--out",
                                 str(tmp_path / "run"), "--key-file", str(key)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert "OUTSIDE the run folder" in said(result) and str(key) in said(result)
    assert len(read_key(key)) == 32
    again = runner.invoke(app, ["assign", str(_staff_trial(tmp_path)), "--out",
                                str(tmp_path / "run2"), "--key-file", str(key)])
    assert again.exit_code == 0 and "Joiner key used" in said(again)  # reused, not replaced
    assert "other users can read" not in said(again)
    key.chmod(0o644)
    shared = runner.invoke(app, ["assign", str(_staff_trial(tmp_path)), "--out",
                                 str(tmp_path / "run3"), "--key-file", str(key)])
    assert shared.exit_code == 0 and "other users can read" in said(shared)


def test_a_key_file_inside_the_run_folder_is_refused(tmp_path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["assign", str(_staff_trial(tmp_path)), "--out", str(out),
                                 "--key-file", str(out / "joiner.key")])
    assert result.exit_code == 2
    assert "outside the run folder" in said(result)
    assert not register_path(out).exists()


def test_pdu_level_designs_need_no_key(small_pdu_run, tmp_path) -> None:
    run = tmp_path / "pdu_run"
    shutil.copytree(small_pdu_run, run)
    path = starters(tmp_path / "new.csv", [("N1", first_pdu(run))])
    assert runner.invoke(app, ["enrol", str(run), "--staff", str(path)]).exit_code == 0
    verified = runner.invoke(app, ["verify", str(run)])
    assert verified.exit_code == 0 and "--key-file" not in said(verified)
    assert Register.open(run).meta(KEY_META) is None


@settings(max_examples=150)
@example(key=bytes(64), rows=[("North | N01", 1, "Control")])
@example(key=bytes(range(65)), rows=[("North | N01", 1, "Control")])
@given(key=st.binary(min_size=0, max_size=130),
       rows=st.lists(st.tuples(st.text(alphabet=st.characters(blacklist_categories=["Cs"])),
                               st.integers(0, 10**9), st.text(max_size=12)), max_size=8))
def test_slot_commitments_at_once_equal_hmac_one_at_a_time(key: bytes, rows: list) -> None:
    """The padded-block HMAC of many slots gives the stdlib's hmac bytes, for keys shorter
    and longer than SHA-256's block."""
    from evalkit.allocation.keys import slot_commitment, slot_commitments

    strata, slots, groups = ([row[i] for row in rows] for i in range(3))
    assert slot_commitments(key, strata, slots, groups) == [
        slot_commitment(key, *row) for row in rows]


@pytest.mark.parametrize("beside", [False, True])
def test_verify_with_the_key_finds_an_altered_slot_in_turn_or_beside(run, key_file, beside,
                                                                     monkeypatch) -> None:
    """The sequence is checked on the integrity side (a worker, for large runs) from the
    stored strata; the report is the same as when it is checked after the recomputation."""
    from evalkit.audit import verify as verify_module
    from evalkit.audit.verify import verify_allocation

    monkeypatch.setattr(verify_module, "INTEGRITY_BESIDE_ROWS", 0 if beside else 10**9)
    assert verify_allocation(run, key_file=key_file).matches
    with sqlite3.connect(register_path(run)) as connection:
        stratum, slot = connection.execute(
            f"SELECT stratum, slot FROM {SEQUENCE_TABLE} ORDER BY rowid LIMIT 1 OFFSET 5"
        ).fetchone()
        connection.execute(f"UPDATE {SEQUENCE_TABLE} SET commitment = ? WHERE stratum = ? "
                           "AND slot = ?", ("0" * 64, stratum, slot))
    report = verify_allocation(run, key_file=key_file)
    assert [d for d in report.differences if d.startswith("joiner sequence")] == [
        f"joiner sequence: stratum {stratum!r} slot {slot}: the stored commitment is not the "
        "key's (the slot was altered)"]


def test_a_sequence_check_made_from_other_strata_is_redone_not_trusted(run, key_file) -> None:
    from evalkit.audit.sequence_check import (
        SequenceCheck,
        check_sequence_beside,
        sequence_report,
    )

    register = Register.open(run)
    beside = check_sequence_beside(register, Path(register.manifest["config"]["path"]),
                                   key_file)
    assert beside is not None and beside.differences == []
    allocation, key = register.table("allocation"), read_key(key_file)
    forged = SequenceCheck(beside.design_digest, beside.key_fingerprint,
                           {s: n + 1 for s, n in beside.sizes.items()}, ["forged"])
    assert sequence_report(register, register.design, allocation, key, forged) == []
    same = SequenceCheck(beside.design_digest, beside.key_fingerprint, beside.sizes, ["kept"])
    assert sequence_report(register, register.design, allocation, key, same) == ["kept"]
    assert sequence_report(register, register.design, allocation, None, same) == []


def test_stratum_sizes_counted_from_the_seal_read_equal_the_allocations(run) -> None:
    from evalkit.allocation.joiner_sequence import stratum_sizes
    from evalkit.audit.sequence_check import StoredStratumSizes
    from evalkit.register import ColumnTap

    register = Register.open(run)
    counted = StoredStratumSizes(register.manifest["strata"])
    register.sealed_digest(["design"], 2, {}, (ColumnTap("allocation", counted.feed),))
    assert counted.sizes() == stratum_sizes(register.design, register.table("allocation"))
    assert len(counted.sizes()) > 1
