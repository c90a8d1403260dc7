"""Command for monitoring bookings and completions against the allocation."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from evalkit.cli.common import console, frame_table
from evalkit.errors import InputError


def _as_of(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError(f"--as-of {text!r}: expected a date as YYYY-MM-DD") from None


def monitor(
    directory: Annotated[Path, typer.Argument(help="Output folder holding register.sqlite.")],
    bookings: Annotated[Path, typer.Option("--bookings", help="Learning-platform export (CSV or "
                                           "XLSX): staff_id, course, status, date.")],
    map_column: Annotated[list[str] | None, typer.Option(
        "--map-column", help="Use another export column: NAME=Column, e.g. "
        "'staff_id=Employee Number'. Repeatable.")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Date the export was taken "
                                              "(YYYY-MM-DD); default today.")] = None,
    map_status: Annotated[list[str] | None, typer.Option(
        "--map-status", help="Count an export status as one of booked, attended, completed, "
        "cancelled: 'Enrolled=booked'. Repeatable.")] = None,
) -> None:
    """Check bookings and completions against groups and windows.

    Writes DIR/monitoring.csv, monitoring.xlsx and monitoring.html, and stores per-person
    compliance in the register for the complier (CACE) analysis.

    Headers match ignoring case, spaces and punctuation ('Staff ID' is staff_id).

    Example: evalkit monitor outputs/seeds2 --bookings mylearning.csv --map-column "staff_id=ID"
    --map-status Enrolled=booked
    """
    from evalkit.monitoring.bookings import parse_column_map, parse_status_map
    from evalkit.monitoring.report import run_monitor

    result = run_monitor(directory, bookings, parse_column_map(map_column or []), _as_of(as_of),
                         parse_status_map(map_status or []))
    monitoring = result.monitoring
    console.print(frame_table(monitoring.summary,
                              f"Monitoring as of {monitoring.as_of} ({monitoring.rows_read} rows)"))
    console.print(f"late: {len(monitoring.late)}; not booked: {len(monitoring.not_booked)}; "
                  f"Control early: {len(monitoring.control_early)}; wrong course: "
                  f"{len(monitoring.wrong_course)}; rows matching no staff: "
                  f"{len(monitoring.unmatched)}")
    for path in result.files.values():
        console.print(f"wrote {path}")


COMMANDS = {"monitor": monitor}
