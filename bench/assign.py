"""Benchmarks for the allocation stage (not tests): prints a table of wall-clock times.

Rows:
  1. `evalkit assign` on the national example, whole CLI in a subprocess (target < 2 s).
  2. 1,000,000 synthetic staff, unit = "staff", strata region x PDU: whole CLI in a subprocess,
     with peak memory (target < 20 s, < 2 GB), and the allocation step alone.
  3. Re-randomisation: 100,000 candidate draws on the national PDUs, with balance scored
     (target < 5 s).
Peers, in the same run: a plain pandas/numpy stratified shuffle (`Generator.permutation` per
stratum, the obvious Python approach; no exactness or national coordination) for rows 2 and 3.

Run: .venv/bin/python bench/assign.py [--staff 1000000]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evalkit.allocation.allocate import AcceptanceRule, allocate, build_units  # noqa: E402
from evalkit.allocation.randomise import RandomStream, StratifiedDesign  # noqa: E402
from evalkit.allocation.roster import load_roster  # noqa: E402
from evalkit.examples.roster import write_example  # noqa: E402
from evalkit.trial.design import load_design  # noqa: E402

STAFF_DESIGN = """
[trial]
name = "Staff-level benchmark"
seed = 7
unit = "staff"
strata = ["region", "pdu_code"]

[[arms]]
name = "Treatment"
ratio = 1

[[arms]]
name = "Control"
ratio = 1
control = true
"""


def evalkit_cli() -> list[str]:
    found = shutil.which("evalkit", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "evalkit"]


def timed_subprocess(args: list[str]) -> tuple[float, float]:
    """Seconds and peak resident memory (MB) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, max(peak, before) / 1024


def synthetic_staff(pdus: pd.DataFrame, total: int) -> pd.DataFrame:
    rng = np.random.Generator(np.random.PCG64(1))
    codes = pdus["pdu_code"].to_numpy()[rng.integers(0, len(pdus), total)]
    grades = np.array(["PO", "PSO", "PQiP", "CA", "SPO"])[rng.integers(0, 5, total)]
    return pd.DataFrame({"staff_id": [f"B{i:07d}" for i in range(total)], "grade": grades,
                         "pdu_code": codes})


def naive_stratified(keys: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The obvious peer: per stratum, permute and alternate arms (no exactness guarantees)."""
    arms = np.empty(len(keys), dtype=np.int8)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    bounds = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1], True])
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        members = order[start:end][rng.permutation(end - start)]
        arms[members] = np.arange(end - start) % 2
    return arms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--staff", type=int, default=1_000_000)
    parser.add_argument("--draws", type=int, default=100_000)
    options = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        example = write_example(scratch / "example")
        config = ROOT / "configs" / "seeds2.toml"
        seconds, peak = timed_subprocess([*evalkit_cli(), "assign", str(config), "--pdus",
                                          str(example["pdus"]), "--staff", str(example["staff"]),
                                          "--out", str(scratch / "national")])
        rows.append(("assign, national example, whole CLI", seconds, peak, "< 2 s"))

        pdus = pd.read_csv(example["pdus"])
        staff = synthetic_staff(pdus, options.staff)
        staff.to_csv(scratch / "big_staff.csv", index=False)
        design_path = scratch / "staff_design.toml"
        design_path.write_text(STAFF_DESIGN)
        seconds, peak = timed_subprocess([*evalkit_cli(), "assign", str(design_path), "--pdus",
                                          str(example["pdus"]), "--staff",
                                          str(scratch / "big_staff.csv"), "--out",
                                          str(scratch / "big")])
        rows.append((f"assign, {options.staff:,} staff, region x PDU, whole CLI", seconds, peak,
                     "< 20 s, < 2 GB"))

        design = load_design(design_path)
        roster = load_roster(design, example["pdus"], scratch / "big_staff.csv")
        units = build_units(design, roster)
        start = time.perf_counter()
        allocate(design, units)
        rows.append((f"  allocation step only ({options.staff:,} staff)",
                     time.perf_counter() - start, None, ""))
        keys = units["region"].astype(str).to_numpy() + "|" + units["pdu_code"].to_numpy()
        start = time.perf_counter()
        naive_stratified(keys, np.random.default_rng(1))
        rows.append(("  peer: naive numpy permutation per stratum", time.perf_counter() - start,
                     None, ""))

        rows += rerandomisation_rows(config, example, options.draws)
    print_table(rows)


def rerandomisation_rows(config: Path, example: dict, draws: int) -> list[tuple]:
    design = load_design(config)
    design = design.model_copy(update={"randomisation": design.randomisation.model_copy(update={
        "method": "rerandomise", "balance_covariates": ["headcount", "caseload_per_practitioner"],
        "max_abs_smd": 0.05, "max_draws": draws})})
    roster = load_roster(design, example["pdus"], example["staff"])
    units = build_units(design, roster)
    from evalkit.allocation.allocate import fixed_assignments, stratum_keys

    fixed = fixed_assignments(design, units)
    pool = units.assign(_stratum=stratum_keys(units, design.trial.strata))
    pool = pool[~pool["unit_id"].isin(fixed)].sort_values(["_stratum", "unit_id"])
    scheme = StratifiedDesign(pool.groupby("_stratum").size().tolist(), [1, 1])
    rule = AcceptanceRule(design, units, pool, fixed, design.randomisation.balance_covariates)
    stream = RandomStream(design.trial.seed)
    start = time.perf_counter()
    accepted = 0
    for _ in range(draws // 1000):
        accepted += int((rule.scores(scheme.draw(1000, stream)) <= rule.limit).sum())
    ours = time.perf_counter() - start
    keys = pool["_stratum"].to_numpy()
    rng = np.random.default_rng(1)
    peer_draws = max(draws // 20, 1)
    start = time.perf_counter()
    for _ in range(peer_draws):
        naive_stratified(keys, rng)
    peer = (time.perf_counter() - start) * draws / peer_draws
    return [(f"re-randomisation, {draws:,} candidates scored, national PDUs", ours, None,
             f"< 5 s ({accepted} accepted at |SMD| <= 0.05)"),
            (f"  peer: naive loop, {peer_draws:,} draws scaled to {draws:,} (no scoring)", peer,
             None, "")]


def print_table(rows: list[tuple]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"{'case':<{width}}  {'seconds':>8}  {'peak MB':>8}  target / note")
    for name, seconds, peak, note in rows:
        peak_text = f"{peak:8.0f}" if peak is not None else f"{'':8}"
        print(f"{name:<{width}}  {seconds:8.2f}  {peak_text}  {note}")


if __name__ == "__main__":
    main()
