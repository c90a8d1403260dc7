"""Turnover: new starters (inherited group or concealed joiner sequence), transfers, replay."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from evalkit.allocation.joiner_sequence import (
    SEQUENCE_TABLE,
    extended_sequence,
    generate_sequence,
    joiner_sequence_table,
    reveal,
    slots_per_round,
)
from evalkit.allocation.keys import read_key
from evalkit.cli import app
from evalkit.register import Register, register_path
from evalkit.trial.design import parse_design
from evalkit.turnover.events import enrol
from tests.turnover_helpers import staff_level_run_fixture  # noqa: F401 (fixture)

runner = CliRunner()
KEY = bytes(range(32))


@pytest.fixture(scope="session")
def staff_key(staff_level_run: Path) -> Path:
    """The joiner key `assign` created beside the staff-level run (copies share it)."""
    return staff_level_run.parent / "joiner.key"

@pytest.fixture()
def fresh_staff_run(staff_level_run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "staff_run"
    shutil.copytree(staff_level_run, target)
    return target


def write_starters(path: Path, rows: list[dict]) -> Path:
    columns = ["staff_id", "name", "email", "grade", "pdu_code", "line_manager_id"]
    pd.DataFrame(rows).reindex(columns=columns, fill_value="").to_csv(path, index=False)
    return path


def starter(staff_id: str, pdu_code: str, grade: str = "PO") -> dict:
    return {"staff_id": staff_id, "name": f"New {staff_id}", "email": f"{staff_id}@x.gov.uk",
            "grade": grade, "pdu_code": pdu_code}


def pdu_groups(run: Path) -> pd.Series:
    return Register.open(run).table("allocation").set_index("unit_id")["group"]


def events_of(run: Path, kind: str) -> list[dict]:
    events = Register.open(run).events()
    return [json.loads(d) for d in events.loc[events["kind"] == kind, "detail"]]


# --- the joiner sequence -------------------------------------------------------------------

def small_design(seed: int, ratios: list[int]):
    arms = [{"name": f"Arm {i}", "ratio": r, "control": i == 0} for i, r in enumerate(ratios)]
    return parse_design({"trial": {"name": "t", "seed": seed, "unit": "staff"}, "arms": arms})


sizes_strategy = st.dictionaries(st.sampled_from(["North", "South", "East", "West", "Wales"]),
                                 st.integers(1, 2000), min_size=1, max_size=4)
ratios_strategy = st.lists(st.integers(0, 3), min_size=2, max_size=3).filter(lambda r: sum(r) > 0)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**40), ratios=ratios_strategy, sizes=sizes_strategy)
def test_every_block_is_balanced_by_the_ratios(seed, ratios, sizes):
    design = small_design(seed, ratios)
    sequence = generate_sequence(design, sizes, KEY)
    total = sum(ratios)
    names = {f"Arm {i}": r for i, r in enumerate(ratios)}
    for _, block in sequence.groupby(["stratum", "block"]):
        assert len(block) in (total, 2 * total)
        counts = Counter(block["group"])
        for name, ratio in names.items():
            assert counts.get(name, 0) * total == ratio * len(block)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**40), ratios=ratios_strategy, sizes=sizes_strategy)
def test_same_seed_same_sequence_and_longer_sequences_extend_shorter(seed, ratios, sizes):
    design = small_design(seed, ratios)
    once = generate_sequence(design, sizes, KEY)
    pd.testing.assert_frame_equal(once, generate_sequence(design, sizes, KEY))
    twice = generate_sequence(design, sizes, KEY, rounds=2)
    for stratum, slots in once.groupby("stratum"):
        longer = twice[twice["stratum"] == stratum].head(len(slots))
        assert longer["group"].tolist() == slots["group"].tolist()
        assert len(slots) >= slots_per_round(sizes[stratum])
        assert slots["slot"].tolist() == list(range(1, len(slots) + 1))


def test_another_key_gives_another_sequence_and_the_public_seed_does_not_matter():
    sizes = {"North": 400, "South": 300}
    first = generate_sequence(small_design(1, [1, 1]), sizes, KEY)
    second = generate_sequence(small_design(1, [1, 1]), sizes, bytes(32))
    assert first["group"].tolist() != second["group"].tolist()
    other_seed = generate_sequence(small_design(2, [1, 1]), sizes, KEY)
    assert first["group"].tolist() == other_seed["group"].tolist()


def test_extension_keeps_slots_already_used(staff_level_run, staff_key):
    register = Register.open(staff_level_run)
    allocation = register.table("allocation")
    key = read_key(staff_key)
    stored = reveal(register.design, allocation, register.table(SEQUENCE_TABLE), key)
    stored.loc[0, ["used_by", "used_at"]] = ["N1", "2024-01-01"]
    longer = extended_sequence(register.design, allocation, stored, key)
    assert len(longer) > len(stored)
    merged = stored.merge(longer, on=["stratum", "slot"], suffixes=("", "_new"))
    assert (merged["group"] == merged["group_new"]).all()
    assert (merged["used_by"] == merged["used_by_new"]).all()


def test_staff_level_assign_stores_the_sequence_and_pdu_level_does_not(staff_level_run,
                                                                       national_run, staff_key):
    register = Register.open(staff_level_run)
    stored = register.table(SEQUENCE_TABLE)
    recomputed = joiner_sequence_table(register.design, register.table("allocation"),
                                       read_key(staff_key))
    pd.testing.assert_frame_equal(stored[["stratum", "slot", "commitment"]],
                                  recomputed[["stratum", "slot", "commitment"]])
    assert (stored["used_by"].fillna("") == "").all()
    assert not Register.open(national_run.directory).has_table(SEQUENCE_TABLE)


# --- enrol ---------------------------------------------------------------------------------

def test_pdu_level_starters_inherit_their_pdus_group_and_course(fresh_run, tmp_path):
    groups = pdu_groups(fresh_run)
    pdu = groups.index[0]
    path = write_starters(tmp_path / "new.csv", [starter("N1", pdu, "PO"),
                                                 starter("N2", pdu.lower(), "spo")])
    result = runner.invoke(app, ["enrol", str(fresh_run), "--staff", str(path),
                                 "--reason", "April intake"])
    assert result.exit_code == 0, result.output
    staff = pd.read_csv(fresh_run / "staff_allocation.csv", dtype=str).set_index("staff_id")
    assert staff.loc["N1", "group"] == groups[pdu]
    assert staff.loc["N1", "course"] == "SEEDS2 for Practitioners"
    assert staff.loc["N2", "course"] == "SEEDS2 for Managers"
    enrolled = Register.open(fresh_run).events().query("kind == 'enrolled'")
    assert len(enrolled) == 2 and set(enrolled["reason"]) == {"April intake"}
    assert Register.open(fresh_run).table("joiners")["assignment"].eq("joiner").all()


def test_staff_level_starters_take_the_next_slots_of_their_stratum(fresh_staff_run, tmp_path,
                                                                    staff_key):
    register = Register.open(fresh_staff_run)
    staff = register.table("staff_allocation")
    pdu = staff.iloc[0]["pdu_code"]
    region = staff.iloc[0]["region"]
    path = write_starters(tmp_path / "new.csv", [starter(f"N{i:02d}", pdu) for i in range(6)])
    result = runner.invoke(app, ["enrol", str(fresh_staff_run), "--staff", str(path),
                                 "--key-file", str(staff_key)])
    assert result.exit_code == 0, result.output
    sequence = reveal(register.design, register.table("allocation"),
                      register.table(SEQUENCE_TABLE), read_key(staff_key))
    expected = sequence[sequence["stratum"] == region].sort_values("slot")["group"].head(6)
    after = register.table("staff_allocation").set_index("staff_id")
    assert [after.loc[f"N{i:02d}", "group"] for i in range(6)] == expected.tolist()
    used = sequence[sequence["used_by"].fillna("") != ""]
    assert sorted(used["used_by"]) == [f"N{i:02d}" for i in range(6)]
    assert set(used["slot"]) == set(range(1, 7))


def test_enrolling_in_two_batches_gives_the_same_groups_as_one(staff_level_run, tmp_path,
                                                               staff_key):
    pdu = Register.open(staff_level_run).table("staff_allocation").iloc[0]["pdu_code"]
    people = [starter(f"N{i:02d}", pdu) for i in range(5)]
    one, two = tmp_path / "one", tmp_path / "two"
    shutil.copytree(staff_level_run, one)
    shutil.copytree(staff_level_run, two)
    enrol(one, write_starters(tmp_path / "all.csv", people), key_file=staff_key)
    enrol(two, write_starters(tmp_path / "a.csv", people[:2]), key_file=staff_key)
    enrol(two, write_starters(tmp_path / "b.csv", people[2:]), key_file=staff_key)
    groups = [Register.open(run).table("joiners").set_index("staff_id")["group"].sort_index()
              for run in (one, two)]
    pd.testing.assert_series_equal(groups[0], groups[1])


@settings(max_examples=5, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(picks=st.lists(st.tuples(st.integers(0, 108), st.sampled_from(["PO", "PSO", "SPO", "CA"])),
                      min_size=1, max_size=8))
def test_joiners_never_change_existing_allocations(staff_level_run, staff_key, picks):
    with tempfile.TemporaryDirectory() as scratch:
        run = Path(scratch) / "run"
        shutil.copytree(staff_level_run, run)
        before = Register.open(run)
        allocation, staff = before.table("allocation"), before.table("staff_allocation")
        pdus = sorted(staff["pdu_code"].unique())
        rows = [starter(f"N{i:03d}", pdus[p % len(pdus)], g) for i, (p, g) in enumerate(picks)]
        enrol(run, write_starters(Path(scratch) / "new.csv", rows), key_file=staff_key)
        after = Register.open(run)
        pd.testing.assert_frame_equal(after.table("allocation"), allocation)
        kept = after.table("staff_allocation").set_index("staff_id").loc[staff["staff_id"]]
        pd.testing.assert_frame_equal(kept.reset_index(), staff)


# --- transfer ------------------------------------------------------------------------------

def test_transfer_keeps_the_group_moves_the_pdu_and_is_logged(fresh_run):
    staff = Register.open(fresh_run).table("staff_allocation")
    groups = pdu_groups(fresh_run)
    person = staff[staff["group"] == "Control"].iloc[0]
    target = groups[groups == "Treatment"].index[0]
    result = runner.invoke(app, ["transfer", str(fresh_run), "--staff-id", person["staff_id"],
                                 "--to-pdu", target, "--reason", "promotion"])
    assert result.exit_code == 0, result.output
    after = pd.read_csv(fresh_run / "staff_allocation.csv", dtype=str).set_index("staff_id")
    assert after.loc[person["staff_id"], "pdu_code"] == target
    assert after.loc[person["staff_id"], "group"] == "Control"
    [event] = events_of(fresh_run, "transferred")
    assert event["from_pdu"] == person["pdu_code"] and event["to_pdu"] == target
    verified = runner.invoke(app, ["verify", str(fresh_run)])
    assert verified.exit_code == 0, verified.output


# --- verify replays the events -------------------------------------------------------------

def test_verify_passes_after_enrol_and_transfer(fresh_staff_run, tmp_path, staff_key):
    pdus = sorted(Register.open(fresh_staff_run).table("staff_allocation")["pdu_code"].unique())
    path = write_starters(tmp_path / "new.csv", [starter("N1", pdus[3]), starter("N2", pdus[9])])
    run = str(fresh_staff_run)
    key = ["--key-file", str(staff_key)]
    assert runner.invoke(app, ["enrol", run, "--staff", str(path), *key]).exit_code == 0
    moved = runner.invoke(app, ["transfer", run, "--staff-id", "N1", "--to-pdu", pdus[50]])
    assert moved.exit_code == 0, moved.output
    result = runner.invoke(app, ["verify", run, *key])
    assert result.exit_code == 0, result.output


def test_verify_fails_when_staff_allocation_is_edited(fresh_run):
    register = Register.open(fresh_run)
    staff = register.table("staff_allocation")
    staff.loc[staff["group"] == "Control", "group"] = "Treatment"
    register.replace_table("staff_allocation", staff)
    result = runner.invoke(app, ["verify", str(fresh_run)])
    assert result.exit_code == 1
    assert "after replaying the events" in result.output


def test_verify_fails_on_a_fake_enrolment_that_skipped_a_slot(fresh_staff_run, tmp_path,
                                                              staff_key):
    staff = Register.open(fresh_staff_run).table("staff_allocation")
    path = write_starters(tmp_path / "new.csv", [starter("N1", staff.iloc[0]["pdu_code"])])
    enrol(fresh_staff_run, path, key_file=staff_key)
    assert runner.invoke(app, ["verify", str(fresh_staff_run)]).exit_code == 0
    [real] = events_of(fresh_staff_run, "enrolled")
    fake = real | {"staff_id": "N2", "slot": real["slot"] + 2}
    with sqlite3.connect(register_path(fresh_staff_run)) as connection:
        connection.execute("INSERT INTO events (time, kind, reason, detail) VALUES "
                           "('2024-01-01T00:00:00+00:00', 'enrolled', '', ?)",
                           (json.dumps(fake),))
    connection.close()
    result = runner.invoke(app, ["verify", str(fresh_staff_run)])
    assert result.exit_code == 1
    assert "next unused slot" in result.output


# --- bad input: exit 2, nothing changed ----------------------------------------------------

def first_pdu(run: Path) -> str:
    return pdu_groups(run).index[0]


BAD_STARTERS = {
    "unknown PDU": (lambda pdu: [starter("N1", pdu[:-1] + "Q")], "Did you mean"),
    "duplicate ID": (lambda pdu: [starter("N1", pdu), starter("N1", pdu)], "duplicate"),
    "already enrolled": (lambda pdu: [starter("S000001", pdu)], "already enrolled"),
    "unknown grade": (lambda pdu: [starter("N1", pdu, "Chief")], "unknown grade"),
}


@pytest.mark.parametrize("case", sorted(BAD_STARTERS))
def test_bad_starters_exit_2_and_change_nothing(fresh_run, tmp_path, case):
    make_rows, message = BAD_STARTERS[case]
    path = write_starters(tmp_path / "bad.csv", make_rows(first_pdu(fresh_run)))
    before = register_path(fresh_run).read_bytes()
    exports = (fresh_run / "staff_allocation.csv").read_bytes()
    result = runner.invoke(app, ["enrol", str(fresh_run), "--staff", str(path)])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert register_path(fresh_run).read_bytes() == before
    assert (fresh_run / "staff_allocation.csv").read_bytes() == exports


def test_missing_column_exits_2_and_changes_nothing(fresh_run, tmp_path):
    path = tmp_path / "bad.csv"
    pd.DataFrame([{"staff_id": "N1", "grade": "PO", "pdu": first_pdu(fresh_run)}]).to_csv(
        path, index=False)
    before = register_path(fresh_run).read_bytes()
    result = runner.invoke(app, ["enrol", str(fresh_run), "--staff", str(path)])
    assert result.exit_code == 2
    assert "pdu_code" in result.output
    assert register_path(fresh_run).read_bytes() == before


@pytest.mark.parametrize("arguments, message", [
    (["--staff-id", "S999999x", "--to-pdu", "N55YRK"], "no staff member"),
    (["--staff-id", "S000001", "--to-pdu", "N55YRKK"], "Did you mean"),
])
def test_bad_transfer_exits_2_and_changes_nothing(fresh_run, arguments, message):
    before = register_path(fresh_run).read_bytes()
    result = runner.invoke(app, ["transfer", str(fresh_run), *arguments])
    assert result.exit_code == 2
    assert message in result.output
    assert register_path(fresh_run).read_bytes() == before


# --- real process and published page -------------------------------------------------------

def test_enrol_through_a_real_process(fresh_staff_run, tmp_path, staff_key):
    fresh_run = fresh_staff_run
    pdu = Register.open(fresh_run).table("staff_allocation").iloc[0]["pdu_code"]
    path = write_starters(tmp_path / "new.csv", [starter("N1", pdu)])
    command = [sys.executable, "-c", "from evalkit.cli import app; app()"]
    done = subprocess.run([*command, "enrol", str(fresh_run), "--staff", str(path),
                           "--key-file", str(staff_key)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "N1" in pd.read_csv(fresh_run / "staff_allocation.csv", dtype=str)["staff_id"].tolist()


def test_a_published_page_is_regenerated(fresh_staff_run, tmp_path, staff_key):
    fresh_run = fresh_staff_run
    publish = pytest.importorskip("evalkit.delivery.publish")
    page = publish.publish(fresh_run, iterations=1000).path
    pdu = Register.open(fresh_run).table("staff_allocation").iloc[0]["pdu_code"]
    path = write_starters(tmp_path / "new.csv", [starter("N1", pdu)])
    enrol(fresh_run, path, key_file=staff_key)
    published = events_of(fresh_run, "published")
    assert len(published) == 2
    assert fresh_run / published[-1]["path"] == page  # stored relative to the run folder


def test_a_stratum_past_its_slots_is_extended_and_still_verifies(fresh_staff_run, tmp_path,
                                                                   staff_key):
    register = Register.open(fresh_staff_run)
    staff = register.table("staff_allocation")
    region = staff.iloc[0]["region"]
    sequence = register.table(SEQUENCE_TABLE)
    slots = int((sequence["stratum"] == region).sum())
    pdu = staff.iloc[0]["pdu_code"]
    path = write_starters(tmp_path / "many.csv",
                          [starter(f"N{i:04d}", pdu) for i in range(slots + 3)])
    enrol(fresh_staff_run, path, key_file=staff_key)
    extended = register.table(SEQUENCE_TABLE)
    assert int((extended["stratum"] == region).sum()) > slots
    assert (extended["used_by"].fillna("") != "").sum() == slots + 3
    result = runner.invoke(app, ["verify", str(fresh_staff_run), "--key-file", str(staff_key)])
    assert result.exit_code == 0, result.output


def test_verify_fails_when_the_stored_sequence_is_altered(fresh_staff_run, staff_key):
    register = Register.open(fresh_staff_run)
    sequence = register.table(SEQUENCE_TABLE)
    sequence.loc[0, "commitment"] = sequence.loc[1, "commitment"]
    register.replace_table(SEQUENCE_TABLE, sequence)
    result = runner.invoke(app, ["verify", str(fresh_staff_run), "--key-file", str(staff_key)])
    assert result.exit_code == 1
    assert "joiner sequence" in result.output


def _sequence_slot_by_slot(design, sizes, key, rounds=1):
    """The sequence as first written: one row appended per slot, then sorted."""
    from evalkit.allocation.joiner_sequence import (
        JOINER_PURPOSE,
        _shuffled_block,
        derived_seed,
    )
    from evalkit.allocation.randomise import RandomStream

    arms = [arm.name for arm in design.randomised_arms]
    ratios = [arm.ratio for arm in design.randomised_arms]
    stream = RandomStream(derived_seed(key, "joiner sequence"), purpose=JOINER_PURPOSE)
    filled, blocks, rows = dict.fromkeys(sizes, 0), dict.fromkeys(sizes, 0), []
    for _ in range(rounds):
        for stratum in sorted(sizes):
            target = filled[stratum] + slots_per_round(sizes[stratum])
            while filled[stratum] < target:
                blocks[stratum] += 1
                for group in _shuffled_block(stream, arms, ratios):
                    filled[stratum] += 1
                    rows.append((stratum, filled[stratum], blocks[stratum], group))
    frame = pd.DataFrame(rows, columns=["stratum", "slot", "block", "group"])
    return frame.sort_values(["stratum", "slot"], kind="stable").reset_index(drop=True)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**40), ratios=ratios_strategy, sizes=sizes_strategy,
       rounds=st.integers(1, 3))
def test_the_sequence_built_by_stratum_equals_the_slot_by_slot_one(seed, ratios, sizes, rounds):
    design = small_design(seed, ratios)
    pd.testing.assert_frame_equal(generate_sequence(design, sizes, KEY, rounds),
                                  _sequence_slot_by_slot(design, sizes, KEY, rounds))
