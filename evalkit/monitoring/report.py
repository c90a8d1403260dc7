"""The `monitor` job: read an export, compare, store compliance, write CSV, XLSX and HTML."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import Markup

from evalkit.io.files import write_csv, write_text
from evalkit.io.xlsx import write_xlsx
from evalkit.monitoring.bookings import (
    COMPLIANCE_TABLE,
    Monitoring,
    compliance_table,
    monitor_bookings,
    read_bookings,
)
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
                as_of: dt.date | None = None) -> MonitorResult:
    """Monitor a run against an export; write the outputs and log a `monitored` event."""
    register = Register.open(directory)
    bookings = read_bookings(bookings_path, column_map)
    monitoring = monitor_bookings(register.design, register.table("staff_allocation"),
                                  bookings, as_of)
    directory = Path(directory)
    files = write_monitoring(directory, monitoring, register.design.trial.name)
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


def write_monitoring(directory: Path, monitoring: Monitoring,
                     trial_name: str = "Evaluation") -> dict[str, Path]:
    """monitoring.csv (one row per person), monitoring.xlsx (summary, the lists to act on,
    then everyone's row), monitoring.html."""
    tables = output_tables(monitoring)
    sheets = {name: frame for name, frame in tables.items() if name != "staff"}
    sheets["staff"] = tables["staff"]
    return {
        "csv": write_csv(directory / "monitoring.csv", tables["staff"]),
        "xlsx": write_xlsx(directory / "monitoring.xlsx", sheets),
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


def completion_chart_svg(monitoring: Monitoring) -> str:
    """The completion curve as an inline SVG (no XML header)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    curve = completion_curve(monitoring)
    figure, axes = plt.subplots(figsize=(8, 3.6))
    for group in curve.columns:
        axes.step(curve.index, curve[group], where="post", label=group)
    axes.set_ylabel("% of staff completed")
    axes.set_ylim(0, 100)
    axes.grid(alpha=0.3)
    if len(curve.columns):
        axes.legend(frameon=False)
    figure.autofmt_xdate()
    figure.tight_layout()
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    plt.close(figure)
    svg = buffer.getvalue()
    return svg[svg.index("<svg"):]


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("evalkit.monitoring", "templates"), autoescape=True,
        trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)


def _listing(frame: pd.DataFrame) -> dict:
    shown = frame.head(HTML_ROW_LIMIT)
    return {"columns": list(shown.columns), "rows": shown.astype(str).values.tolist(),
            "total": len(frame), "truncated": len(frame) > HTML_ROW_LIMIT}


def render_html(monitoring: Monitoring, tables: dict[str, pd.DataFrame],
                trial_name: str = "Evaluation") -> str:
    """The self-contained monitoring page."""
    by_pdu = [(code, _listing(group.drop(columns=["pdu_code"])))
              for code, group in tables["control_early"].groupby("pdu_code", sort=True)]
    return _environment().get_template("report.html.j2").render(
        trial_name=trial_name, as_of=monitoring.as_of.isoformat(), rows_read=monitoring.rows_read,
        summary=_listing(tables["summary"]), chart=Markup(completion_chart_svg(monitoring)),
        late=_listing(tables["late"]), not_booked=_listing(tables["not_booked"]),
        control_by_pdu=by_pdu, control_total=len(tables["control_early"]),
        wrong_course=_listing(tables["wrong_course"]), unmatched=_listing(tables["unmatched"]),
        row_limit=HTML_ROW_LIMIT)
