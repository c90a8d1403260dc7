"""Commands for the delivery stage: booking windows and calendars, guidance and risk."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from evalkit.cli.common import console, handle_errors
from evalkit.delivery.guidance import run_guidance
from evalkit.delivery.windows import run_windows

RunFolder = Annotated[Path, typer.Argument(help="Output folder holding register.sqlite.")]
TemplatesOption = Annotated[Path | None, typer.Option(
    "--templates", help="Folder of guidance templates overriding the shipped ones.")]


def _print_frame(title: str, frame: pd.DataFrame, columns: list[str], limit: int = 20) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in frame[columns].head(limit).itertuples(index=False):
        table.add_row(*[f"{v:.0%}" if isinstance(v, float) else str(v) for v in row])
    console.print(table)
    if len(frame) > limit:
        console.print(f"  ... and {len(frame) - limit} more")


def windows(directory: RunFolder, templates: TemplatesOption = None) -> None:
    """Give every staff member their course and booking window; write calendars and check
    session capacity and how many staff each PDU would have away per week.

    Example: evalkit windows outputs/seeds2
    """
    plan, files = run_windows(directory, templates=templates)
    counts = plan.rows.assign(course=plan.rows["course"].replace("", "(no course)"))
    summary = counts.groupby(["course", "group"]).size().unstack(fill_value=0)
    _print_frame("Staff per course and group", summary.reset_index(),
                 ["course", *summary.columns])
    for note in plan.notes:
        console.print(f"[yellow]note:[/] {note}")
    over = plan.over_capacity
    if len(over):
        console.print(f"[bold yellow]warning:[/] {len(over)} window(s) have more staff than "
                      "session places:")
        _print_frame("Over capacity", over, ["course", "group", "region", "sessions", "places",
                                             "demand", "shortfall"])
    busy = plan.over_share
    if len(busy):
        limit = plan.weekly["limit"].iloc[0]
        console.print(f"[bold yellow]warning:[/] {busy['pdu_code'].nunique()} PDU(s) would need "
                      f"more than {limit:.0%} of their staff in a course's grades away in the "
                      "same week:")
        _print_frame("Weekly share over the limit", busy,
                     ["pdu_name", "group", "course", "weeks", "share_per_week"])
    _print_files(files)


def guidance(directory: RunFolder, templates: TemplatesOption = None) -> None:
    """Write guidance for each group, a briefing per PDU and the contamination risk report.

    Example: evalkit guidance outputs/seeds2 --templates configs/templates
    """
    plan, files = run_guidance(directory, templates=templates)
    report = plan.report
    levels = report.by_pdu["risk"].value_counts()
    console.print(f"Contamination risk per PDU: {levels.get('high', 0)} high, "
                  f"{levels.get('medium', 0)} medium, {levels.get('low', 0)} low.")
    counts = report.findings["kind"].value_counts()
    for kind, count in counts.items():
        console.print(f"  {kind}: {count}")
    console.print(f"Control staff sharing a POD with a treated colleague: "
                  f"{report.control_with_treated_pod_mate} of {report.control_in_pods} "
                  f"({report.control_pod_share:.1%}).")
    risky = report.by_pdu[report.by_pdu["risk"] != "low"]
    if len(risky):
        _print_frame("PDUs at risk (highest first)", risky,
                     ["pdu_name", "region", "risk", "staff_affected", "mitigation"], limit=10)
    _print_files(files)


def _print_files(files: dict[str, Path]) -> None:
    console.print("Files:")
    for path in files.values():
        console.print(f"  {path}")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the app."""
    app.command()(handle_errors(windows))
    app.command()(handle_errors(guidance))
