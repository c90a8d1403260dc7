"""Commands for the delivery stage: lookup, booking windows and calendars, guidance and
risk, the staff lookup page."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from evalkit.cli.allocation import fmt_cell
from evalkit.cli.common import console, frame_table, progress_bar

if TYPE_CHECKING:
    import pandas as pd


RunFolder = Annotated[Path, typer.Argument(help="Output folder holding register.sqlite.")]
TemplatesOption = Annotated[Path | None, typer.Option(
    "--templates", help="Folder of guidance templates overriding the shipped ones.")]


def _print_frame(title: str, frame: pd.DataFrame, columns: list[str], limit: int = 20) -> None:
    console.print(frame_table(frame, title, columns, limit,
                              cell=lambda v: f"{v:.0%}" if isinstance(v, float) else str(v)))


def windows(directory: RunFolder, templates: TemplatesOption = None) -> None:
    """Give everyone their booking window; write calendars.

    Give every staff member their course and booking window; write calendars and check
    session capacity and how many staff each PDU would have away per week.

    Example: evalkit windows outputs/seeds2
    """
    from evalkit.delivery.windows import run_windows

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
    """Write group guidance, PDU briefings and the contamination report.

    Example: evalkit guidance outputs/seeds2 --templates configs/templates
    """
    from evalkit.delivery.guidance import run_guidance

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


def lookup_command(
    directory: Annotated[Path, typer.Argument(help="Output folder holding register.sqlite.")],
    query: Annotated[str, typer.Argument(help="Staff ID, email, PDU code or PDU name.")],
) -> None:
    """Find a person or PDU: group, course and booking window.

    Example: evalkit lookup outputs/seeds2 N55YRK
    """
    from evalkit.delivery.lookup import lookup

    result = lookup(directory, query)
    rows = result.rows
    if len(rows) == 1:
        table = Table(title=result.title, show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value")
        for field, value in rows.iloc[0].items():
            table.add_row(str(field), fmt_cell(value))
    else:
        shared = [c for c in rows.columns if rows[c].nunique() == 1]
        table = Table(title=result.title + "  " + " · ".join(
            f"{c}: {rows[c].iloc[0]}" for c in shared if c not in {"pdu_code", "pdu_name"}))
        varying = [c for c in rows.columns if c not in shared]
        for column in varying:
            table.add_column(column)
        for row in rows[varying].itertuples(index=False):
            table.add_row(*[fmt_cell(v) for v in row])
    console.print(table)


def publish_command(
    directory: Annotated[Path, typer.Argument(help="Output folder holding register.sqlite.")],
    out: Annotated[Path | None, typer.Option(
        "--out", help="Folder for index.html, or an .html file (default: DIR/site).")] = None,
    iterations: Annotated[int | None, typer.Option(
        "--iterations", min=1000, help="PBKDF2 rounds of the lookup-code hashes (staff-level "
        "designs; default 200,000, or as last published).")] = None,
) -> None:
    """Write the offline page where staff look up their group.

    One self-contained HTML file: staff find their PDU's (or their own) group and window.

    Example: evalkit publish outputs/seeds2 --out outputs/seeds2/site
    """
    from evalkit.delivery.publish import publish

    with progress_bar("Hashing lookup codes", None) as advance:
        result = publish(directory, out, iterations=iterations, on_progress=advance)
    staff = f", {result.staff_entries} lookup codes (hashed)" if result.staff_entries else ""
    console.print(f"wrote {result.path} ({result.size_bytes / 1024:.0f} KiB; "
                  f"{result.pdus} PDUs{staff})")
    if result.codes_file is not None:
        console.print(f"each person's lookup code is in {result.codes_file} "
                      f"({result.new_codes} new): mail-merge it to them; keep it private.")


COMMANDS = {"lookup": lookup_command, "windows": windows, "guidance": guidance,
            "publish": publish_command}
