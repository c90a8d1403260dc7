"""Commands for the audit stage: verify a sealed run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evalkit.cli.allocation import KeyFileOption, PdusOption, StaffOption
from evalkit.cli.common import console


def verify(
    directory: Annotated[Path, typer.Argument(help="Output folder holding register.sqlite.")],
    config: Annotated[Path | None, typer.Option(help="Design file (default: as recorded).")] = None,
    pdus: PdusOption = None,
    staff: StaffOption = None,
    key_file: KeyFileOption = None,
    receipt: Annotated[Path | None, typer.Option(
        "--receipt", help="The seal receipt assign wrote (kept outside the folder).")] = None,
    root_hash: Annotated[str | None, typer.Option(
        "--root-hash", help="The register root hash from the seal receipt.")] = None,
) -> None:
    """Check a sealed run folder; exit 1 on any mismatch.

    Recomputes the allocation from the manifest, design and inputs; checks the register's
    triggers and event chain, every file evalkit wrote, and (given) the seal receipt.
    Needs only read access.

    Example: evalkit verify outputs/seeds2 --receipt ~/seeds2-receipt.txt
    """
    from evalkit.audit.verify import verify_allocation

    report = verify_allocation(directory, config=config, pdus=pdus, staff=staff,
                               key_file=key_file, receipt=receipt, root_hash=root_hash)
    for line in report.notes:
        console.print(f"[yellow]note:[/] {line}")
    if report.matches:
        console.print(f"[green]match:[/] {report.summary}")
        return
    console.print(f"[bold red]MISMATCH:[/] {report.summary}")
    for line in report.differences:
        console.print(f"  {line}")
    raise typer.Exit(1)


def refresh_command(
    directory: Annotated[Path, typer.Argument(help="Output folder holding register.sqlite.")],
) -> None:
    """Rebuild every derived file of a run folder from its register.

    The allocation exports, and booking windows, guidance and the lookup page when they had
    been made. Heals a folder whose last command was interrupted.

    Example: evalkit refresh outputs/seeds2
    """
    from evalkit.audit.refresh import refresh

    files = refresh(directory)
    console.print(f"rebuilt {len(files)} file(s) from the register:")
    for path in files.values():
        console.print(f"  {path}")


COMMANDS = {"verify": verify, "refresh": refresh_command}
