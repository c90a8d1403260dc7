"""Benchmark the analysis models on the national reference dataset (~11,000 staff, 100 PDUs).

Usage: .venv/bin/python bench/analysis.py [--quick]

Each case is (name, callable); timings start after the data are loaded. A callable may
return a number: the timing is multiplied by it (rows extrapolated from a subset, e.g.
refitting OLS on a few hundred permutations scaled to 10,000). Add rows by appending to
the list that `cases()` returns.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evalkit.analysis.data import AnalysisColumns  # noqa: E402
from evalkit.analysis.gee import fit_gee  # noqa: E402
from evalkit.analysis.mixed import fit_mixed  # noqa: E402
from evalkit.analysis.randomisation_inference import (  # noqa: E402
    contrast_setup,
    randomisation_test,
    within_strata_permutations,
)

DATA = ROOT / "tests" / "reference" / "datasets" / "national.csv"
PERMUTATIONS = 10_000
REFITS = 300
COVARIATES = ["x1", "x2"]

Case = tuple[str, Callable[[], object] | str]  # a str is a note printed instead of a time


def cases(df: pd.DataFrame) -> list[Case]:
    """The benchmark rows: (name, callable) pairs over the loaded national data."""
    fixed = df.loc[df["arm"] == "Early Adopter", "pdu"].unique()
    ri = dict(arm="Treatment", permutations=PERMUTATIONS, fixed_clusters=fixed,
              exact_threshold=0)
    columns = AnalysisColumns("y", "arm", "pdu", "region", COVARIATES)
    return [
        (f"RI {PERMUTATIONS:,} perms, coefficient, p only",
         lambda: randomisation_test(df, columns, ci=False, **ri)),
        (f"RI {PERMUTATIONS:,} perms, coefficient, p + CI",
         lambda: randomisation_test(df, columns, **ri)),
        (f"RI {PERMUTATIONS:,} perms, studentised, p + CI",
         lambda: randomisation_test(df, columns, studentise=True, **ri)),
        (f"OLS refit per perm ({REFITS} refits, x{PERMUTATIONS // REFITS})",
         lambda: _refit_loop(df)),
        (f"lstsq refit per perm ({REFITS} refits, x{PERMUTATIONS // REFITS})",
         lambda: _refit_loop(df, fit=_lstsq_coefficient)),
        (f"pyfixest ritest {PERMUTATIONS:,} perms", _pyfixest_ritest(df)),
        ("GEE binomial (exchangeable, robust)",
         lambda: fit_gee(df, AnalysisColumns("y_bin", "arm", "pdu", "region", ["x1"]))),
        ("GEE binomial, Mancl-DeRouen",
         lambda: fit_gee(df, AnalysisColumns("y_bin", "arm", "pdu", "region", ["x1"]),
                         small_sample="mancl-derouen")),
        ("mixed, Satterthwaite df (target < 5 s)",
         lambda: fit_mixed(df, AnalysisColumns("y", "arm", "pdu", "region", COVARIATES))),
        ("analyse --register, example (target < 30 s)", _full_plan_case()),
    ]


def _full_plan_case() -> Callable[[], object]:
    """Set up the shipped example (allocation + synthetic outcomes, not timed); time the plan."""
    from evalkit.allocation.assign import run_assign
    from evalkit.analysis.plan.run import run_plan
    from evalkit.examples.outcomes import write_example_outcomes
    from evalkit.examples.roster import write_example

    folder = Path(tempfile.mkdtemp(prefix="evalkit-bench-"))
    paths = write_example(folder / "example")
    run = run_assign(ROOT / "configs" / "seeds2.toml", out=folder / "run",
                     pdus=paths["pdus"], staff=paths["staff"])
    outcomes = write_example_outcomes(folder / "example", run.directory)
    return lambda: run_plan(run.directory, outcomes, out=folder / "results")


def _statsmodels_coefficient(y: np.ndarray, X: np.ndarray) -> float:
    """Coefficient on the last column by statsmodels OLS."""
    return float(sm.OLS(y, X).fit().params[-1])


def _lstsq_coefficient(y: np.ndarray, X: np.ndarray) -> float:
    """Coefficient on the last column by numpy least squares (a leaner baseline)."""
    return float(np.linalg.lstsq(X, y, rcond=None)[0][-1])


def _refit_loop(df: pd.DataFrame, fit=_statsmodels_coefficient) -> float:
    """Same statistic by refitting OLS per permutation; returns the scale-up to 10,000."""
    setup = contrast_setup(df, AnalysisColumns("y", "arm", "pdu", "region", COVARIATES),
                           arm="Treatment")
    perms = within_strata_permutations(setup.treated, setup.strata, permutations=REFITS,
                                       exact_threshold=0)
    work = df[df["arm"].isin(["Treatment", "Control"])].dropna(subset=["y", *COVARIATES])
    nuisance = pd.get_dummies(work["region"], drop_first=True, dtype=float)
    nuisance[COVARIATES] = work[COVARIATES]
    groups = pd.Index(setup.cluster_labels).get_indexer(work["pdu"].astype(str))
    y = work["y"].to_numpy()
    for assignment in perms.assignments:
        fit(y, np.column_stack([np.ones(len(y)), nuisance.to_numpy(), assignment[groups]]))
    return PERMUTATIONS / REFITS


def _pyfixest_ritest(df: pd.DataFrame) -> Callable[[], object] | str:
    """pyfixest's ritest when it is installed with numba (its fast path); else a note."""
    if importlib.util.find_spec("pyfixest") is None:
        return "skipped: pyfixest not installed (not a dependency)"
    if importlib.util.find_spec("numba") is None:
        return "skipped: pyfixest's ritest without numba is its slow path (~329 s), not fair"
    os.environ.setdefault("TQDM_DISABLE", "1")   # keep its progress bar out of the table
    try:
        import pyfixest as pf
    except Exception as error:  # a broken optional install must not end the benchmark
        return f"skipped: pyfixest failed to import ({type(error).__name__}: {error})"

    work = df[df["arm"].isin(["Treatment", "Control"])].assign(
        treat=lambda d: (d["arm"] == "Treatment").astype(float),   # numba kernels need floats
        pdu_number=lambda d: pd.factorize(d["pdu"])[0].astype(float))  # ritest needs numbers
    # Note: pyfixest permutes cluster-level treatment without strata, a simpler design than
    # evalkit's within-region permutation; the timing is still the fair like-for-like cost.

    def run() -> None:
        fit = pf.feols("y ~ treat + x1 + x2 | region", data=work)
        fit.ritest(resampvar="treat", reps=PERMUTATIONS, cluster="pdu_number",
                   type="randomization-c")

    return run


def time_case(run: Callable[[], object], repeats: int = 3) -> float:
    """Median wall time of `repeats` runs, times the scale factor if the case returns a number."""
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        scale = run()
        factor = scale if isinstance(scale, int | float) else 1.0
        timings.append((time.perf_counter() - start) * factor)
    return statistics.median(timings)


def main() -> None:
    """Load the data, time every case and print the table with the RI speed-up."""
    global PERMUTATIONS, REFITS
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="1,000 permutations, 20 refits, one run each, no full plan")
    options = parser.parse_args()
    if options.quick:
        PERMUTATIONS, REFITS = 1_000, 20
    df = pd.read_csv(DATA)
    print(f"national: {len(df)} staff, {df['pdu'].nunique()} PDUs; median of "
          f"{1 if options.quick else 3} runs; peak = this process's largest RSS so far\n")
    print(f"{'case':<46} {'seconds':>10} {'peak MB':>8}")
    results = {}
    for name, run in cases(df):
        if options.quick and "analyse --register" in name:
            run = "skipped in --quick"
        if isinstance(run, str):
            print(f"{name:<46} {run}")
            continue
        single = options.quick or "refit" in name or "report" in name
        results[name] = time_case(run, repeats=1 if single else 3)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{name:<46} {results[name]:>10.3f} {peak:>8.0f}")
    fast = results[next(k for k in results if k.endswith("coefficient, p only"))]
    print()
    for baseline in ("OLS refit", "lstsq refit", "pyfixest ritest"):
        slow = next((v for k, v in results.items() if k.startswith(baseline)), None)
        if slow is not None:
            print(f"speed-up of vectorised RI (p only) over {baseline}: {slow / fast:,.1f}x")


if __name__ == "__main__":
    main()
