"""Commands for the shipped example: write it, or run every stage on it (demo)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from evalkit.cli.allocation import print_assign_summary
from evalkit.cli.blas import single_threaded_blas
from evalkit.cli.common import console, progress_bar


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
    """Write the shipped example roster (109 real PDUs, synthetic staff).

    The 109 real PDUs with a synthetic national staff roster near the published grade mix.

    Example: evalkit example configs/example
    """
    from evalkit.examples.roster import write_example

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


def demo(
    directory: Annotated[Path, typer.Argument(help="Scratch folder for the demo run.")] = Path(
        "outputs"
    ),
    config: Annotated[Path | None, typer.Option(
        help="Trial design (default: the shipped SEEDS2 design, packaged with evalkit).")
    ] = None,
) -> None:
    """Run every stage on the shipped example, start to finish.

    Roster, allocation, windows, guidance, lookup page, monitoring and outcome analysis.
    The demo folder is scratch and is replaced.

    Example: evalkit demo outputs
    """
    single_threaded_blas()
    from evalkit.audit.certificate import write_certificate
    from evalkit.audit.index_page import write_index
    from evalkit.examples.demo import PACKAGED_DESIGN, STEPS, run_demo

    with progress_bar("evalkit demo", len(STEPS)) as advance:
        started = []

        def on_step(name: str) -> None:
            if started:
                advance(1)
            started.append(name)
            console.print(f"[dim]- {name}[/]")

        result = run_demo(directory, config or PACKAGED_DESIGN, on_step=on_step)
        advance(1)
    print_assign_summary(result.assign)
    console.print("\n[bold green]Demo done.[/] Open these:")
    for name, path in result.outputs.items():
        console.print(f"  {name:<32} {path}")
    console.print(f"All outputs are in [bold]{result.run_directory}[/]")
    write_certificate(result.run_directory)
    console.print(f"\nStart here: [bold]{write_index(result.run_directory)}[/]")


COMMANDS = {"example": example, "demo": demo}
