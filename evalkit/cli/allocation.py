"""Commands for the allocation stage: example, assign, verify, lookup, demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from evalkit.allocation.assign import AssignResult, run_assign
from evalkit.allocation.exports import XLSX_ROW_LIMIT
from evalkit.audit.verify import verify_allocation
from evalkit.cli.common import console, handle_errors, progress_bar
from evalkit.delivery.lookup import lookup
from evalkit.examples.roster import write_example

PdusOption = Annotated[Path | None, typer.Option("--pdus", help="PDU roster (CSV or XLSX).")]
StaffOption = Annotated[Path | None, typer.Option("--staff", help="Staff roster (CSV or XLSX).")]


def example(
    directory: Annotated[Path, typer.Argument(help="Folder to write pdus.csv and staff.csv to.")],
    seed: Annotated[int, typer.Option(help="Seed of the synthetic roster.")] = 2022,
    outcomes_for: Annotated[Path | None, typer.Option(
        "--outcomes-for", help="Sealed run folder: also write synthetic outcomes.csv for it.")
    ] = None,
    bookings_for: Annotated[Path | None, typer.Option(
        "--bookings-for", help="Sealed run folder: also write bookings.csv, a synthetic "
        "learning-platform export for it.")] = None,
) -> None:
    """Write the shipped example: 109 real PDUs and a synthetic national staff roster.

    Example: evalkit example configs/example
    """
    paths = write_example(directory, seed=seed)
    for name, path in paths.items():
        console.print(f"wrote {name}: {path}")
    if outcomes_for is not None:
        from evalkit.examples.outcomes import write_example_outcomes

        console.print(f"wrote outcomes: {write_example_outcomes(directory, outcomes_for)}")
    if bookings_for is not None:
        from evalkit.examples.bookings import write_example_bookings

        written = write_example_bookings(bookings_for, Path(directory) / "bookings.csv", seed)
        console.print(f"wrote bookings: {written}")


def assign(
    config: Annotated[Path, typer.Argument(help="Trial design TOML, e.g. configs/seeds2.toml.")],
    pdus: PdusOption = None,
    staff: StaffOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder.")] = None,
) -> None:
    """Allocate units to groups, seal the allocation in a register and write the exports.

    Example: evalkit assign configs/seeds2.toml --out outputs/seeds2
    """
    with progress_bar("Drawing allocations", None) as advance:
        result = run_assign(config, out=out, pdus=pdus, staff=staff, on_progress=advance)
    print_assign_summary(result)


def print_assign_summary(result: AssignResult) -> None:
    """Counts per stratum x group, balance, and where the files went."""
    table = result.allocation.table
    strata = result.manifest["strata"]
    groups = list(dict.fromkeys(result.manifest["totals"]))
    counts = Table(title="Units per stratum and group")
    for column in [" | ".join(strata) or "stratum", *groups]:
        counts.add_column(column)
    for stratum, row in sorted(result.manifest["counts"].items()):
        counts.add_row(stratum, *[str(row.get(g, 0)) for g in groups])
    counts.add_row("[bold]total", *[f"[bold]{result.manifest['totals'].get(g, 0)}" for g in groups])
    console.print(counts)
    console.print(balance_summary(_read_balance(result.files["balance"])))
    if result.manifest["method"] == "rerandomise":
        console.print(f"re-randomisation: accepted draw {result.manifest['draws_tried']}; "
                      f"probabilities from {result.manifest['probabilities']['draws']} accepted "
                      f"draws (max Monte Carlo SE "
                      f"{result.manifest['probabilities']['max_monte_carlo_se']:.4f})")
    if "xlsx" not in result.files:
        console.print(f"allocation.xlsx not written: more than {XLSX_ROW_LIMIT:,} rows "
                      "(slow to write and to open); use the CSV files.")
    console.print(f"{len(table)} units allocated; {len(result.staff_allocation)} staff. "
                  f"Files in [bold]{result.directory}[/]:")
    for path in result.files.values():
        console.print(f"  {path}")


def balance_summary(frame) -> Table:
    """Covariates as rows, groups as columns: 'mean (SMD vs control)'."""
    table = Table(title="Balance: mean (standardised difference against control)")
    table.add_column("")
    for group in frame["group"]:
        table.add_column(str(group), justify="right")
    table.add_row("units", *[str(v) for v in frame["units"]])
    if "staff" in frame.columns:
        table.add_row("staff", *[str(v) for v in frame["staff"]])
    for column in [c for c in frame.columns if c.startswith("mean_")]:
        name = column.removeprefix("mean_")
        cells = []
        for mean, smd in zip(frame[column], frame[f"smd_{name}"], strict=True):
            cells.append(_fmt(float(mean)) + ("" if smd != smd else f" ({smd:+.2f})"))
        table.add_row(name, *cells)
    return table


def _read_balance(path: Path):
    import pandas as pd

    return pd.read_csv(path)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "" if value != value else f"{value:.3f}"
    return str(value)


def verify(
    directory: Annotated[Path, typer.Argument(help="Output folder holding register.sqlite.")],
    config: Annotated[Path | None, typer.Option(help="Design file (default: as recorded).")] = None,
    pdus: PdusOption = None,
    staff: StaffOption = None,
) -> None:
    """Recompute the allocation from the manifest, design and inputs; exit 1 on any mismatch.

    Example: evalkit verify outputs/seeds2
    """
    report = verify_allocation(directory, config=config, pdus=pdus, staff=staff)
    for line in report.notes:
        console.print(f"[yellow]note:[/] {line}")
    if report.matches:
        console.print(f"[green]match:[/] {report.summary}")
        return
    console.print(f"[bold red]MISMATCH:[/] {report.summary}")
    for line in report.differences:
        console.print(f"  {line}")
    raise typer.Exit(1)


def lookup_command(
    directory: Annotated[Path, typer.Argument(help="Output folder holding register.sqlite.")],
    query: Annotated[str, typer.Argument(help="Staff ID, email, PDU code or PDU name.")],
) -> None:
    """Find a person or PDU: PDU, region, group, course and booking window.

    Example: evalkit lookup outputs/seeds2 N55YRK
    """
    result = lookup(directory, query)
    rows = result.rows
    if len(rows) == 1:
        table = Table(title=result.title, show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value")
        for field, value in rows.iloc[0].items():
            table.add_row(str(field), _fmt(value))
    else:
        shared = [c for c in rows.columns if rows[c].nunique() == 1]
        table = Table(title=result.title + "  " + " · ".join(
            f"{c}: {rows[c].iloc[0]}" for c in shared if c not in {"pdu_code", "pdu_name"}))
        varying = [c for c in rows.columns if c not in shared]
        for column in varying:
            table.add_column(column)
        for row in rows[varying].itertuples(index=False):
            table.add_row(*[_fmt(v) for v in row])
    console.print(table)


def demo(
    directory: Annotated[Path, typer.Argument(help="Scratch folder for the demo run.")] = Path(
        "outputs"
    ),
    config: Annotated[Path, typer.Option(help="Trial design.")] = Path("configs/seeds2.toml"),
) -> None:
    """Run every stage on the shipped example: roster, allocation, windows, guidance, lookup
    page, monitoring and outcome analysis. The demo folder is scratch and is replaced.

    Example: evalkit demo outputs
    """
    from evalkit.examples.demo import STEPS, run_demo

    with progress_bar("evalkit demo", len(STEPS)) as advance:
        started = []

        def on_step(name: str) -> None:
            if started:
                advance(1)
            started.append(name)
            console.print(f"[dim]- {name}[/]")

        result = run_demo(directory, config, on_step=on_step)
        advance(1)
    print_assign_summary(result.assign)
    console.print("\n[bold green]Demo done.[/] Open these:")
    for name, path in result.outputs.items():
        console.print(f"  {name:<32} {path}")
    console.print(f"All outputs are in [bold]{result.run_directory}[/]")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the app."""
    app.command()(handle_errors(example))
    app.command()(handle_errors(assign))
    app.command()(handle_errors(verify))
    app.command("lookup")(handle_errors(lookup_command))
    app.command()(handle_errors(demo))
