"""The console script's own parsing (evalkit/cli/fastparse.py) agrees with typer's.

For each command line: the keyword arguments typer would pass the command, and those
`fastparse.parse` gives, are the same values of the same types, or fastparse declines (and
typer parses the line as before). The plain lines must not be declined, or the fast path
would go unused; help, typos and bad values must be, so their messages stay typer's.
"""

from __future__ import annotations

import functools
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.cli import COMMANDS, click_command, fastparse

NATIONAL = ["tests/reference/datasets/national.csv", "--outcome", "y", "--arm-col", "arm",
            "--cluster-col", "pdu", "--strata-col", "region", "--covariate", "x1",
            "--model", "cr2"]
# (command, arguments): lines fastparse reads itself.
PLAIN = [
    ("windows", ["RUN"]), ("guidance", ["RUN", "--templates", "my templates"]),
    ("publish", ["RUN"]), ("publish", ["RUN", "--iterations", "200000", "--out", "site"]),
    ("publish", ["--out=page.html", "RUN"]),
    ("analyse", NATIONAL), ("analyse", [*NATIONAL, "--covariate", "x2", "--covariate=x3"]),
    ("analyse", [*NATIONAL, "--model", "ri", "--permutations", "500", "--seed=-3"]),
    ("analyse", [*NATIONAL, "--allow-clusters-across-strata", "--where", "grade == PO",
                 "--json", "r.json", "--non-randomised", "Early Adopter"]),
    ("analyse", ["--register", "RUN", "--outcomes", "o.csv"]),
    ("assign", ["configs/seeds2.toml", "--pdus", "p.csv", "--staff", "s.csv", "--out", "o"]),
    ("verify", ["RUN"]), ("lookup", ["RUN", "N55YRK"]), ("refresh", ["RUN"]),
    ("monitor", ["RUN", "--bookings", "b.csv", "--as-of", "2023-05-01"]),
    ("enrol", ["RUN", "--staff", "new.csv"]),
    ("transfer", ["RUN", "--staff-id", "S1", "--to-pdu", "N55", "--reason", "moved"]),
    ("log", ["RUN", "--limit", "5"]), ("certificate", ["RUN"]),
    ("example", ["EX", "--seed", "7"]), ("demo", []), ("demo", ["scratch"]),
    ("power", ["--clusters", "100", "--cluster-size", "180.5", "--icc", "0.05"]),
    ("power", ["--clusters", "100", "--icc", "1E-3", "--simulate", "100", "--workers", "2"]),
    ("analyse", [*NATIONAL, "--model", "mixed"]),   # given twice: the last one counts
    ("analyse", [*NATIONAL, "--allow-clusters-across-arms", "--allow-clusters-across-arms"]),
]
# Lines fastparse must leave to typer: help, usage errors, values it does not check.
DECLINED = [
    ("windows", []), ("windows", ["--help"]), ("windows", ["RUN", "extra"]),
    ("windows", ["RUN", "--templates"]), ("windows", ["RUN", "--bogus"]),
    ("windows", ["RUN", "--"]), ("windows", [""]), ("windows", ["-"]),
    ("publish", ["RUN", "--iterations", "500"]), ("publish", ["RUN", "--iterations", "2e5"]),
    ("publish", ["RUN", "--iterations", "0200000"]),
    ("analyse", [*NATIONAL, "--permutations", "many"]), ("analyse", [*NATIONAL, "--seed", "-3"]),
    ("analyse", [*NATIONAL, "--allow-clusters-across-strata=yes"]),
    ("analyse", [*NATIONAL, "--outcome="]), ("analyse", [*NATIONAL, "-h"]),
    ("monitor", ["RUN"]), ("transfer", ["RUN", "--staff-id", "S1"]),
    ("power", ["--icc", "five percent"]), ("power", ["--icc", "nan"]),
    ("power", ["--icc", ".5"]), ("example", ["EX", "--seed", "007"]),
    ("analyse", [*NATIONAL, "--seed", "+3"]), ("lookup", ["RUN", "--", "x"]),
]


def _function(name: str):
    module, function, _ = COMMANDS[name]
    return getattr(importlib.import_module(f"evalkit.cli.{module}"), function)


def _typer_arguments(name: str, args: list[str]) -> dict | None:
    """The keyword arguments typer passes command `name` for `args`, None if it refuses."""
    seen: dict = {}
    original = _function(name)

    @functools.wraps(original)
    def record(**kwargs):
        seen.update(kwargs)

    try:
        click_command(name, record).main(args, prog_name="evalkit", standalone_mode=False)
    except Exception:  # noqa: BLE001 (a usage error: typer refuses the line)
        return None
    except SystemExit:
        return None
    return seen


def _typed(arguments: dict) -> dict:
    return {key: (type(value), value) for key, value in arguments.items()}


def _fast_arguments(name: str, args: list[str]) -> dict | None:
    function = _function(name)
    return fastparse.parse(function, click_command(name, function).params, args)


@pytest.mark.parametrize(("name", "args"), PLAIN)
def test_plain_lines_are_read_as_typer_reads_them(name, args):
    expected = _typer_arguments(name, args)
    assert expected is not None, "typer refuses this line: not a plain one"
    fast = _fast_arguments(name, args)
    assert fast is not None, "fastparse declined a plain line"
    assert _typed(fast) == _typed(expected)


@pytest.mark.parametrize(("name", "args"), DECLINED)
def test_help_errors_and_unchecked_values_are_left_to_typer(name, args):
    assert _fast_arguments(name, args) is None


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_declares_parameters_fastparse_reads_or_declines(name):
    """No command's declaration breaks fastparse (it reads or declines, never raises)."""
    function = _function(name)
    fastparse.parse(function, click_command(name, function).params, ["--help"])


def test_the_console_script_gives_typer_messages_for_what_it_declines(tmp_path: Path):
    script = [sys.executable, "-c", "from evalkit.cli import app; app()"]
    for args, code, text in [(["windows", str(tmp_path / "nowhere")], 2, "no register found"),
                             (["publish", "RUN", "--iterations", "5"], 2, "--iterations"),
                             (["analyse", "--bogus"], 2, "No such option")]:
        done = subprocess.run([*script, *args], capture_output=True, text=True)
        assert done.returncode == code, done.stderr
        assert text in done.stderr
