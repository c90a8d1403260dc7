"""Issue 13: the CLI lists every command without importing it, and runs only the one asked for.

`evalkit.cli.COMMANDS` names each command's module, function and one-line summary, so
`evalkit --help` imports no stage; these keep that list true to the commands themselves and
check, by imports (never by wall-clock time), that one command does not load another's stage.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evalkit.cli import COMMANDS, app

STAGE_MODULES = ("allocation", "analysis", "audit", "delivery", "examples", "log", "monitoring",
                 "power", "turnover")
FEW = Path(__file__).resolve().parent / "reference" / "datasets" / "few_clusters.csv"


def _first_line(function: object) -> str:
    return (function.__doc__ or "").strip().splitlines()[0].strip()


def test_the_registry_lists_every_command_of_every_stage_module():
    declared = {}
    for module in STAGE_MODULES:
        declared.update(importlib.import_module(f"evalkit.cli.{module}").COMMANDS)
    assert set(COMMANDS) == set(declared)
    for name, (module, function, _) in COMMANDS.items():
        assert getattr(importlib.import_module(f"evalkit.cli.{module}"), function) \
            is declared[name], name


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_summary_is_the_first_line_of_its_docstring(name):
    module, function, summary = COMMANDS[name]
    assert summary == _first_line(getattr(importlib.import_module(f"evalkit.cli.{module}"),
                                          function))


def test_help_lists_the_commands_in_data_flow_order():
    output = CliRunner().invoke(app, ["--help"]).output
    listed = [line.split()[0] for line in output.split("Commands:")[1].splitlines()
              if line.startswith("  ") and not line.startswith("   ")]
    assert listed == list(COMMANDS)


def _modules_after(*args: str) -> set[str]:
    """Modules in sys.modules after `evalkit ARGS` in a fresh process (exit code checked)."""
    code = ("import sys\nfrom evalkit.cli import app\n"
            "try:\n    app(sys.argv[1:])\nexcept SystemExit as stop:\n    assert not stop.code\n"
            "print(' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         check=True).stdout
    return set(out.splitlines()[-1].split())


def test_help_imports_no_command_module():
    loaded = _modules_after("--help")
    assert not {f"evalkit.cli.{module}" for module in STAGE_MODULES} & loaded
    assert not {m for m in loaded if m.startswith("evalkit.") and not m.startswith(
        ("evalkit.cli", "evalkit.errors"))}


def test_one_command_help_imports_only_its_own_module():
    loaded = _modules_after("windows", "--help")
    assert "evalkit.cli.delivery" in loaded
    assert not {"evalkit.cli.analysis", "evalkit.cli.power", "evalkit.cli.monitoring"} & loaded


def test_windows_does_not_load_the_analysis_or_monitoring_stages(fresh_run: Path):
    loaded = _modules_after("windows", str(fresh_run))
    assert "evalkit.delivery.windows" in loaded
    unwanted = sorted(m for m in loaded if m.startswith((
        "evalkit.analysis", "evalkit.power", "evalkit.monitoring", "evalkit.turnover",
        "evalkit.cli.analysis", "evalkit.cli.power", "scipy", "statsmodels")))
    assert not unwanted, f"`evalkit windows` imported {unwanted}"


def test_analyse_does_not_load_the_delivery_stage():
    loaded = _modules_after("analyse", str(FEW), "--outcome", "y", "--strata-col", "region",
                            "--covariate", "x1", "--model", "cr2")
    assert "evalkit.analysis.ols" in loaded
    unwanted = sorted(m for m in loaded if m.startswith((
        "evalkit.delivery", "evalkit.cli.delivery", "evalkit.allocation", "evalkit.cli.power",
        "icalendar", "jinja2")))
    assert not unwanted, f"`evalkit analyse --model cr2` imported {unwanted}"
