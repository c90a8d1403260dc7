"""Generate the synthetic datasets used as R reference fixtures.

Deterministic (``np.random.default_rng`` with a fixed seed per dataset).  The CSVs are
committed, so byte-exact reproducibility across numpy versions is not required: if
you regenerate, you must also rerun ``Rscript tests/reference/reference.R``.

Usage (from the project root)::

    python tests/reference/make_datasets.py
    Rscript tests/reference/reference.R

Columns of every CSV:
    staff_id, pdu, region, arm, x1, x2, y, y_bin, y_count, completed
Missing values are written as empty cells.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

OUT_DIR = Path(__file__).resolve().parent / "datasets"

REGIONS = [
    "East Midlands",
    "East of England",
    "Greater Manchester",
    "Kent, Surrey and Sussex",
    "London",
    "North East",
    "North West",
    "South Central",
    "South West",
    "Wales",
    "West Midlands",
    "Yorkshire and the Humber",
]

EA, TR, CO = "Early Adopter", "Treatment", "Control"
COLUMNS = ["staff_id", "pdu", "region", "arm", "x1", "x2", "y", "y_bin", "y_count", "completed"]

# true effects (y is on a roughly unit-SD scale)
EFFECT_Y = {EA: 0.15, TR: 0.25, CO: 0.0}
EFFECT_LOGIT = {EA: 0.25, TR: 0.40, CO: 0.0}
EFFECT_LOG = {EA: -0.10, TR: -0.15, CO: 0.0}
P_COMPLETE = {EA: 0.88, TR: 0.82, CO: 0.02}


def allocate(rng, pdus_per_region, ea_regions=None, ea_per_region=0, three_arm_random=False):
    """Return list of (region, arm) per PDU.

    Early Adopters: in ``ea_regions``, a fixed subset (the first ``ea_per_region`` PDUs)
    is Early Adopter (non-random).  The rest of each region is randomised to
    Treatment/Control (stratified: half each, with at least two of each arm).
    With ``three_arm_random`` every region is randomised to all three arms
    (at least two of each).
    """
    ea_regions = ea_regions or []
    out = []
    for region, n in pdus_per_region:
        arms = []
        if three_arm_random:
            base = [EA, TR, CO] * (n // 3) + [TR, CO, EA][: n % 3]
            arms = list(rng.permutation(base))
        else:
            n_ea = ea_per_region if region in ea_regions else 0
            rest = n - n_ea
            n_tr = rest // 2 + (rest % 2) * int(rng.integers(0, 2))
            base = [TR] * n_tr + [CO] * (rest - n_tr)
            arms = [EA] * n_ea + list(rng.permutation(base))
        for a in arms:
            out.append((region, str(a)))
    return out


def simulate(rng, alloc, sizes, sd_u=0.22, miss=False):
    rows = []
    region_names = sorted({r for r, _ in alloc})
    region_eff = dict(zip(region_names, rng.normal(0, 0.10, len(region_names)), strict=True))
    sid = 0
    for j, ((region, arm), m) in enumerate(zip(alloc, sizes, strict=True)):
        pdu = f"P{j + 1:03d}"
        x2 = float(np.round(rng.normal(40, 8), 1))  # caseload per practitioner (PDU level)
        u = rng.normal(0, sd_u)
        v = rng.normal(0, 0.45)
        w = rng.normal(0, 0.30)
        x1 = rng.normal(0, 1, m) + 0.3 * u  # staff baseline score, mildly cluster-correlated
        e = rng.normal(0, 0.85, m)
        y = 0.45 * x1 - 0.015 * (x2 - 40) + region_eff[region] + EFFECT_Y[arm] + u + e
        eta_b = -0.4 + 0.5 * x1 + region_eff[region] + EFFECT_LOGIT[arm] + v
        y_bin = rng.binomial(1, 1 / (1 + np.exp(-eta_b)))
        eta_c = np.log(4.0) - 0.2 * x1 + 0.01 * (x2 - 40) + EFFECT_LOG[arm] + w
        y_count = rng.poisson(np.exp(eta_c))
        completed = rng.binomial(1, P_COMPLETE[arm], m)
        x1_out = x1.astype(object)
        y_out, yb_out, yc_out = y.astype(object), y_bin.astype(object), y_count.astype(object)
        if miss:
            # more missing at low x1 (MAR given x1); independent masks per outcome
            p = 1 / (1 + np.exp(-(-1.9 - 0.8 * x1)))
            for arr in (y_out, yb_out, yc_out):
                arr[rng.random(m) < p] = None
            x1_out[rng.random(m) < 0.02] = None
        for i in range(m):
            sid += 1
            rows.append(
                [
                    f"S{sid:05d}",
                    pdu,
                    region,
                    arm,
                    _fmt(x1_out[i]),
                    f"{x2:.1f}",
                    _fmt(y_out[i]),
                    "" if yb_out[i] is None else str(int(yb_out[i])),
                    "" if yc_out[i] is None else str(int(yc_out[i])),
                    str(int(completed[i])),
                ]
            )
    return rows


def _fmt(v):
    return "" if v is None else f"{float(v):.6f}"


def split(n_total, n_groups):
    base = [n_total // n_groups] * n_groups
    for k in range(n_total % n_groups):
        base[k] += 1
    return base


def make_national():
    rng = np.random.default_rng(20240101)
    counts = split(100, 12)
    alloc = allocate(
        rng,
        list(zip(REGIONS, counts, strict=True)),
        ea_regions=["Kent, Surrey and Sussex", "North West"],
        ea_per_region=3,
    )
    sizes = np.clip(np.round(np.exp(rng.normal(np.log(95), 0.7, len(alloc)))), 20, 300).astype(int)
    return simulate(rng, alloc, sizes)


def make_few_clusters():
    rng = np.random.default_rng(20240102)
    regs = ["London", "Kent, Surrey and Sussex", "Wales"]
    alloc = allocate(rng, list(zip(regs, [5, 5, 4], strict=True)))
    sizes = rng.integers(20, 61, len(alloc))
    return simulate(rng, alloc, sizes)


def make_missing():
    rng = np.random.default_rng(20240103)
    regs = REGIONS[:8]
    alloc = allocate(
        rng,
        list(zip(regs, split(60, 8), strict=True)),
        ea_regions=["East of England", "Kent, Surrey and Sussex"],
        ea_per_region=3,
    )
    sizes = np.clip(np.round(np.exp(rng.normal(np.log(60), 0.6, len(alloc)))), 15, 250).astype(int)
    return simulate(rng, alloc, sizes, miss=True)


def make_two_arms():
    rng = np.random.default_rng(20240104)
    regs = [
        "Kent, Surrey and Sussex",
        "London",
        "North East",
        "South West",
        "Wales",
        "West Midlands",
    ]
    alloc = allocate(rng, list(zip(regs, split(40, 6), strict=True)))
    sizes = rng.integers(20, 121, len(alloc))
    return simulate(rng, alloc, sizes)


def make_unequal():
    rng = np.random.default_rng(20240105)
    regs = ["Greater Manchester", "Kent, Surrey and Sussex", "London", "Yorkshire and the Humber"]
    alloc = allocate(rng, list(zip(regs, [8, 8, 7, 7], strict=True)), three_arm_random=True)
    sizes = np.round(np.exp(rng.uniform(np.log(3), np.log(600), len(alloc)))).astype(int)
    sizes[0], sizes[-1] = 3, 600  # make sure the extremes are present
    sizes[len(sizes) // 2] = 4
    return simulate(rng, alloc, sizes, sd_u=0.25)


DATASETS = {
    "national": make_national,
    "few_clusters": make_few_clusters,
    "missing": make_missing,
    "two_arms": make_two_arms,
    "unequal": make_unequal,
}


def check(name, rows):
    per_region = {}
    for r in rows:
        per_region.setdefault(r[2], set()).add((r[1], r[3]))
    for region, pa in per_region.items():
        arms = [a for _, a in pa]
        assert arms.count(TR) >= 1 and arms.count(CO) >= 1, (name, region)


def main():
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, fn in DATASETS.items():
        rows = fn()
        check(name, rows)
        with open(OUT_DIR / f"{name}.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(COLUMNS)
            w.writerows(rows)
        print(f"{name}: {len(rows)} rows, {len({r[1] for r in rows})} PDUs")


if __name__ == "__main__":
    main()
