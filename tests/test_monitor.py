"""Monitoring: an export compared with groups, courses and windows; outputs and compliance."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.examples.bookings import make_example_bookings
from evalkit.io.xlsx import write_xlsx
from evalkit.monitoring.bookings import (
    COMPLETED_IN_WINDOW,
    COMPLETED_LATE,
    EARLY_CONTACT,
    NOT_BOOKED,
    NOT_COMPLETED_CLOSED,
    monitor_bookings,
)
from evalkit.register import Register, register_path
from tests.turnover_helpers import small_pdu_run_fixture  # noqa: F401 (fixture)

runner = CliRunner()
AS_OF = "2023-12-31"


@pytest.fixture(scope="module")
def national(small_pdu_run):
    """Design and staff of the SEEDS2 design sealed on a few staff per PDU."""
    register = Register.open(small_pdu_run)
    return register.design, register.table("staff_allocation")


@pytest.fixture()
def fresh_run(small_pdu_run: Path, tmp_path: Path) -> Path:
    """A private copy of the small PDU-level run."""
    target = tmp_path / "run"
    shutil.copytree(small_pdu_run, target)
    return target


def window(design, person) -> tuple[dt.date, dt.date]:
    start, end = design.window_iso(person["course"], person["group"])
    return dt.date.fromisoformat(start), dt.date.fromisoformat(end)


def pick(staff: pd.DataFrame, group: str, count: int, grade: str = "PO") -> list[pd.Series]:
    rows = staff[(staff["group"] == group) & (staff["grade"] == grade)]
    return [rows.iloc[i] for i in range(count)]


def row(person, status: str, when: dt.date, course: str | None = None) -> dict:
    return {"staff_id": person["staff_id"], "course": course or person["course"],
            "status": status, "date": when.isoformat()}


@pytest.fixture(scope="module")
def scenario(national):
    """A hand-built export with one person in each situation, and who is who."""
    design, staff = national
    on_time, late, booked_only, never, cancelled = pick(staff, "Treatment", 5)
    early, in_window = pick(staff, "Control", 2)
    day = dt.timedelta(days=1)
    rows = [
        row(on_time, "booked", window(design, on_time)[0]),
        row(on_time, "COMPLETED", window(design, on_time)[0] + 10 * day),
        row(late, "Completed", window(design, late)[1] + 5 * day),
        row(booked_only, "booked", window(design, booked_only)[0]),
        row(cancelled, "cancelled", window(design, cancelled)[0]),
        row(early, "booked", window(design, early)[0] - 100 * day),
        row(in_window, "booked", window(design, in_window)[0] + day),
        row(in_window, "booked", window(design, in_window)[0], course="SEEDS2 for Managers"),
        {"staff_id": "NOBODY1", "course": "SEEDS2 for Managers", "status": "booked",
         "date": "2022-06-01"},
    ]
    people = {"on_time": on_time, "late": late, "booked_only": booked_only, "never": never,
              "cancelled": cancelled, "early": early, "in_window": in_window}
    return pd.DataFrame(rows), people


def run_cli(run: Path, export: Path, *extra: str):
    return runner.invoke(app, ["monitor", str(run), "--bookings", str(export),
                               "--as-of", AS_OF, *extra])


def test_each_situation_is_classified(fresh_run, tmp_path, scenario):
    export, people = scenario
    export.to_csv(tmp_path / "export.csv", index=False)
    result = run_cli(fresh_run, tmp_path / "export.csv")
    assert result.exit_code == 0, result.output
    out = pd.read_csv(fresh_run / "monitoring.csv", dtype=str).set_index("staff_id")
    status = {name: out.loc[p["staff_id"], "status"] for name, p in people.items()}
    assert status["on_time"] == COMPLETED_IN_WINDOW
    assert status["late"] == COMPLETED_LATE
    assert status["booked_only"] == NOT_COMPLETED_CLOSED
    assert status["never"] == NOT_BOOKED and status["cancelled"] == NOT_BOOKED
    assert status["early"] == EARLY_CONTACT
    assert status["in_window"] != EARLY_CONTACT
    sheets = pd.read_excel(fresh_run / "monitoring.xlsx", sheet_name=None, dtype=str)
    assert set(sheets["Late"]["Staff ID"]) >= {people["late"]["staff_id"],
                                               people["booked_only"]["staff_id"]}
    assert people["on_time"]["staff_id"] not in set(sheets["Late"]["Staff ID"])
    assert sheets["Unmatched"]["Staff ID"].tolist() == ["NOBODY1"]
    assert sheets["Wrong course"]["Staff ID"].tolist() == [people["in_window"]["staff_id"]]


def test_control_early_lists_the_line_manager_to_contact(fresh_run, tmp_path, scenario,
                                                         national):
    _, staff = national
    export, people = scenario
    export.to_csv(tmp_path / "export.csv", index=False)
    assert run_cli(fresh_run, tmp_path / "export.csv").exit_code == 0
    sheets = pd.read_excel(fresh_run / "monitoring.xlsx", sheet_name=None, dtype=str)
    early = sheets["Control booked early"].set_index("Staff ID").loc[people["early"]["staff_id"]]
    manager = staff.set_index("staff_id").loc[people["early"]["line_manager_id"]]
    assert early["Manager email"] == manager["email"]
    assert early["PDU code"] == people["early"]["pdu_code"]


def test_compliance_is_stored_and_the_run_is_logged(fresh_run, tmp_path, scenario):
    export, people = scenario
    export.to_csv(tmp_path / "export.csv", index=False)
    assert run_cli(fresh_run, tmp_path / "export.csv").exit_code == 0
    register = Register.open(fresh_run)
    compliance = register.table("compliance").set_index("staff_id")
    assert compliance.loc[people["on_time"]["staff_id"], "completed_in_window"] == 1
    assert compliance.loc[people["late"]["staff_id"], "completed_in_window"] == 0
    staff = register.table("staff_allocation")
    monitored = staff[(staff["group"] != "Not in trial") & (staff["course"] != "none")]
    assert set(compliance.index) == set(monitored["staff_id"])
    events = register.events()
    detail = json.loads(events.loc[events["kind"] == "monitored", "detail"].iloc[-1])
    assert detail["unmatched"] == 1 and detail["rows"] == len(export)


def test_mapped_columns_and_xlsx_give_the_same_result(fresh_run, tmp_path, scenario):
    export, _ = scenario
    export.to_csv(tmp_path / "plain.csv", index=False)
    assert run_cli(fresh_run, tmp_path / "plain.csv").exit_code == 0
    plain = (fresh_run / "monitoring.csv").read_bytes()
    renamed = export.rename(columns={"staff_id": "Employee Number", "status": "Completion"})
    write_xlsx(tmp_path / "export.xlsx", {"export": renamed})
    result = run_cli(fresh_run, tmp_path / "export.xlsx", "--map-column",
                     "staff_id=Employee Number", "--map-column", "status=Completion")
    assert result.exit_code == 0, result.output
    assert (fresh_run / "monitoring.csv").read_bytes() == plain


@pytest.mark.parametrize("change, message", [
    (lambda e: e.assign(status=["finished", *e["status"][1:]]), r"row 2, column 'status'"),
    (lambda e: e.assign(date=[*e["date"][:3], "31/02/2022", *e["date"][4:]]),
     r"row 5, column 'date'"),
    (lambda e: e.drop(columns=["course"]), r"missing column 'course'"),
])
def test_bad_exports_exit_2_naming_row_and_column(fresh_run, tmp_path, scenario, change,
                                                  message):
    export, _ = scenario
    change(export).to_csv(tmp_path / "bad.csv", index=False)
    before = register_path(fresh_run).read_bytes()
    result = run_cli(fresh_run, tmp_path / "bad.csv")
    assert result.exit_code == 2
    assert re.search(message, result.output)
    assert register_path(fresh_run).read_bytes() == before
    assert not (fresh_run / "monitoring.csv").exists()


def test_unknown_mapping_name_exits_2(fresh_run, tmp_path, scenario):
    scenario[0].to_csv(tmp_path / "export.csv", index=False)
    result = run_cli(fresh_run, tmp_path / "export.csv", "--map-column", "staffid=ID")
    assert result.exit_code == 2 and "Did you mean" in result.output


def test_synthetic_export_is_deterministic_and_shows_every_problem(small_pdu_run, tmp_path):
    command = [sys.executable, "-c", "from evalkit.cli import app; app()", "example"]
    for folder in ("a", "b"):
        done = subprocess.run([*command, str(tmp_path / folder), "--bookings-for",
                               str(small_pdu_run)], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
    first = (tmp_path / "a" / "bookings.csv").read_bytes()
    assert first == (tmp_path / "b" / "bookings.csv").read_bytes()
    register = Register.open(small_pdu_run)
    export = pd.read_csv(tmp_path / "a" / "bookings.csv", dtype=str)
    export["date"] = pd.to_datetime(export["date"])
    monitoring = monitor_bookings(register.design, register.table("staff_allocation"),
                                  export.assign(row=range(2, len(export) + 2)),
                                  dt.date(2023, 12, 31))
    counts = monitoring.staff.groupby(["group", "status"]).size()
    treated = monitoring.staff[monitoring.staff["group"] == "Treatment"]
    assert counts[("Treatment", COMPLETED_IN_WINDOW)] > len(treated) / 2
    assert counts[("Treatment", COMPLETED_LATE)] > 0 and counts[("Treatment", NOT_BOOKED)] > 0
    assert len(monitoring.control_early) > 0
    assert len(monitoring.wrong_course) > 0 and len(monitoring.unmatched) > 0


def test_html_is_self_contained_with_an_inline_chart(fresh_run, tmp_path, national):
    design, staff = national
    make_example_bookings(design, staff, seed=5).to_csv(tmp_path / "export.csv", index=False)
    assert run_cli(fresh_run, tmp_path / "export.csv").exit_code == 0
    html = (fresh_run / "monitoring.html").read_text(encoding="utf-8")
    assert "<svg" in html and "<?xml" not in html
    assert not re.search(r"(src|href)=\"https?://", html)
    assert "PDU " in html  # Control early bookings grouped by PDU


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fraction=st.floats(0.0, 1.0), seed=st.integers(0, 1000))
def test_every_row_is_matched_or_reported_and_statuses_cover_everyone(national, fraction,
                                                                      seed):
    design, staff = national
    export = make_example_bookings(design, staff, seed=seed)
    export = export.sample(frac=fraction, random_state=seed)
    export = export.assign(date=pd.to_datetime(export["date"]), row=range(len(export)))
    monitoring = monitor_bookings(design, staff, export, dt.date(2023, 12, 31))
    known = export["staff_id"].isin(staff["staff_id"])
    assert len(monitoring.unmatched) == int((~known).sum())
    in_trial = staff[(staff["group"] != "Not in trial") & (staff["course"] != "none")]
    assert len(monitoring.staff) == len(in_trial)
    assert monitoring.summary["staff"].sum() == len(in_trial)


def test_workbook_holds_everyones_row_as_well_as_the_action_lists(fresh_run, tmp_path):
    from openpyxl import load_workbook

    from evalkit.examples.bookings import write_example_bookings
    from evalkit.monitoring.report import run_monitor

    bookings = write_example_bookings(fresh_run, tmp_path / "bookings.csv")
    result = run_monitor(fresh_run, bookings, as_of=dt.date(2023, 12, 31))
    per_person = pd.read_csv(result.files["csv"])
    workbook = load_workbook(result.files["xlsx"], read_only=True)
    assert {"About", "Summary", "Late", "Control booked early", "Staff"} <= set(
        workbook.sheetnames)
    assert sum(1 for _ in workbook["Staff"].iter_rows()) == len(per_person) + 1


def test_staff_ids_and_pdu_codes_never_break_across_lines_on_a_phone():
    """On a narrow screen the contact tables wrap anywhere; codes must stay one word."""
    from importlib.resources import files

    from evalkit.monitoring.report import _cell_markup

    assert _cell_markup("staff_id", False)("S013840") == '<td class="code">S013840</td>'
    assert _cell_markup("pdu_code", False)("N07") == '<td class="code">N07</td>'
    css = (files("evalkit.monitoring") / "templates" / "report.html.j2").read_text()
    assert "td.code, table.contacts td.code { white-space: nowrap;" in css
