"""Issue 13: one model loads only its own estimator; cr2 and mixed load no statsmodels.

Start-up is most of `evalkit analyse --model cr2`'s cost (R's clubSandwich is the yardstick),
so these keep the lazy imports honest. They check imports, never wall-clock times.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FEW = Path(__file__).resolve().parent / "reference" / "datasets" / "few_clusters.csv"
HEAVY = ("statsmodels", "scipy.stats", "scipy.optimize", "scipy.sparse", "matplotlib")
# Modules a model must not load: the heavy libraries and the other estimators, and pydantic
# (the console script parses a plain command line itself: evalkit/cli/fastparse.py).
NOT_LOADED = {
    "cr2": (*HEAVY, "evalkit.analysis.mixed", "evalkit.analysis.gee", "pydantic"),
    "mixed": (*HEAVY, "evalkit.analysis.gee", "evalkit.analysis.randomisation_inference",
              "pydantic"),
}


def _loaded_after(model: str) -> set[str]:
    """Modules in sys.modules after `evalkit analyse FEW --model MODEL` in a fresh process."""
    code = ("import sys\nfrom evalkit.cli import app\n"
            "try:\n    app()\nexcept SystemExit as stop:\n    assert not stop.code, stop.code\n"
            "print(' '.join(sorted(sys.modules)))")
    args = ["analyse", str(FEW), "--outcome", "y", "--strata-col", "region",
            "--covariate", "x1", "--model", model]
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         check=True).stdout
    return set(out.splitlines()[-1].split())


@pytest.mark.parametrize("model", sorted(NOT_LOADED))
def test_one_model_loads_only_what_it_needs(model):
    loaded = _loaded_after(model)
    assert f"evalkit.analysis.{'ols' if model == 'cr2' else 'mixed'}" in loaded
    unwanted = sorted(m for m in NOT_LOADED[model] if m in loaded)
    assert not unwanted, f"--model {model} imported {unwanted}"


def test_the_monitor_chart_loads_no_template_engine():
    """The chart module (SVG written from arrays) loads neither Jinja nor pandas, so a
    monitoring run pays for neither when it draws the chart."""
    code = "import sys, evalkit.monitoring.chart\nprint(' '.join(sorted(sys.modules)))"
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())
    assert "evalkit.monitoring.chart" in loaded
    assert not {"jinja2", "pandas"} & loaded
