"""Analytic MDES, power and number of clusters in PowerUp!'s forms.

Standard error of a standardised contrast between arm a and control c (outcome SD = 1):

* CRA2_2, two-level cluster-randomised (PowerUpR ``mdes.cra2``):
  SE^2 = D / (P (1 - P) J), df = J - g - 2.
* BCRA3_2f, clusters randomised within fixed blocks (PowerUpR ``mdes.bcra3f2``):
  SE^2 = D / sum_k H_k with H_k = a_k c_k / (a_k + c_k), df = sum_k (a_k + c_k - 2) - g.
  With J clusters in each of K blocks and share P treated, H_k = P (1 - P) J and
  df = K (J - 2) - g, PowerUp!'s form; the sum is its generalisation to unequal blocks.
* BIRA2_1f, staff randomised within fixed blocks (PowerUpR ``mdes.bira2f1``); here the
  "clusters" counted per block are staff (cluster size 1):
  SE^2 = (1 - rho)(1 - R2_1) / sum_k H_k over staff counts, df = sum_k (N_k - 2) - g.
  The contrast lies within PDUs, so the PDU share rho drops out: exactly when the blocks are
  PDUs, approximately when staff are randomised within larger strata and the analysis
  accounts for PDUs (mixed model). With rho = 0 it is PowerUp!'s form.

D = rho (1 - R2_2) + (1 - rho)(1 - R2_1) / n is the variance of a cluster mean, where n is
the cluster size after attrition. Unequal cluster sizes (coefficient of variation cv) inflate
D either by Eldridge, Ashby and Kerry's design effect (Int J Epidemiol 2006; for an analysis
weighting staff equally: the between part times 1 + cv^2), or by van Breukelen, Candel and
Berger's relative efficiency of the mixed model (Stat Med 2007; D / (1 - cv^2 lambda
(1 - lambda)), lambda = n rho' / (n rho' + 1 - rho'), rho' the residual ICC).

MDES = M SE with M = t(1 - alpha/2, df) + t(power, df) (Bloom 1995; Dong and Maynard, J Res
Educ Eff 2013); power at an effect uses the noncentral t, as PowerUpR does. Several contrasts:
Bonferroni tests each at alpha / m; for Holm, alpha / m is the level of its first step and so
the MDES it guarantees for every contrast (the simulation reports Holm's exact power).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np
from scipy import stats

from evalkit.errors import InputError

Model = Literal["cra2", "bcra3f2", "bira2f1"]
SizeMethod = Literal["eldridge", "van_breukelen"]
Adjustment = Literal["none", "bonferroni", "holm"]
MODEL_NAMES = {"cra2": "CRA2_2: clusters randomised, no blocks",
               "bcra3f2": "BCRA3_2f: clusters randomised within fixed blocks",
               "bira2f1": "BIRA2_1f: staff randomised within fixed blocks"}
SHORT_NAMES = {"cra2": "CRA2_2", "bcra3f2": "BCRA3_2f", "bira2f1": "BIRA2_1f"}
MAX_CLUSTERS_SEARCHED = 100_000


@dataclass(frozen=True)
class Assumptions:
    """What the calculation assumes about the outcome and the test."""

    icc: float
    r2_cluster: float = 0.0
    r2_individual: float = 0.0
    covariates: int = 0
    alpha: float = 0.05
    power: float = 0.80
    size_cv: float = 0.0
    size_method: SizeMethod = "eldridge"
    attrition: float = 0.0
    contrasts: int = 1
    adjustment: Adjustment = "none"

    def __post_init__(self) -> None:
        _check_range("icc", self.icc, 0.0, 1.0, "[0, 1)", high_open=True)
        _check_range("r2_cluster", self.r2_cluster, 0.0, 1.0, "[0, 1)", high_open=True)
        _check_range("r2_individual", self.r2_individual, 0.0, 1.0, "[0, 1)", high_open=True)
        _check_range("alpha", self.alpha, 0.0, 1.0, "(0, 1)", low_open=True, high_open=True)
        _check_range("power", self.power, 0.0, 1.0, "(0, 1)", low_open=True, high_open=True)
        _check_range("attrition", self.attrition, 0.0, 1.0, "[0, 1)", high_open=True)
        if self.size_cv < 0:
            raise InputError(f"size_cv must be >= 0 (got {self.size_cv})", column="size_cv")
        if self.covariates < 0 or self.contrasts < 1:
            raise InputError("covariates must be >= 0 and contrasts >= 1 "
                             f"(got {self.covariates} and {self.contrasts})")
        if self.adjustment not in ("none", "bonferroni", "holm"):
            raise InputError(f"adjustment {self.adjustment!r}: allowed none, bonferroni, holm")
        if self.size_method not in ("eldridge", "van_breukelen"):
            raise InputError(f"size_method {self.size_method!r}: allowed eldridge, van_breukelen")

    @property
    def test_alpha(self) -> float:
        """The two-sided level each contrast is tested at after the multiplicity adjustment."""
        return self.alpha if self.adjustment == "none" else self.alpha / self.contrasts


def _check_range(name: str, value: float, low: float, high: float, shown: str,
                 low_open: bool = False, high_open: bool = False) -> None:
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if not math.isfinite(value) or below or above:
        flag = "--" + name.replace("_", "-")
        raise InputError(f"{name} ({flag}) must be in {shown} (got {value})")


@dataclass(frozen=True)
class Arms:
    """Clusters of the two arms compared, per block, and the mean cluster size."""

    treated: tuple[float, ...]
    control: tuple[float, ...]
    cluster_size: float
    blocks: tuple[str, ...] = ()

    @classmethod
    def balanced(cls, clusters: float, cluster_size: float, blocks: int = 1,
                 treated_share: float = 0.5) -> Arms:
        """J clusters in each of K blocks (PowerUp!'s J per block), share P treated."""
        _check_range("treated_share", treated_share, 0.0, 1.0, "(0, 1)", True, True)
        treated = (clusters * treated_share,) * blocks
        control = (clusters * (1 - treated_share),) * blocks
        return cls(treated, control, float(cluster_size))


@dataclass(frozen=True)
class PowerResult:
    """One analytic answer: the model, its df and multiplier, and MDES, power or clusters."""

    model: Model
    df: float
    multiplier: float
    standard_error: float
    mdes: float
    test_alpha: float
    power: float | None = None
    effect: float | None = None
    clusters_needed: int | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """JSON-ready dictionary."""
        return {"model_name": MODEL_NAMES[self.model], **asdict(self)}


def multiplier(alpha: float, power: float, df: float) -> float:
    """M = t(1 - alpha/2, df) + t(power, df) (two-sided; minus when power < 0.5)."""
    t_alpha = float(stats.t.ppf(1 - alpha / 2, df))
    t_power = abs(float(stats.t.ppf(power, df)))
    return t_alpha + t_power if power >= 0.5 else t_alpha - t_power


def power_at(effect: float, standard_error: float, df: float, alpha: float) -> float:
    """Two-sided power of a t test at `effect` (noncentral t, as PowerUpR)."""
    critical = float(stats.t.ppf(1 - alpha / 2, df))
    ncp = effect / standard_error
    power = float(stats.nct.sf(critical, df, ncp) + stats.nct.cdf(-critical, df, ncp))
    if not math.isfinite(power):  # scipy's noncentral t fails at very large df: t is normal
        power = float(stats.norm.sf(critical - ncp) + stats.norm.cdf(-critical - ncp))
    return power


def cluster_mean_variance(a: Assumptions, cluster_size: float) -> float:
    """D: variance of a cluster mean (outcome SD 1), with attrition and unequal sizes."""
    n = cluster_size * (1 - a.attrition)
    between = a.icc * (1 - a.r2_cluster)
    within = (1 - a.icc) * (1 - a.r2_individual)
    if a.size_cv == 0:
        return between + within / n
    if a.size_method == "eldridge":
        return between * (1 + a.size_cv**2) + within / n
    residual_icc = between / (between + within) if between + within > 0 else 0.0
    lam = n * residual_icc / (n * residual_icc + 1 - residual_icc)
    efficiency = 1 - a.size_cv**2 * lam * (1 - lam)
    return (between + within / n) / efficiency


def standard_error_and_df(model: Model, arms: Arms, a: Assumptions) -> tuple[float, float]:
    """SE of the standardised contrast and its degrees of freedom under `model`."""
    treated, control = np.asarray(arms.treated, float), np.asarray(arms.control, float)
    _require_clusters(model, treated, control, arms)
    if model == "bira2f1":
        staff_t = treated * arms.cluster_size * (1 - a.attrition)
        staff_c = control * arms.cluster_size * (1 - a.attrition)
        harmonic = float(np.sum(staff_t * staff_c / (staff_t + staff_c)))
        variance = (1 - a.icc) * (1 - a.r2_individual) / harmonic
        df = float(np.sum(staff_t + staff_c - 2)) - a.covariates
    else:
        if model == "cra2":
            treated, control = np.array([treated.sum()]), np.array([control.sum()])
        harmonic = float(np.sum(treated * control / (treated + control)))
        variance = cluster_mean_variance(a, arms.cluster_size) / harmonic
        df = float(np.sum(treated + control - 2)) - a.covariates
    if df < 1:
        raise InputError(f"too few clusters for {a.covariates} covariates: {df:g} degrees of "
                         "freedom left; add clusters or drop covariates")
    return math.sqrt(variance), df


def _require_clusters(model: Model, treated: np.ndarray, control: np.ndarray, arms: Arms) -> None:
    """At least two clusters per arm; in blocked models at least two clusters in every block."""
    if treated.sum() < 2 or control.sum() < 2:
        raise InputError(f"fewer than two clusters per arm ({treated.sum():g} treated, "
                         f"{control.sum():g} control); each arm needs at least 2")
    if arms.cluster_size < 1:
        raise InputError(f"cluster size must be at least 1 (got {arms.cluster_size:g})",
                         column="cluster_size")
    if model == "cra2":
        return
    for index, (t, c) in enumerate(zip(treated, control, strict=True)):
        name = arms.blocks[index] if arms.blocks else f"block {index + 1}"
        if t + c < 2 or t == 0 or c == 0:
            raise InputError(f"{name} has {t:g} treated and {c:g} control clusters; every block "
                             "needs at least 2 clusters with both arms present (merge it with "
                             "a neighbouring block)")


def analyse(model: Model, arms: Arms, a: Assumptions, effect: float | None = None) -> PowerResult:
    """MDES at the assumed power, and the power at `effect` when one is given."""
    se, df = standard_error_and_df(model, arms, a)
    m = multiplier(a.test_alpha, a.power, df)
    power = None if effect is None else power_at(effect, se, df, a.test_alpha)
    notes = []
    if a.adjustment == "holm":
        notes.append("Holm: alpha / m is its first step; the MDES holds for every contrast")
    return PowerResult(model, df, m, se, m * se, a.test_alpha, power, effect, notes=notes)


def mdes(model: Model, arms: Arms, a: Assumptions) -> float:
    """The minimum detectable effect size (in outcome SDs)."""
    return analyse(model, arms, a).mdes


def numbers_arms(model: Model, clusters: float, cluster_size: float, blocks: int = 1,
                 treated_share: float = 0.5) -> Arms:
    """Arms from PowerUp!-style numbers: J clusters (per block) of n staff, K blocks, share P.

    For BIRA2_1f the J clusters of each block are themselves the blocks staff are randomised in.
    """
    if model == "bira2f1":
        return Arms.balanced(cluster_size, 1.0, int(round(clusters * blocks)), treated_share)
    if model == "cra2":
        return Arms.balanced(clusters * blocks, cluster_size, 1, treated_share)
    return Arms.balanced(clusters, cluster_size, blocks, treated_share)


def clusters_needed(model: Model, effect: float, a: Assumptions, cluster_size: float,
                    blocks: int = 1, treated_share: float = 0.5) -> PowerResult:
    """Smallest number of clusters (per block in blocked models) reaching the assumed power."""
    if not effect > 0:
        raise InputError(f"effect must be > 0 to solve for clusters (got {effect})",
                         column="effect")
    clusters = 2
    while clusters <= MAX_CLUSTERS_SEARCHED:
        arms = numbers_arms(model, clusters, cluster_size, blocks, treated_share)
        try:
            result = analyse(model, arms, a, effect)
        except InputError:
            clusters += 1
            continue
        if result.power is not None and result.power >= a.power:
            return replace(result, clusters_needed=clusters)
        clusters += 1 if clusters < 1000 else max(1, clusters // 100)
    raise InputError(f"no number of clusters up to {MAX_CLUSTERS_SEARCHED:,} reaches power "
                     f"{a.power} at effect {effect}; with this ICC more staff per cluster will "
                     "not help much: lower the target or raise the effect")
