"""Benchmark the analysis models on the national reference dataset (~11,000 staff, 100 PDUs).

Usage: .venv/bin/python bench/analysis.py [--quick] [--peers-only]

Each case is (name, callable); timings start after the data are loaded. A callable may
return a number: the timing is multiplied by it (rows extrapolated from a subset, e.g.
refitting OLS on a few hundred permutations scaled to 10,000). Add rows by appending to
the list that `cases()` returns.

Then the peer table (issue 13): each evalkit figure beside R's (bench/r_peers/*.R) measured in
the same run, pair by pair (ours, R, ours, R, ...): the mixed model in process vs
lmerTest::lmer timed inside R, and whole processes (`evalkit analyse --model cr2 / mixed` vs
`Rscript` with clubSandwich / lmerTest). Rows are skipped with a note when Rscript is absent.
pyfixest's ritest (the RI peer) runs in the interpreter named by EVALKIT_PEER_PYTHON, a venv
with pyfixest and numba kept apart from the project's (they are not dependencies), e.g.
`python -m venv /tmp/peers && /tmp/peers/bin/pip install pyfixest numba`.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
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
R_PEERS = ROOT / "bench" / "r_peers"
EVALKIT = Path(sys.executable).with_name("evalkit")
MIXED_COLUMNS = AnalysisColumns("y", "arm", "pdu", "region", ("x1",))   # as the R peers
CLI_MODEL = [str(DATA), "--outcome", "y", "--arm-col", "arm", "--cluster-col", "pdu",
             "--strata-col", "region", "--covariate", "x1", "--model"]
PAIRS = 5
LAST_PEAK: float | None = None   # peak MB of the last case that ran in its own process
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
        ("mixed, Satterthwaite df, x1 (as the R peer)", lambda: fit_mixed(df, MIXED_COLUMNS)),
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


PYFIXEST_CODE = """
import os, sys, time
os.environ.setdefault("TQDM_DISABLE", "1")
import pandas as pd
import pyfixest as pf
df = pd.read_csv(sys.argv[1])
reps = int(sys.argv[2])
work = df[df["arm"].isin(["Treatment", "Control"])].assign(
    treat=lambda d: (d["arm"] == "Treatment").astype(float),         # numba kernels need floats
    pdu_number=lambda d: pd.factorize(d["pdu"])[0].astype(float))    # ritest needs numbers
def run(reps):
    fit = pf.feols("y ~ treat + x1 + x2 | region", data=work)
    fit.ritest(resampvar="treat", reps=reps, cluster="pdu_number", type="randomization-c")
start = time.perf_counter(); run(100); compile_s = time.perf_counter() - start  # numba JIT
times = []
for _ in range(3):
    start = time.perf_counter(); run(reps); times.append(time.perf_counter() - start)
times.sort()
print(f"pyfixest_seconds {times[1]:.4f} warmup_seconds {compile_s:.4f}")
"""


def _pyfixest_ritest(df: pd.DataFrame) -> Callable[[], object] | str:
    """pyfixest's ritest (its numba fast path) in the EVALKIT_PEER_PYTHON venv; else a note.

    pyfixest permutes cluster-level treatment without strata, a simpler design than
    evalkit's within-region permutation; the timing is still the like-for-like cost. Its
    figure is its own in-process median of 3 after a 100-permutation warm-up (numba's JIT).
    """
    python = os.environ.get("EVALKIT_PEER_PYTHON")
    if not python:
        return ("skipped: set EVALKIT_PEER_PYTHON to a venv with pyfixest + numba (without "
                "numba its ritest is a ~329 s slow path, not a fair peer)")
    check = subprocess.run([python, "-c", "import pyfixest, numba"], capture_output=True,
                           text=True)
    if check.returncode:
        return f"skipped: {python} cannot import pyfixest and numba ({check.stderr.strip()[-80:]})"

    def run() -> Reported:
        _, peak, out = run_process([python, "-c", PYFIXEST_CODE, str(DATA), str(PERMUTATIONS)])
        return Reported(float(re.search(r"pyfixest_seconds (\S+)", out)[1]), peak)

    return run


class Reported(float):
    """A time the case measured itself (inside a subprocess), used instead of the wall time;
    `peak_mb` is that subprocess's own peak."""

    peak_mb: float

    def __new__(cls, seconds: float, peak_mb: float) -> Reported:
        value = super().__new__(cls, seconds)
        value.peak_mb = peak_mb
        return value


def time_case(run: Callable[[], object], repeats: int = 3) -> float:
    """Median wall time of `repeats` runs, times the scale factor if the case returns a number."""
    global LAST_PEAK
    timings = []
    LAST_PEAK = None
    for _ in range(repeats):
        start = time.perf_counter()
        scale = run()
        if isinstance(scale, Reported):
            timings.append(float(scale))
            LAST_PEAK = scale.peak_mb
            continue
        factor = scale if isinstance(scale, int | float) else 1.0
        timings.append((time.perf_counter() - start) * factor)
    return statistics.median(timings)


def run_process(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak MB and standard output of one whole process.

    The peak comes from /usr/bin/time (a small process that forks the command): a child forked
    straight from this one would report this process's own larger RSS, which Linux carries
    across exec into ru_maxrss. Without /usr/bin/time the peak is NaN.
    """
    timer = shutil.which("time")   # /usr/bin/time, not the shell keyword
    with tempfile.NamedTemporaryFile("r", suffix=".peak") as peak_file:
        wrapped = [timer, "-f", "%M", "-o", peak_file.name, *command] if timer else command
        start = time.perf_counter()
        done = subprocess.run(wrapped, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, cwd=ROOT, check=False)
        wall = time.perf_counter() - start
        text = peak_file.read().strip().splitlines()
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}")
    peak = float(text[-1]) / 1024 if text and text[-1].isdigit() else float("nan")
    return wall, peak, done.stdout


def paired(ours: list[str], peer: list[str], pairs: int) -> dict[str, float]:
    """Run ours and the peer in turn `pairs` times: medians, the median pairwise ratio, peaks."""
    runs = [(run_process(ours), run_process(peer)) for _ in range(pairs + 1)][1:]  # 1 warm-up
    return {"ours": statistics.median(a[0] for a, _ in runs),
            "peer": statistics.median(b[0] for _, b in runs),
            "ratio": statistics.median(a[0] / b[0] for a, b in runs),
            "ours_mb": max(a[1] for a, _ in runs), "peer_mb": max(b[1] for _, b in runs)}


def r_mixed_in_process(reps: int = 5) -> dict[str, float]:
    """lmerTest's fit + Satterthwaite summary timed inside R (median of reps), its peak MB."""
    _, peak, out = run_process(["Rscript", str(R_PEERS / "mixed_lmertest.R"), str(DATA),
                                str(reps)])
    return {"peer": float(re.search(r"r_fit_seconds (\S+)", out)[1]), "peer_mb": peak}


def peer_rows(df: pd.DataFrame, pairs: int) -> list[tuple[str, dict[str, float] | str, str]]:
    """(name, figures or a note, target) for every evalkit-versus-R row."""
    if shutil.which("Rscript") is None:
        note = "skipped: Rscript not found (R with clubSandwich and lmerTest is the peer)"
        return [(name, note, "") for name in ("cr2 whole process", "mixed in process",
                                              "mixed whole process")]
    in_process = r_mixed_in_process()
    in_process["ours"] = time_case(lambda: fit_mixed(df, MIXED_COLUMNS), repeats=5)
    in_process["ratio"] = in_process["ours"] / in_process["peer"]
    in_process["ours_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cli = [str(EVALKIT), "analyse", *CLI_MODEL]
    return [
        ("analyse --model cr2, whole process vs Rscript clubSandwich",
         paired([*cli, "cr2"], ["Rscript", str(R_PEERS / "cr2_clubsandwich.R"), str(DATA)],
                pairs), "<= 0.4x"),
        ("mixed + Satterthwaite in process vs lmerTest in R", in_process, "<= 1x"),
        ("analyse --model mixed, whole process vs Rscript lmerTest",
         paired([*cli, "mixed"], ["Rscript", str(R_PEERS / "mixed_lmertest.R"), str(DATA), "0"],
                pairs), ""),
    ]


def print_peers(df: pd.DataFrame, pairs: int) -> None:
    """The peer table: ours, R, ratio (median of pairs for whole processes), peaks."""
    print(f"\n{'evalkit vs R peer':<60} {'ours s':>8} {'R s':>8} {'ratio':>7} "
          f"{'ours MB':>8} {'R MB':>7}  target")
    for name, figures, target in peer_rows(df, pairs):
        if isinstance(figures, str):
            print(f"{name:<60} {figures}")
            continue
        print(f"{name:<60} {figures['ours']:>8.3f} {figures['peer']:>8.3f} "
              f"{figures['ratio']:>6.2f}x {figures['ours_mb']:>8.0f} {figures['peer_mb']:>7.0f}"
              f"  {target}")


def main() -> None:
    """Load the data, time every case and print the table with the RI speed-up."""
    global PERMUTATIONS, REFITS
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="1,000 permutations, 20 refits, one run each, no full plan")
    parser.add_argument("--peers-only", action="store_true",
                        help="only the evalkit-versus-R table")
    options = parser.parse_args()
    if options.quick:
        PERMUTATIONS, REFITS = 1_000, 20
    df = pd.read_csv(DATA)
    if options.peers_only:
        print_peers(df, 2 if options.quick else PAIRS)
        return
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
        single = options.quick or any(word in name for word in ("refit", "report", "pyfixest"))
        results[name] = time_case(run, repeats=1 if single else 3)
        peak = LAST_PEAK or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{name:<46} {results[name]:>10.3f} {peak:>8.0f}"
              + ("  (its own process)" if LAST_PEAK else ""))
    fast = results[next(k for k in results if k.endswith("coefficient, p only"))]
    print()
    for baseline in ("OLS refit", "lstsq refit", "pyfixest ritest"):
        slow = next((v for k, v in results.items() if k.startswith(baseline)), None)
        if slow is not None:
            print(f"speed-up of vectorised RI (p only) over {baseline}: {slow / fast:,.1f}x")
    print_peers(df, 2 if options.quick else PAIRS)


if __name__ == "__main__":
    main()
