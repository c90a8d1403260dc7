"""Shared fixtures: the shipped national example and a sealed allocation of it.

Session-scoped fixtures are read-only; tests that change a run copy it with `fresh_run`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from evalkit.allocation.assign import AssignResult, run_assign
from evalkit.examples.roster import write_example

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SEEDS2_CONFIG = PROJECT_ROOT / "configs" / "seeds2.toml"


@pytest.fixture(scope="session")
def example_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """pdus.csv and staff.csv of the shipped example (written once per test session)."""
    return write_example(tmp_path_factory.mktemp("example"))


@pytest.fixture(scope="session")
def national_run(tmp_path_factory: pytest.TempPathFactory, example_files) -> AssignResult:
    """The SEEDS2 design allocated on the national example; do not modify its folder."""
    out = tmp_path_factory.mktemp("national") / "run"
    return run_assign(SEEDS2_CONFIG, out=out, pdus=example_files["pdus"],
                      staff=example_files["staff"])


@pytest.fixture()
def fresh_run(national_run: AssignResult, tmp_path: Path) -> Path:
    """A private copy of the sealed national run folder, safe to change."""
    target = tmp_path / "run"
    shutil.copytree(national_run.directory, target)
    return target


@pytest.fixture(scope="session")
def analysed_run(tmp_path_factory: pytest.TempPathFactory, national_run: AssignResult):
    """A copy of the national run with synthetic outcomes and the full plan run on it once."""
    from evalkit.analysis.plan.run import run_plan
    from evalkit.examples.outcomes import write_example_outcomes

    root = tmp_path_factory.mktemp("analysed")
    run = root / "run"
    shutil.copytree(national_run.directory, run)
    outcomes = write_example_outcomes(root, run)
    result = run_plan(run, outcomes, out=root / "results")
    return {"run": run, "outcomes": outcomes, "out": root / "results", "result": result}


@pytest.fixture(scope="session")
def staff_level_run(tmp_path_factory: pytest.TempPathFactory, example_files) -> AssignResult:
    """A staff-level SEEDS2 design (1:1 by region) allocated on the example; read-only."""
    from staff_design import staff_level_toml

    root = tmp_path_factory.mktemp("staff_level")
    config = root / "staff.toml"
    config.write_text(staff_level_toml(SEEDS2_CONFIG), encoding="utf-8")
    return run_assign(config, out=root / "run", pdus=example_files["pdus"],
                      staff=example_files["staff"], key_file=root / "joiner.key")
