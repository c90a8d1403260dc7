"""Synthetic staff outcomes for the shipped example, with known effects, for `evalkit analyse`.

For every staff member in a trial group of a sealed run (``staff_allocation``), with PDU
effects u, v ~ N(0, 1) and individual noise e ~ N(0, 1):

- ``baseline_score`` = 60 + 3 v + 9 e0 (measured before allocation, never missing).
- ``completed`` (compliance: completed the course in its window) ~ Bernoulli with
  probability 0.75 in Treatment, 0.85 in Early Adopter and 0.03 in Control.
- ``supervision_quality`` = 60 + 0.6 (baseline - 60) + 2.5 u + 7.5 e + 4.0 completed.
  The effect of completing is 4.0 points, so the intention-to-treat effect of Treatment vs
  Control is 4.0 x (0.75 - 0.03) = 2.88 points (about 0.30 of the total SD of 9.7), Early
  Adopter 3.28; the PDU ICC is (0.6^2 9 + 2.5^2) / (0.6^2 90 + 2.5^2 + 7.5^2) = 0.10.
- ``retained`` ~ Bernoulli(logistic(1.6 + 0.4 u' + 0.4 completed)): log odds ratio 0.4
  for completers (ITT about 0.29 for Treatment).
- ``sickness_days`` ~ Poisson(exp(log 8 + 0.15 u'' + 0.3 e' - 0.15 completed)): rate ratio
  exp(-0.15) = 0.86 for completers.

Missing outcomes: survey non-response for ``supervision_quality`` is 15% in Control and 8%
elsewhere (differential attrition); ``retained`` 2% and ``sickness_days`` 4% everywhere;
and every outcome is missing for all staff of two randomised PDUs (one Treatment, one
Control: lost clusters). Draws use ``np.random.Generator(np.random.PCG64(seed))`` basic
methods only (``random``, ``normal``); Poisson counts by inversion of uniforms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from evalkit.io.files import write_csv
from evalkit.register import Register

COMPLETION = {"Treatment": 0.75, "Early Adopter": 0.85, "Control": 0.03}
COMPLETER_EFFECT = {"supervision_quality": 4.0, "retained": 0.4, "sickness_days": -0.15}
NON_RESPONSE = {"supervision_quality": (0.15, 0.08), "retained": (0.02, 0.02),
                "sickness_days": (0.04, 0.04)}  # (Control, other groups)
OUTCOME_SEED = 2023


def make_example_outcomes(staff_allocation: pd.DataFrame, control: str = "Control",
                          seed: int = OUTCOME_SEED) -> pd.DataFrame:
    """One row per staff member in a trial group: outcomes, baseline and compliance."""
    staff = staff_allocation[staff_allocation["group"].isin(COMPLETION)]
    staff = staff.sort_values(["pdu_code", "staff_id"], kind="stable").reset_index(drop=True)
    rng = np.random.Generator(np.random.PCG64(seed))
    pdus = np.unique(staff["pdu_code"].to_numpy(str))
    pdu_index = np.searchsorted(pdus, staff["pdu_code"].to_numpy(str))
    n = len(staff)
    u, v, u_ret, u_sick = (rng.normal(size=len(pdus))[pdu_index] for _ in range(4))
    groups = staff["group"].to_numpy(str)
    completion = np.array([COMPLETION[g] for g in groups])
    completed = (rng.random(n) < completion).astype(int)
    baseline = 60 + 3 * v + 9 * rng.normal(size=n)
    quality = (60 + 0.6 * (baseline - 60) + 2.5 * u + 7.5 * rng.normal(size=n)
               + COMPLETER_EFFECT["supervision_quality"] * completed)
    retain_p = 1 / (1 + np.exp(-(1.6 + 0.4 * u_ret + COMPLETER_EFFECT["retained"] * completed)))
    retained = (rng.random(n) < retain_p).astype(float)
    log_rate = (np.log(8) + 0.15 * u_sick + 0.3 * rng.normal(size=n)
                + COMPLETER_EFFECT["sickness_days"] * completed)
    sickness = stats.poisson.ppf(rng.random(n), np.exp(log_rate))
    frame = pd.DataFrame({
        "staff_id": staff["staff_id"].to_numpy(), "supervision_quality": np.round(quality, 1),
        "retained": retained, "sickness_days": sickness,
        "baseline_score": np.round(baseline, 1), "completed": completed,
    })
    is_control = groups == control
    for column, (rate_control, rate_other) in NON_RESPONSE.items():
        missing = rng.random(n) < np.where(is_control, rate_control, rate_other)
        frame.loc[missing, column] = np.nan
    lost = _lost_pdus(staff, rng, control)
    frame.loc[staff["pdu_code"].isin(lost).to_numpy(), list(NON_RESPONSE)] = np.nan
    for column in ("retained", "sickness_days"):
        frame[column] = frame[column].astype("Int64")
    return frame


def _lost_pdus(staff: pd.DataFrame, rng: np.random.Generator, control: str) -> list[str]:
    """One randomised Treatment PDU and one Control PDU whose outcomes are all missing."""
    lost = []
    for group in ("Treatment", control):
        codes = np.unique(staff.loc[staff["group"] == group, "pdu_code"].to_numpy(str))
        if len(codes):
            lost.append(str(codes[int(rng.random() * len(codes))]))
    return lost


def write_example_outcomes(directory: Path, run_directory: Path,
                           seed: int = OUTCOME_SEED) -> Path:
    """Write DIR/outcomes.csv for the staff of the sealed run in `run_directory`."""
    register = Register.open(run_directory)
    frame = make_example_outcomes(register.table("staff_allocation"),
                                  register.design.control_arm, seed)
    return write_csv(Path(directory) / "outcomes.csv", frame)
