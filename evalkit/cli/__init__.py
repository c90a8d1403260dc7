"""The `evalkit` command line: parse arguments, call the library, print and write files."""

from __future__ import annotations

import typer

from evalkit.cli import (
    allocation,
    analysis,
    delivery,
    monitoring,
    publish,
    turnover,
)

app = typer.Typer(
    name="evalkit",
    help="Run a randomised evaluation of a staff learning programme, end to end.\n\n"
    "Exit codes: 0 done, 1 a check failed (verify mismatch, lookup not found), "
    "2 bad usage or bad input.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
allocation.register(app)
turnover.register(app)
monitoring.register(app)
analysis.register(app)
publish.register(app)
delivery.register(app)

__all__ = ["app"]
