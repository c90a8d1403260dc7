"""The `evalkit` command line: parse arguments, call the library, print and write files."""

from __future__ import annotations

import typer

from evalkit.cli import (
    allocation_commands,
    analysis_commands,
    delivery_commands,
    monitor_commands,
    publish_commands,
    turnover_commands,
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
allocation_commands.register(app)
turnover_commands.register(app)
monitor_commands.register(app)
analysis_commands.register(app)
publish_commands.register(app)
delivery_commands.register(app)

__all__ = ["app"]
