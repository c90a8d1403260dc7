"""Datasets for the PDU-level and three-level reference fixtures (deterministic).

- `pdu_level.csv`: `national.csv` collapsed to one row per PDU (means of `y` and `x1` over
  staff with `y`, the PDU's `x2`, and `n_staff`), the shape of a PDU-level outcome file.
- `three_level.csv`: staff in PODs in PDUs, with a PDU and a POD random intercept:
  36 PDUs in 6 regions (3 Treatment and 3 Control per region), 3-6 PODs per PDU of 4-12
  staff; y = 0.3 Treatment + 0.45 x1 + region + u_pdu (sd 0.3) + v_pod (sd 0.35) + e.

Usage (from the project root): python tests/reference/make_extra_datasets.py, then rerun
Rscript tests/reference/reference.R.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

OUT_DIR = Path(__file__).resolve().parent / "datasets"


def make_pdu_level() -> pd.DataFrame:
    """One row per PDU of the national dataset."""
    staff = pd.read_csv(OUT_DIR / "national.csv")
    observed = staff.dropna(subset=["y", "x1"])
    grouped = observed.groupby(["pdu", "region", "arm"], sort=True)
    table = grouped.agg(y=("y", "mean"), x1=("x1", "mean"), x2=("x2", "first"),
                        n_staff=("y", "size")).reset_index()
    return table.round({"y": 6, "x1": 6})


def make_three_level(seed: int = 20261201) -> pd.DataFrame:
    """Staff in PODs in PDUs with variance at both levels."""
    rng = np.random.default_rng(seed)
    rows = []
    regions = [f"Region {chr(65 + r)}" for r in range(6)]
    for r, region in enumerate(regions):
        arms = ["Treatment"] * 3 + ["Control"] * 3
        rng.shuffle(arms)
        for p, arm in enumerate(arms):
            pdu = f"P{r}{p}"
            u_pdu = rng.normal(0, 0.3)
            for k in range(int(rng.integers(3, 7))):
                v_pod = rng.normal(0, 0.35)
                for i in range(int(rng.integers(4, 13))):
                    x1 = rng.normal()
                    y = (0.3 * (arm == "Treatment") + 0.45 * x1 + 0.1 * r + u_pdu + v_pod
                         + rng.normal())
                    rows.append({"staff_id": f"{pdu}-{k}-{i}", "pdu": pdu,
                                 "pod": f"{pdu}-POD{k}", "region": region, "arm": arm,
                                 "x1": round(x1, 6), "y": round(y, 6)})
    return pd.DataFrame(rows)


def main() -> None:
    make_pdu_level().to_csv(OUT_DIR / "pdu_level.csv", index=False)
    make_three_level().to_csv(OUT_DIR / "three_level.csv", index=False)


if __name__ == "__main__":
    main()
