"""Commands for the allocation stage: assign (allocate, seal, export)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from evalkit.cli.common import console, progress_bar

if TYPE_CHECKING:
    from evalkit.allocation.assign import AssignResult


PdusOption = Annotated[Path | None, typer.Option(
    "--pdus", help="PDU roster (CSV or XLSX; book.xlsx#Sheet picks one sheet).")]
StaffOption = Annotated[Path | None, typer.Option(
    "--staff", help="Staff roster (CSV or XLSX; book.xlsx#Sheet picks one sheet).")]
KeyFileOption = Annotated[Path | None, typer.Option(
    "--key-file", help="Staff-level designs: the secret joiner key, kept OUTSIDE the run folder "
    "(assign creates it if absent).")]


def assign(
    config: Annotated[Path, typer.Argument(help="Trial design TOML, e.g. configs/seeds2.toml.")],
    pdus: PdusOption = None,
    staff: StaffOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder.")] = None,
    key_file: KeyFileOption = None,
) -> None:
    """Allocate units to groups, seal the register, write the exports.

    Example: evalkit assign configs/seeds2.toml --out outputs/seeds2
    """
    from evalkit.allocation.assign import run_assign

    with progress_bar("Drawing allocations", None) as advance:
        result = run_assign(config, out=out, pdus=pdus, staff=staff, on_progress=advance,
                            key_file=key_file)
    print_assign_summary(result)
    if "receipt" in result.files:
        console.print(f"[bold]Seal receipt[/] ({result.files['receipt']}): keep a copy OUTSIDE "
                      "the run folder (email or file it)\n"
                      + result.files["receipt"].read_text(encoding="utf-8"), soft_wrap=True)
    if result.key_file is not None:
        print_key_instructions(result.key_file, result.key_created)
    from evalkit.power.randomisation import record_randomisation_power  # scipy: not for --help

    power_files = record_randomisation_power(result.directory)
    if power_files:  # the design has [analysis.power]: MDES of the allocation drawn
        console.print(f"MDES at randomisation: {power_files['json']}")


def print_key_instructions(key_file: Path, created: bool) -> None:
    """Where the joiner key is, and where it must (not) be kept."""
    from evalkit.allocation.keys import readable_by_others

    verb = "created" if created else "used"
    console.print(
        f"[bold]Joiner key {verb}: {key_file}[/] (readable by you only).\n"
        "  It conceals which group each future joiner gets. Keep it OUTSIDE the run folder and\n"
        "  off the shared drive (e.g. your personal drive or a password manager), with a backup\n"
        "  copy: `evalkit enrol` and `evalkit verify` need --key-file; without it no joiner can\n"
        "  be enrolled, and anyone who holds it can predict future joiners' groups.")
    if readable_by_others(key_file):
        console.print(f"[bold yellow]warning:[/] other users can read {key_file}; "
                      f"restrict it (chmod 600) or move it somewhere private.")


def print_assign_summary(result: AssignResult) -> None:
    """Counts per stratum x group, balance, and where the files went."""
    from evalkit.allocation.exports import XLSX_ROW_LIMIT

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
            cells.append(fmt_cell(float(mean)) + ("" if smd != smd else f" ({smd:+.2f})"))
        table.add_row(name, *cells)
    return table


def _read_balance(path: Path):
    import pandas as pd

    return pd.read_csv(path)


def fmt_cell(value: object) -> str:
    """A table cell: floats to 3 decimals, NaN blank."""
    if isinstance(value, float):
        return "" if value != value else f"{value:.3f}"
    return str(value)


COMMANDS = {"assign": assign}
