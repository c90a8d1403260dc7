"""The `evalkit` command line: parse arguments, call the library, print and write files.

Each stage's commands live in the module named after it. This module only lists them, in the
order the data flows (so `evalkit --help` reads as the life of a trial), by name, module and
one-line summary: a command's module, and through it its stage, is imported only when that
command runs or shows its help, so `evalkit windows` does not load the analysis stage.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

import evalkit
from evalkit.cli import fastparse
from evalkit.cli.blas import single_threaded_blas

# One BLAS thread for every command (before numpy loads): the fits' matrices are small, and the
# last digits of results then do not depend on the machine's core count.
single_threaded_blas()

# name: (module under evalkit.cli, function, its one-line summary in `evalkit --help`), in
# data-flow order. tests/test_cli_lazy.py checks each summary against the docstring's first line.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "example": ("examples", "example",
                "Write the shipped example roster (109 real PDUs, synthetic staff)."),
    "assign": ("allocation", "assign",
               "Allocate units to groups, seal the register, write the exports."),
    "verify": ("audit", "verify", "Check a sealed run folder; exit 1 on any mismatch."),
    "lookup": ("delivery", "lookup_command",
               "Find a person or PDU: group, course and booking window."),
    "windows": ("delivery", "windows", "Give everyone their booking window; write calendars."),
    "guidance": ("delivery", "guidance",
                 "Write group guidance, PDU briefings and the contamination report."),
    "publish": ("delivery", "publish_command",
                "Write the offline page where staff look up their group."),
    "enrol": ("turnover", "enrol_command", "Enrol new starters into the trial."),
    "transfer": ("turnover", "transfer_command",
                 "Move a person to another PDU; they keep their group."),
    "refresh": ("audit", "refresh_command",
                "Rebuild every derived file of a run folder from its register."),
    "monitor": ("monitoring", "monitor",
                "Check bookings and completions against groups and windows."),
    "analyse": ("analysis", "analyse", "Estimate effects: one model, or the full plan on a run."),
    "log": ("log", "log", "Show who did what, when and why; write events.csv and events.xlsx."),
    "certificate": ("log", "certificate",
                    "Write the allocation certificate (certificate.html, one A4 page)."),
    "demo": ("examples", "demo", "Run every stage on the shipped example, start to finish."),
    "power": ("power", "power", "Power, MDES or clusters needed, from numbers or the design."),
}


def command_function(name: str) -> Callable[..., Any]:
    """The function that runs command `name` (importing its module), wrapped as every command
    is: errors as messages and exit codes, the run folder's lock, then its front door."""
    from evalkit.cli.common import handle_errors
    from evalkit.cli.log import refreshing
    from evalkit.cli.runlock import locked

    module, function, _ = COMMANDS[name]
    command = getattr(importlib.import_module(f"evalkit.cli.{module}"), function)
    return handle_errors(locked(name, refreshing(name, command)))


def click_command(name: str, function: Callable[..., Any]) -> Any:
    """Command `name` as typer builds it from `function`, all its parameters declared."""
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                         rich_markup_mode=None)
    single.command(name, short_help=COMMANDS[name][2])(function)
    return typer.main.get_command(single)


class LazyGroup(TyperGroup):
    """Lists every command from COMMANDS (name and summary only); builds the one invoked,
    with all its parameters, when it is resolved to run or to show its help."""

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if name in COMMANDS:
            command = click_command(name, command_function(name))
        return name, command, rest


class EvalkitApp(typer.Typer):
    """The typer app; as the console script (called with no arguments) it first tries
    run_directly."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not args and not kwargs:
            run_directly(sys.argv[1:])
        return super().__call__(*args, **kwargs)


def run_directly(argv: list[str]) -> None:
    """Run `evalkit COMMAND ...` and exit, as typer would, when `fastparse` can read the
    command line (skipping typer's pydantic validators); return to let typer parse it."""
    if not argv or argv[0] not in COMMANDS:
        return
    function = command_function(argv[0])
    arguments = fastparse.parse(function, click_command(argv[0], function).params, argv[1:])
    if arguments is None:
        return
    try:
        function(**arguments)
    except typer.Exit as stop:
        sys.exit(stop.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except EOFError:
        typer.echo(err=True)
        typer.echo("Aborted!", err=True)
        sys.exit(1)
    sys.exit(0)


app = EvalkitApp(
    name="evalkit",
    cls=LazyGroup,
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


def _listed_only() -> None:
    """Stands in for a command in the listing; LazyGroup builds the real one."""


for _name, (_module, _function, _summary) in COMMANDS.items():
    app.command(_name, short_help=_summary)(_listed_only)

__all__ = ["app"]
