"""One tidy result shape shared by every estimator (estimatr-style columns)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
from scipy import special

# The t and normal laws through scipy.special, the functions scipy.stats.t / norm call
# (stdtr, stdtrit, ndtr, ndtri: the same numbers), without scipy.stats's ~0.6 s import.

RESULT_COLUMNS = [
    "arm", "versus", "estimate", "se", "df", "statistic", "p_value", "ci_low", "ci_high",
]


@dataclass
class Contrast:
    """One arm-versus-reference comparison; `df` is None when the reference law is normal."""

    arm: str
    versus: str
    estimate: float
    se: float
    df: float | None
    statistic: float
    p_value: float
    ci_low: float
    ci_high: float
    randomised: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def t_sf(x: float, df: float) -> float:
    """P(T > x) for Student's t on df degrees of freedom (scipy.stats.t.sf)."""
    return float(special.stdtr(df, -x)) if df > 0 else math.nan


def t_ppf(q: float, df: float) -> float:
    """The q quantile of Student's t on df degrees of freedom (scipy.stats.t.ppf, 0 < q < 1)."""
    return float(special.stdtrit(df, q)) if df > 0 and 0 < q < 1 else math.nan


def f_sf(x: float, df_num: float, df_denom: float) -> float:
    """P(F > x) for the F law on (df_num, df_denom) degrees of freedom (scipy.stats.f.sf)."""
    if not (df_num > 0 and df_denom > 0):
        return math.nan
    return 1.0 if x <= 0 else float(special.fdtrc(df_num, df_denom, x))


def make_contrast(
    arm: str,
    versus: str,
    estimate: float,
    se: float,
    df: float | None,
    alpha: float = 0.05,
    randomised: bool = True,
) -> Contrast:
    """Build a contrast with a two-sided Wald test and CI from a t (df given) or normal law."""
    statistic = estimate / se if se > 0 else math.nan
    if df is None or not math.isfinite(df):
        p_value = float(2 * special.ndtr(-abs(statistic)))
        crit = float(special.ndtri(1 - alpha / 2))
        df = None
    else:
        p_value = float(2 * t_sf(abs(statistic), df))
        crit = float(t_ppf(1 - alpha / 2, df))
    return Contrast(
        arm=arm, versus=versus, estimate=float(estimate), se=float(se),
        df=None if df is None else float(df), statistic=float(statistic), p_value=p_value,
        ci_low=float(estimate - crit * se), ci_high=float(estimate + crit * se),
        randomised=randomised,
    )


@dataclass
class ModelResult:
    """What every estimator returns: contrasts plus counts and diagnostics.

    `family` is the GEE family (None for linear models); `n_dropped` the rows dropped for
    missing values (per arm for models fitted arm by arm, such as CACE).
    """

    model: str
    outcome: str
    n_obs: int
    n_clusters: int
    contrasts: list[Contrast]
    joint_test: dict[str, Any] | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)
    icc: float | None = None
    family: str | None = None
    n_dropped: int | dict[str, int] | None = None

    @property
    def warnings(self) -> list[str]:
        """Every warning the model raised (kept in the diagnostics under 'warnings')."""
        return list(self.diagnostics.get("warnings") or [])

    def add_warning(self, message: str) -> None:
        """Record a warning once; it reaches the screen, results.json and the report."""
        listed = self.diagnostics.setdefault("warnings", [])
        if message not in listed:
            listed.append(message)

    def diagnostics_record(self) -> dict[str, Any]:
        """Diagnostics with the typed facts (family, rows dropped) folded in, for output."""
        record = {} if self.family is None else {"family": self.family}
        record.update(self.diagnostics)
        if self.n_dropped is not None:
            record["n_dropped"] = self.n_dropped
        return record

    def to_frame(self) -> pd.DataFrame:
        """Contrasts as a tidy data frame with the standard columns first."""
        rows = []
        for contrast in self.contrasts:
            row = {k: v for k, v in asdict(contrast).items() if k != "extra"}
            row.update(contrast.extra)
            row.update(model=self.model, outcome=self.outcome, n_obs=self.n_obs,
                       n_clusters=self.n_clusters)
            rows.append(row)
        frame = pd.DataFrame(rows)
        ordered = RESULT_COLUMNS + [c for c in frame.columns if c not in RESULT_COLUMNS]
        return frame.reindex(columns=ordered)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary in the shape `evalkit analyse --json` writes."""
        return {
            "model": self.model,
            "outcome": self.outcome,
            "n_obs": self.n_obs,
            "n_clusters": self.n_clusters,
            "icc": self.icc,
            "contrasts": [
                {**{k: v for k, v in asdict(c).items() if k != "extra"}, **c.extra}
                for c in self.contrasts
            ],
            "joint_test": self.joint_test,
            "diagnostics": self.diagnostics_record(),
        }
