"""Commands for the audit stage: verify a sealed run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evalkit.audit.verify import verify_allocation
from evalkit.cli.allocation import KeyFileOption, PdusOption, StaffOption
from evalkit.cli.common import console


def verify(
    directory: Annotated[Path, typer.Argument(help="Output folder holding register.sqlite.")],
    config: Annotated[Path | None, typer.Option(help="Design file (default: as recorded).")] = None,
    pdus: PdusOption = None,
    staff: StaffOption = None,
    key_file: KeyFileOption = None,
) -> None:
    """Check a sealed run folder; exit 1 on any mismatch.

    Recomputes the allocation from the manifest, design and inputs.

    Example: evalkit verify outputs/seeds2
    """
    report = verify_allocation(directory, config=config, pdus=pdus, staff=staff,
                               key_file=key_file)
    for line in report.notes:
        console.print(f"[yellow]note:[/] {line}")
    if report.matches:
        console.print(f"[green]match:[/] {report.summary}")
        return
    console.print(f"[bold red]MISMATCH:[/] {report.summary}")
    for line in report.differences:
        console.print(f"  {line}")
    raise typer.Exit(1)


COMMANDS = {"verify": verify}
