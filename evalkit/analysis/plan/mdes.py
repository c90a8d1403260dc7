"""The minimum detectable effect size at the three moments EEF asks for, for the report.

At protocol and at randomisation the MDES rests on the ICC, R² and attrition assumed in the
design's `[analysis.power]` (at randomisation: for the allocation actually drawn, recorded by
`assign`); at analysis it is recomputed for the same allocation with the ICC and attrition the
primary outcome actually showed (R² as assumed: the plan's models do not estimate it). Together
with the assumptions they make the sample-size paragraph CONSORT's cluster extension (7a) asks
for.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd

from evalkit.power.randomisation import META_KEY, design_assumptions, mdes_at_analysis, mdes_summary
from evalkit.register import Register


def mdes_moments(register_dir: Path, iccs: pd.DataFrame, attrition: pd.DataFrame,
                 primary_outcome: str) -> dict[str, Any] | None:
    """MDES per contrast at randomisation (as recorded) and at analysis (observed ICC and
    attrition), or None when the design has no [analysis.power] section to start from."""
    register = Register.open(register_dir)
    assumed = design_assumptions(register.design)
    if assumed is None:
        return None
    icc = _observed_icc(iccs, primary_outcome)
    lost = _observed_attrition(attrition, primary_outcome)
    observed = dataclasses.replace(assumed, icc=assumed.icc if icc is None else icc,
                                   attrition=assumed.attrition if lost is None else lost)
    at_analysis = mdes_summary(mdes_at_analysis(Path(register_dir), observed))
    return {"outcome": primary_outcome,
            "assumed": {"icc": assumed.icc, "r2_cluster": assumed.r2_cluster,
                        "r2_individual": assumed.r2_individual, "attrition": assumed.attrition,
                        "alpha": assumed.alpha, "power": assumed.power},
            "observed": {"icc": icc, "attrition": lost},
            "at_randomisation": register.meta(META_KEY),
            "at_analysis": at_analysis}


def _observed_icc(iccs: pd.DataFrame, outcome: str) -> float | None:
    """The primary outcome's estimated ICC, clipped into [0, 1) as the formula needs."""
    if iccs is None or iccs.empty or "icc" not in iccs:
        return None
    rows = iccs[(iccs["outcome"] == outcome) & iccs["icc"].notna()]
    return None if rows.empty else min(max(float(rows["icc"].iloc[0]), 0.0), 0.999)


def _observed_attrition(attrition: pd.DataFrame, outcome: str) -> float | None:
    """The largest overall staff-level attrition of the primary outcome's contrasts."""
    if attrition is None or attrition.empty or "overall" not in attrition:
        return None
    rows = attrition[(attrition["outcome"] == outcome)
                     & (attrition["level"] == "individual")]
    return None if rows.empty else min(float(rows["overall"].max()), 0.999)


def sample_size_paragraph(mdes: dict[str, Any], alpha: float, power: float) -> str:
    """CONSORT 7a in words: what was assumed, and what the trial could detect."""
    assumed = mdes["assumed"]
    drawn = (mdes.get("at_randomisation") or {}).get("mdes", {})
    analysed = mdes["at_analysis"]["mdes"]
    parts = [f"The design assumed an intra-cluster correlation of {assumed['icc']:.3f}, "
             f"R² of {assumed['r2_cluster']:.2f} (PDU level) and {assumed['r2_individual']:.2f} "
             f"(staff level), and {assumed['attrition']:.0%} attrition, for {power:.0%} power "
             f"at a two-sided {alpha:g} level."]
    for contrast, value in analysed.items():
        before = f"{drawn[contrast]:.3f} for the allocation drawn, " if contrast in drawn else ""
        parts.append(f"{contrast}: minimum detectable effect size {before}"
                     f"{value:.3f} with the ICC and attrition observed.")
    return " ".join(parts)
