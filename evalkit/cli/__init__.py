"""The `evalkit` command line: parse arguments, call the library, print and write files.

Each stage's commands live in the module named after it; this module lists them in the order
the data flows, so `evalkit --help` reads as the life of a trial.
"""

from __future__ import annotations

from typing import Annotated

import typer

import evalkit
from evalkit.cli import allocation, analysis, audit, delivery, examples, monitoring, turnover
from evalkit.cli import log as audit_trail
from evalkit.cli import power as power_commands
from evalkit.cli.common import handle_errors
from evalkit.cli.runlock import locked

# One BLAS thread for every command (before numpy loads): the fits' matrices are small, and the
# last digits of results then do not depend on the machine's core count.
examples.single_threaded_blas()

DATA_FLOW_ORDER = ("example", "assign", "verify", "lookup", "windows", "guidance", "publish",
                   "enrol", "transfer", "refresh", "monitor", "analyse", "log", "certificate",
                   "demo")
COMMANDS = {**examples.COMMANDS, **allocation.COMMANDS, **audit.COMMANDS, **delivery.COMMANDS,
            **turnover.COMMANDS, **monitoring.COMMANDS, **analysis.COMMANDS}
COMMANDS.update(power_commands.COMMANDS)  # design-stage power (before analysis)
COMMANDS.update(audit_trail.COMMANDS)  # the audit trail: event log, certificate

app = typer.Typer(
    name="evalkit",
    help="Run a randomised evaluation of a staff learning programme, end to end.\n\n"
    "Exit codes: 0 done, 1 a check failed (verify mismatch, lookup not found), "
    "2 bad usage or bad input.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"evalkit {evalkit.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the evalkit version and exit.")] = False,
) -> None:
    """Run a randomised evaluation of a staff learning programme, end to end."""


def _ordered_names() -> list[str]:
    """Commands in data-flow order; any command not listed there follows, alphabetically."""
    listed = [name for name in DATA_FLOW_ORDER if name in COMMANDS]
    return listed + sorted(set(COMMANDS) - set(DATA_FLOW_ORDER))


def _summary(command: object) -> str:
    """The first line of a command's docstring: its one-line summary in `evalkit --help`."""
    return (getattr(command, "__doc__", None) or "").strip().splitlines()[0].strip()


for _name in _ordered_names():
    app.command(_name, short_help=_summary(COMMANDS[_name]))(
        handle_errors(locked(_name, audit_trail.refreshing(_name, COMMANDS[_name]))))

__all__ = ["app"]
