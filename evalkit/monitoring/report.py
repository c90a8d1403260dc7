"""The `monitor` job: read an export, compare, store compliance, write CSV, XLSX and HTML."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
from jinja2.filters import do_int
from markupsafe import Markup, escape

from evalkit.allocation.about import workbook_about
from evalkit.io.files import write_csv, write_text
from evalkit.io.html import group_style, group_tag, package_environment, yes_no
from evalkit.io.xlsx import write_workbook
from evalkit.monitoring.bookings import (
    COMPLIANCE_TABLE,
    Monitoring,
    compliance_table,
    monitor_bookings,
    read_bookings,
)
from evalkit.monitoring.chart import Series, chart_svg
from evalkit.register import Register

HTML_ROW_LIMIT = 500  # longer lists are in the XLSX; the page says so
STAFF_COLUMNS = ["staff_id", "name", "grade", "pdu_code", "pdu_name", "region", "group",
                 "course", "window_start", "window_end", "first_booked", "first_completed",
                 "completed_in_window", "status", "manager_name", "manager_email"]


@dataclass
class MonitorResult:
    monitoring: Monitoring
    files: dict[str, Path]


def run_monitor(directory: Path, bookings_path: Path, column_map: dict[str, str] | None = None,
                as_of: dt.date | None = None,
                status_map: dict[str, str] | None = None) -> MonitorResult:
    """Monitor a run against an export; write the outputs and log a `monitored` event."""
    register = Register.open(directory)
    bookings = read_bookings(bookings_path, column_map, status_map)
    monitoring = monitor_bookings(register.design, register.table("staff_allocation"),
                                  bookings, as_of)
    directory = Path(directory)
    about = workbook_about(register, f"Bookings and completions from "
                                     f"{Path(bookings_path).name} as at "
                                     f"{monitoring.as_of.isoformat()}")
    files = write_monitoring(directory, monitoring, register.design.trial.name, about)
    register.replace_table(COMPLIANCE_TABLE, compliance_table(monitoring))
    register.append_event("monitored", detail={
        "bookings": str(Path(bookings_path).resolve()), "rows": monitoring.rows_read,
        "as_of": monitoring.as_of.isoformat(), "unmatched": len(monitoring.unmatched),
        "wrong_course": len(monitoring.wrong_course), "late": len(monitoring.late),
        "not_booked": len(monitoring.not_booked),
        "control_early": len(monitoring.control_early)})
    return MonitorResult(monitoring, files)


def _dated(frame: pd.DataFrame) -> pd.DataFrame:
    """Dates as ISO text, so CSV, XLSX and HTML show the same thing."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].dt.strftime("%Y-%m-%d").fillna("")
    return out


def output_tables(monitoring: Monitoring) -> dict[str, pd.DataFrame]:
    """The sheets of monitoring.xlsx, in order."""
    people = _dated(monitoring.staff)[STAFF_COLUMNS]
    contact = ["pdu_code", "pdu_name", "staff_id", "name", "grade", "first_booked",
               "first_completed", "manager_name", "manager_email"]
    return {
        "summary": monitoring.summary,
        "staff": people,
        "late": people.loc[monitoring.late.index],
        "not_booked": people.loc[monitoring.not_booked.index],
        "control_early": _dated(monitoring.control_early)[contact],
        "wrong_course": _dated(monitoring.wrong_course),
        "unmatched": _dated(monitoring.unmatched),
    }


WORKBOOK_SHEETS = {"summary": "Summary", "late": "Late", "not_booked": "Not booked",
                   "control_early": "Control booked early", "wrong_course": "Wrong course",
                   "unmatched": "Unmatched", "staff": "Staff"}
EMPTY_SHEETS = {
    "Late": "Nobody is late: everyone whose window has closed completed within it.",
    "Not booked": "Everyone whose window is open or closed has booked.",
    "Control booked early": "No Control staff booked or completed before their window.",
    "Wrong course": "Every booking is for the course that matches the person's grade.",
    "Unmatched": "Every row of the export matched a staff member in the register.",
}


def write_monitoring(directory: Path, monitoring: Monitoring, trial_name: str = "Evaluation",
                     about: dict | None = None) -> dict[str, Path]:
    """monitoring.csv (one row per person), monitoring.xlsx (About, summary, the lists to
    act on, then everyone's row), monitoring.html (with its completion chart)."""
    tables = output_tables(monitoring)
    sheets = {WORKBOOK_SHEETS[name]: frame for name, frame in tables.items() if name != "staff"}
    sheets[WORKBOOK_SHEETS["staff"]] = tables["staff"]
    return {
        "csv": write_csv(directory / "monitoring.csv", tables["staff"]),
        "xlsx": write_workbook(directory / "monitoring.xlsx", sheets,
                               about=about or {"Trial": trial_name}, empty_notes=EMPTY_SHEETS),
        "html": write_text(directory / "monitoring.html",
                           render_html(monitoring, tables, trial_name)),
    }


def completion_curve(monitoring: Monitoring) -> pd.DataFrame:
    """Cumulative % of each group's staff who have completed, by week."""
    people = monitoring.staff
    done = people.dropna(subset=["first_completed"])
    if done.empty:
        return pd.DataFrame()
    weeks = done["first_completed"].dt.to_period("W").dt.start_time
    counts = done.groupby([weeks.rename("week"), "group"]).size().unstack(fill_value=0)
    full = pd.date_range(counts.index.min(), counts.index.max(), freq="7D")
    cumulative = counts.reindex(full, fill_value=0).cumsum()
    sizes = people.groupby("group").size()
    return 100 * cumulative / sizes.reindex(cumulative.columns)


def completion_series(monitoring: Monitoring) -> tuple[np.ndarray, Series]:
    """The completion curve as the chart draws it: the weeks, and each group's values."""
    curve = completion_curve(monitoring)
    return curve.index.to_numpy(), [(str(group), curve[group].to_numpy())
                                    for group in curve.columns]


def completion_chart_svg(monitoring: Monitoring) -> str:
    """The completion curve as an inline SVG (no XML header), one look per group."""
    return chart_svg(*completion_series(monitoring))


HTML_COLUMNS = {"staff_id": "Staff ID", "pdu_code": "PDU code", "pdu_name": "PDU",
                "first_booked": "First booked", "first_completed": "First completed",
                "window_start": "Window opens", "window_end": "Window closes",
                "completed_in_window": "Completed in window", "manager_name": "Manager",
                "manager_email": "Manager email", "booked_course": "Course booked",
                "expected_course": "Course for their grade", "row": "Export row"}
LATE_STATUSES = ("completed late", "not completed, window closed")
EARLY_STATUS = "booked or completed before window"


def _environment() -> jinja2.Environment:
    environment = package_environment("evalkit.monitoring", "templates")
    environment.globals["table_rows"] = table_rows
    return environment


def table_rows(data: dict, numeric: Collection[str] = ()) -> Markup:
    """The <tr> rows of a listing for the page's `table` macro: group tags, mailto links,
    numbers with thousands separators, dates marked. Built here, not cell by cell in Jinja
    (about a fifth of the page's time with 2,000 Control staff to contact)."""
    cell = [_cell_markup(str(key), key in numeric) for key in data["keys"]]
    return Markup("".join(
        "<tr>" + "".join(show(value) for show, value in zip(cell, row, strict=True)) + "</tr>\n"
        for row in data["rows"]))


def _cell_markup(key: str, numeric: bool) -> Callable[[object], str]:
    """How the `table` macro shows one column's cells (values already through `_cell`)."""
    if key == "group":
        return lambda value: f"<td>{group_tag(value)}</td>"
    if key == "manager_email":
        return lambda value: (f'<td><a href="mailto:{escape(value)}">{escape(value)}</a></td>'
                              if value else f"<td>{escape(value)}</td>")
    if numeric:
        return lambda value: f'<td class="num">{do_int(value):,}</td>'
    if key.startswith(("first_", "window_", "date")):
        return lambda value: f'<td class="date">{escape(value)}</td>'
    if key in ("staff_id", "pdu_code"):  # codes read as one word: never broken across lines
        return lambda value: f'<td class="code">{escape(value)}</td>'
    return lambda value: f"<td>{escape(value)}</td>"


def _header(column: str) -> str:
    return HTML_COLUMNS.get(column, str(column).replace("_", " ").capitalize())


def _cell(value: object, long_date: bool = False) -> str:
    """What a cell shows: dates as '1 Mar 2022', True/False as Yes/No, blanks empty."""
    if isinstance(value, Markup):
        return value
    if isinstance(value, (pd.Timestamp, dt.date)) and not pd.isna(value):
        return f"{value.day} {value:%B %Y}" if long_date else f"{value.day} {value:%b %Y}"
    return yes_no(value)


def _manager_links(frame: pd.DataFrame) -> pd.DataFrame:
    """One 'manager' column: the manager's name as a mailto link (the address is its title)."""
    links = [Markup('<a href="mailto:{0}" title="{0}">{1}</a>').format(email, name)
             if email else name
             for name, email in zip(frame["manager_name"].fillna(""),
                                    frame["manager_email"].fillna(""), strict=True)]
    return frame.drop(columns=["manager_name", "manager_email"]).assign(manager=links)


def _listing(frame: pd.DataFrame, columns: list[str] | None = None) -> dict:
    shown = frame.head(HTML_ROW_LIMIT)
    shown = shown[[c for c in columns if c in shown.columns]] if columns else shown
    if "manager" in (columns or []):
        shown = _manager_links(shown)
    return {"columns": [_header(c) for c in shown.columns], "keys": list(shown.columns),
            "rows": _cells(shown), "total": len(frame), "truncated": len(frame) > HTML_ROW_LIMIT}


def _cells(frame: pd.DataFrame) -> list[list[str]]:
    """Each row's cells as the page shows them (`_cell`)."""
    return [[_cell(v) for v in row] for row in frame.itertuples(index=False)]


def pdu_summary(monitoring: Monitoring) -> pd.DataFrame:
    """One row per PDU and group: staff monitored, completed in window, late, not booked, early."""
    people = monitoring.staff
    status = people["status"]
    flags = pd.DataFrame({
        "staff": 1, "completed in window": status.eq("completed in window"),
        "late": status.isin(LATE_STATUSES), "not booked": status.eq("not booked"),
        "booked early (Control)": status.eq(EARLY_STATUS)}, index=people.index).astype(int)
    keys = [people[c] for c in ("region", "pdu_name", "pdu_code", "group")]
    return flags.groupby(keys, sort=True).sum().reset_index()


def _early_by_pdu(monitoring: Monitoring) -> list[dict]:
    """The Control early-booking list per PDU, with each person's manager to contact.

    The cells of all PDUs are made at once and shared out, not one `_listing` per PDU (its
    frame work per group was half the page's time with 52 PDUs)."""
    columns = ["name", "staff_id", "grade", "first_booked", "first_completed", "manager_name",
               "manager_email"]
    early = monitoring.control_early
    shown = early[[c for c in columns if c in early.columns]]
    rows = _cells(shown)
    managers = early["manager_name"].to_numpy()
    blocks = []
    groups = early.groupby(["pdu_code", "pdu_name"], sort=True).indices
    for (code, name), positions in sorted(groups.items()):
        listing = {"columns": [_header(c) for c in shown.columns], "keys": list(shown.columns),
                   "rows": [rows[i] for i in positions[:HTML_ROW_LIMIT]],
                   "total": len(positions), "truncated": len(positions) > HTML_ROW_LIMIT}
        blocks.append({"code": code, "name": name, "staff": len(positions),
                       "managers": int(pd.Series(managers[positions]).nunique()),
                       "listing": listing})
    return blocks


def render_html(monitoring: Monitoring, tables: dict[str, pd.DataFrame] | None = None,
                trial_name: str = "Evaluation", chart: str | None = None) -> str:
    """The self-contained monitoring page: the lists to act on first, long lists folded away
    (`chart`: the completion chart's SVG, drawn here when not given)."""
    people = ["name", "staff_id", "grade", "pdu_name", "group", "window_end", "first_booked",
              "first_completed", "status", "manager_name", "manager_email", "manager"]
    control = monitoring.summary.loc[monitoring.summary["group"].map(_is_control), "staff"]
    return _environment().get_template("report.html.j2").render(
        trial_name=trial_name, as_of=_cell(pd.Timestamp(monitoring.as_of), long_date=True),
        rows_read=monitoring.rows_read, summary=_listing(monitoring.summary),
        pdus=_listing(pdu_summary(monitoring)),
        chart=Markup(chart if chart is not None else completion_chart_svg(monitoring)),
        late=_listing(monitoring.late, people), not_booked=_listing(monitoring.not_booked, people),
        control_by_pdu=_early_by_pdu(monitoring), control_total=len(monitoring.control_early),
        control_monitored=int(control.sum()),
        wrong_course=_listing(monitoring.wrong_course), unmatched=_listing(monitoring.unmatched),
        row_limit=HTML_ROW_LIMIT)


def _is_control(group: str) -> bool:
    return group_style(group).slug == "control"
