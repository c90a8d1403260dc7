"""Randomisation inference: re-run the cluster allocation as it was run, within strata.

For a contrast A vs Control the A/Control labels are permuted among the clusters that were
in A or Control, within strata and keeping each stratum's count of A clusters; purposive
(fixed) clusters never move; an optional re-randomisation rule filters the allocations.

The test statistic is the covariate-adjusted OLS coefficient on A (y ~ A + strata +
covariates), optionally studentised by its CR1 cluster-robust SE. It is vectorised by
Frisch-Waugh-Lovell: with Q an orthonormal basis of the nuisance columns Z, the residualised
arm indicator for a cluster allocation c is M_Z D c (D = cluster membership), so

    coefficient(c) = c's / (c'n - |V'c|^2),   s = D' M_Z y,  n = cluster sizes,  V = D'Q,

and every permutation's statistic comes from matrix products of the permutation-indicator
matrix with cluster sums. Confidence intervals invert the test under the constant-effect
model (y - tau*A), whose statistics are linear (or, studentised, a ratio of a linear and
the root of a quadratic) in tau, so each tau costs O(permutations).
References: Fisher (1935); Rosenbaum (2002) Observational Studies ch. 2 (test inversion);
Young (2019) QJE 134(2) (randomisation-t); Imbens & Rubin (2015) ch. 5.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from evalkit.analysis.data import (
    AnalysisColumns,
    AnalysisInputError,
    build_design,
    ordered_arms,
)
from evalkit.analysis.results import Contrast, ModelResult

TIE_TOLERANCE = 1e-9  # relative: |T*| >= |T_obs| * (1 - tol) counts as "at least as extreme"
_CHUNK = 2048  # permutations processed at once (bounds memory)


class NonRandomisedArmError(AnalysisInputError):
    """The arm consists only of fixed (purposive) clusters, so it has no randomisation law."""

    def __init__(self, arm: str):
        super().__init__(
            f"arm {arm!r} consists only of fixed (purposively allocated) clusters; "
            "randomisation inference does not apply - report it as non-randomised"
        )
        self.arm = arm


# ---------------------------------------------------------------- permutations


@dataclass
class PermutationSet:
    """Candidate allocations: row r, column g is True when cluster g is in the tested arm."""

    assignments: np.ndarray  # (P, G) bool
    method: str  # "exact" or "monte-carlo"
    n_allocations: int  # distinct within-strata allocations (before any acceptance rule)
    n_candidates: int  # allocations enumerated or drawn before the acceptance rule
    observed_included: bool  # True when the rows contain the observed allocation (exact)


def count_allocations(
    treated: np.ndarray, strata: np.ndarray | None = None, fixed: np.ndarray | None = None
) -> int:
    """Number of distinct allocations keeping each stratum's count of movable treated units."""
    treated, strata, fixed = _as_cluster_arrays(treated, strata, fixed)
    total = 1
    for stratum in np.unique(strata):
        movable = (strata == stratum) & ~fixed
        total *= math.comb(int(movable.sum()), int(treated[movable].sum()))
    return total


def within_strata_permutations(
    treated: np.ndarray,
    strata: np.ndarray | None = None,
    fixed: np.ndarray | None = None,
    permutations: int = 10_000,
    seed: int = 0,
    exact_threshold: int = 20_000,
    accept: Callable[[np.ndarray], bool] | None = None,
    max_draw_rounds: int = 200,
) -> PermutationSet:
    """All (or `permutations` random) within-strata re-allocations of the treated indicator.

    Exact enumeration when the number of allocations is at most `exact_threshold`, else
    Monte Carlo with PCG64(seed). `accept(indicator) -> bool` keeps only allocations that
    pass a re-randomisation rule (Monte Carlo draws until `permutations` are accepted).
    """
    treated, strata, fixed = _as_cluster_arrays(treated, strata, fixed)
    n_allocations = count_allocations(treated, strata, fixed)
    if n_allocations <= exact_threshold:
        rows = _enumerate(treated, strata, fixed)
        kept = _filter(rows, accept)
        return PermutationSet(kept, "exact", n_allocations, len(rows), True)
    rng = np.random.Generator(np.random.PCG64(seed))
    batches, n_kept, n_drawn = [], 0, 0
    for _ in range(max_draw_rounds):
        rows = _sample(rng, permutations, treated, strata, fixed)
        n_drawn += len(rows)
        kept = _filter(rows, accept)
        batches.append(kept)
        n_kept += len(kept)
        if n_kept >= permutations:
            assignments = np.concatenate(batches)[:permutations]
            return PermutationSet(assignments, "monte-carlo", n_allocations, n_drawn, False)
    raise AnalysisInputError(
        f"the acceptance rule kept only {n_kept} of {n_drawn} random allocations; "
        f"fewer than the {permutations} permutations asked for"
    )


def _as_cluster_arrays(treated, strata, fixed):
    """Validated boolean/int cluster-level arrays (one stratum and no fixed units by default)."""
    treated = np.asarray(treated, dtype=bool)
    size = treated.shape[0]
    strata = np.zeros(size, dtype=np.int64) if strata is None else np.asarray(strata)
    fixed = np.zeros(size, dtype=bool) if fixed is None else np.asarray(fixed, dtype=bool)
    if strata.shape != (size,) or fixed.shape != (size,):
        raise ValueError("treated, strata and fixed must be 1-d arrays of the same length")
    return treated, strata, fixed


def _stratum_positions(strata, fixed):
    """For each stratum, the positions of its movable clusters."""
    return [np.flatnonzero((strata == s) & ~fixed) for s in np.unique(strata)]


def _enumerate(treated, strata, fixed) -> np.ndarray:
    """Every within-strata allocation, as a (N, G) boolean matrix (observed one included)."""
    positions = _stratum_positions(strata, fixed)
    choices = []
    for pos in positions:
        combos = list(itertools.combinations(pos, int(treated[pos].sum())))
        choices.append(np.array(combos, dtype=np.int64).reshape(len(combos), -1))
    index = np.array(list(itertools.product(*[range(len(c)) for c in choices])), dtype=np.int64)
    rows = np.tile(treated & fixed, (len(index), 1))
    row_ids = np.arange(len(index))[:, None]
    for j, chosen in enumerate(choices):
        if chosen.shape[1]:
            rows[row_ids, chosen[index[:, j]]] = True
    return rows


def _sample(rng, size, treated, strata, fixed) -> np.ndarray:
    """`size` uniformly random within-strata allocations (with replacement)."""
    rows = np.tile(treated & fixed, (size, 1))
    row_ids = np.arange(size)[:, None]
    for pos in _stratum_positions(strata, fixed):
        n_treated = int(treated[pos].sum())
        if 0 < n_treated < len(pos):
            order = np.argsort(rng.random((size, len(pos))), axis=1)[:, :n_treated]
            rows[row_ids, pos[order]] = True
        elif n_treated:
            rows[:, pos] = True
    return rows


def _filter(rows: np.ndarray, accept) -> np.ndarray:
    """Rows passing the acceptance rule (all rows when there is none)."""
    if accept is None:
        return rows
    keep = np.fromiter((bool(accept(row.copy())) for row in rows), dtype=bool, count=len(rows))
    return rows[keep]


# ---------------------------------------------------------------- statistics


@dataclass
class ContrastSetup:
    """One A-vs-Control contrast reduced to cluster-level sums (see module docstring)."""

    arm: str
    control: str
    cluster_labels: np.ndarray  # every A/Control cluster, including ones without outcome
    treated: np.ndarray  # observed allocation, bool per cluster
    strata: np.ndarray  # stratum code per cluster
    fixed: np.ndarray  # purposive clusters (never move)
    sizes: np.ndarray  # n_g: complete rows per cluster
    y_sums: np.ndarray  # s_g: cluster sums of M_Z y
    a_sums: np.ndarray  # cluster sums of M_Z A_obs
    basis_sums: np.ndarray  # V = D'Q  (G x k)
    basis_y: np.ndarray  # T_g = sum_i q_i (M_Z y)_i  (G x k)
    basis_a: np.ndarray  # sum_i q_i (M_Z A_obs)_i  (G x k)
    basis_outer: np.ndarray  # S_g = sum_i q_i q_i'  flattened (G x k*k)
    cr1_factor: float  # G/(G-1) * (n-1)/(n-p) for the studentised statistic
    n_obs: int
    n_dropped: int


@dataclass
class PermutationStatistics:
    """Per-allocation pieces; the statistic at tau is (coef - tau*slope) [/ CR1 SE(tau)]."""

    coef: np.ndarray
    slope: np.ndarray
    denominator: np.ndarray
    score_00: np.ndarray | None = None  # sum_g u0^2, u0 = cluster score at tau = 0
    score_01: np.ndarray | None = None  # sum_g u0*u1, u1 = d(score)/d(tau)
    score_11: np.ndarray | None = None
    cr1_factor: float = 1.0

    def at(self, tau: float = 0.0, studentise: bool = False) -> np.ndarray:
        """Test statistic of every allocation for the outcome y - tau * A_observed."""
        coef = self.coef - tau * self.slope
        if not studentise:
            return coef
        return coef / self.se_at(tau)

    def se_at(self, tau: float = 0.0) -> np.ndarray:
        """CR1 cluster-robust SE of the coefficient for the outcome y - tau * A_observed."""
        if self.score_00 is None:
            raise ValueError("computed without studentisation pieces")
        quad = self.score_00 + 2 * tau * self.score_01 + tau**2 * self.score_11
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sqrt(np.maximum(quad, 0.0) * self.cr1_factor) / self.denominator


def contrast_setup(
    df: pd.DataFrame, cols: AnalysisColumns, *, arm: str, fixed_clusters: Collection = ()
) -> ContrastSetup:
    """Residualise y and A on strata + covariates once and collapse to cluster sums."""
    data = build_design(df, cols, arms=[arm])
    arm_col, control = cols.arm, cols.control
    clusters = _cluster_table(df, cols, [arm, control])
    labels = clusters.index.to_numpy()
    fixed = np.isin(labels, [str(c) for c in fixed_clusters])
    treated = (clusters["arm"] == arm).to_numpy()
    if not treated.any():
        raise AnalysisInputError(f"arm {arm!r} has no clusters in column {arm_col!r}")
    if not (treated & ~fixed).any():
        raise NonRandomisedArmError(arm)

    position = pd.Index(labels).get_indexer(data.cluster_labels)
    row_cluster = position[data.cluster]
    n_clusters = len(labels)
    arm_column = data.arm_index[arm]
    a_obs = data.X[:, arm_column]
    basis = _orthonormal_basis(np.delete(data.X, arm_column, axis=1))
    y_res = data.y - basis @ (basis.T @ data.y)
    a_res = a_obs - basis @ (basis.T @ a_obs)
    member = sparse.csr_matrix(
        (np.ones(len(row_cluster)), (row_cluster, np.arange(len(row_cluster)))),
        shape=(n_clusters, len(row_cluster)),
    )
    outer = (basis[:, :, None] * basis[:, None, :]).reshape(len(basis), -1)
    n_obs, n_params = data.n_obs, basis.shape[1] + 1
    g_data = data.n_clusters
    return ContrastSetup(
        arm=arm, control=control, cluster_labels=labels, treated=treated,
        strata=clusters["stratum"].to_numpy(), fixed=fixed,
        sizes=np.asarray(member.sum(axis=1)).ravel(),
        y_sums=member @ y_res, a_sums=member @ a_res, basis_sums=member @ basis,
        basis_y=member @ (basis * y_res[:, None]), basis_a=member @ (basis * a_res[:, None]),
        basis_outer=member @ outer,
        cr1_factor=g_data / max(g_data - 1, 1) * (n_obs - 1) / max(n_obs - n_params, 1),
        n_obs=n_obs, n_dropped=data.n_dropped,
    )


def _cluster_table(df: pd.DataFrame, cols: AnalysisColumns, arms: list[str]) -> pd.DataFrame:
    """One row per cluster of the given arms (indexed by label): its arm and stratum code."""
    arm_col, cluster_col, strata_col = cols.arm, cols.cluster, cols.strata
    names = [cluster_col, arm_col, *([strata_col] if strata_col else [])]
    work = df.loc[df[arm_col].astype("string").isin(arms), names].dropna()
    work = work.astype(str)
    grouped = work.groupby(cluster_col, sort=True)
    for column in names[1:]:
        mixed = grouped[column].nunique()
        if (mixed > 1).any():
            raise AnalysisInputError(
                f"column {column!r} varies within cluster(s) {list(mixed[mixed > 1].index)}; "
                "clusters must be allocated whole, within one stratum"
            )
    table = pd.DataFrame({"arm": grouped[arm_col].first()})
    strata = grouped[strata_col].first() if strata_col else pd.Series("", index=table.index)
    table["stratum"] = np.unique(strata.to_numpy(), return_inverse=True)[1]
    return table


def _orthonormal_basis(matrix: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the column space (rank-revealing SVD, so collinearity is fine)."""
    u, singular, _ = np.linalg.svd(matrix, full_matrices=False)
    rank = int((singular > singular[0] * max(matrix.shape) * np.finfo(float).eps).sum())
    return u[:, :rank]


def permutation_statistics(
    setup: ContrastSetup, assignments: np.ndarray, studentise: bool = False
) -> PermutationStatistics:
    """Vectorised statistic pieces for every row of a (P, G) allocation matrix."""
    parts = [
        _chunk_statistics(setup, np.asarray(assignments[i:i + _CHUNK], dtype=float), studentise)
        for i in range(0, len(assignments), _CHUNK)
    ]
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return PermutationStatistics(**merged, cr1_factor=setup.cr1_factor)


def _chunk_statistics(setup: ContrastSetup, c: np.ndarray, studentise: bool) -> dict:
    """The statistic pieces for one block of allocations c (rows of 0/1 per cluster)."""
    w = c @ setup.basis_sums  # V'c per allocation
    with np.errstate(invalid="ignore", divide="ignore"):
        den = c @ setup.sizes - np.einsum("pk,pk->p", w, w)
        coef = (c @ setup.y_sums) / den
        slope = (c @ setup.a_sums) / den
    out = {"coef": coef, "slope": slope, "denominator": den}
    if studentise:
        k = w.shape[1]
        ww = (w[:, :, None] * w[:, None, :]).reshape(len(w), k * k)
        resid_weight = (c * setup.sizes - 2 * c * (w @ setup.basis_sums.T)
                        + ww @ setup.basis_outer.T)  # sum_{i in g} (M_Z D c)_i^2
        u0 = c * setup.y_sums - w @ setup.basis_y.T - coef[:, None] * resid_weight
        u1 = -(c * setup.a_sums - w @ setup.basis_a.T) + slope[:, None] * resid_weight
        out.update(score_00=(u0 * u0).sum(1), score_01=(u0 * u1).sum(1),
                   score_11=(u1 * u1).sum(1))
    return out


# ---------------------------------------------------------------- test and inversion


def randomisation_p_value(
    permuted: np.ndarray, observed: float, observed_included: bool
) -> float:
    """Two-sided p: share of allocations with |T*| >= |T_obs|, counting the observed one once."""
    extreme = int((np.abs(permuted) >= abs(observed) * (1 - TIE_TOLERANCE)).sum())
    if observed_included:
        return extreme / len(permuted)
    return (1 + extreme) / (1 + len(permuted))


def _invert(p_at: Callable[[float], float], estimate: float, step: float, alpha: float,
            direction: int) -> float:
    """CI bound: where p(tau) first drops to <= alpha stepping away from the estimate.

    Steps double until p <= alpha (else +-inf), then bisection on the step function p(tau),
    so the CI is {tau : p(tau) > alpha} up to the first crossing on each side.
    """
    inside, distance = estimate, step
    for _ in range(64):
        if p_at(estimate + direction * distance) <= alpha:
            break
        inside, distance = estimate + direction * distance, distance * 2
    else:
        return direction * math.inf
    outside = estimate + direction * distance
    for _ in range(200):
        middle = (inside + outside) / 2
        if middle in (inside, outside) or abs(outside - inside) <= 1e-12 * (1 + abs(middle)):
            break
        if p_at(middle) > alpha:
            inside = middle
        else:
            outside = middle
    return (inside + outside) / 2


@dataclass(frozen=True)
class RandomisationOptions:
    """How to permute and test: counts, seed, design rule, level and statistic."""

    permutations: int = 10_000
    seed: int = 0
    accept: Callable[[pd.Series], bool] | None = None
    alpha: float = 0.05
    exact_threshold: int = 20_000
    studentise: bool = False
    ci: bool = True


def randomisation_test(
    df: pd.DataFrame,
    cols: AnalysisColumns,
    *,
    arm: str | Sequence[str] | None = None,
    permutations: int = 10_000,
    seed: int = 0,
    fixed_clusters: Collection = (),
    accept: Callable[[pd.Series], bool] | None = None,
    alpha: float = 0.05,
    exact_threshold: int = 20_000,
    studentise: bool = False,
    ci: bool = True,
) -> ModelResult:
    """Randomisation test (and test-inversion CI) of each arm vs control, re-running the design.

    `arm` None tests every non-control arm (an arm made only of `fixed_clusters` raises
    NonRandomisedArmError). `accept` receives a candidate allocation as a Series (cluster
    label -> arm, for every cluster in `df`) and returns whether the design would accept it.
    Contrast `se` is the observed CR1 cluster-robust SE (for reference); p-value and CI are
    randomisation-based. The CI assumes a constant additive effect.
    """
    options = RandomisationOptions(permutations, seed, accept, alpha, exact_threshold,
                                   studentise, ci)
    arm_names = ordered_arms(df[cols.arm].astype("string"), cols.control)
    tested = arm_names if arm is None else ([arm] if isinstance(arm, str) else list(arm))
    unknown = [a for a in tested if a not in arm_names]
    if unknown:
        raise AnalysisInputError(f"arm(s) {unknown} not found; arms present: {arm_names}")
    contrasts, per_arm = [], {}
    for name in tested:
        setup = contrast_setup(df, cols, arm=name, fixed_clusters=fixed_clusters)
        contrast, details = _test_one(df, cols, setup, options)
        contrasts.append(contrast)
        per_arm[name] = details
    n_obs, n_clusters, n_dropped = _sample_counts(df, cols, [*tested, cols.control])
    return ModelResult(
        model="ri", outcome=cols.outcome, n_obs=n_obs, n_clusters=n_clusters,
        contrasts=contrasts, n_dropped=n_dropped,
        diagnostics={
            "test_statistic": "studentised (CR1)" if studentise else "coefficient",
            "p_value": "two-sided: Monte Carlo (1 + #|T*|>=|T_obs|)/(1 + permutations); "
                       "exact #|T*|>=|T_obs| / allocations (observed among them)",
            "ci": "test inversion, constant additive effect" if ci else None,
            "arms": per_arm,
        },
    )


def _sample_counts(df: pd.DataFrame, cols: AnalysisColumns,
                   arms: list[str]) -> tuple[int, int, int]:
    """Complete-case rows and clusters used across the tested arms, and rows dropped."""
    in_arms = df[cols.arm].astype("string").isin(arms).fillna(False).to_numpy(bool)
    needed = [c for c in cols.needed if c != cols.arm]
    complete = in_arms & df[needed].notna().all(axis=1).to_numpy()
    n_clusters = df.loc[complete, cols.cluster].astype(str).nunique()
    return int(complete.sum()), int(n_clusters), int((in_arms & ~complete).sum())


def _test_one(df: pd.DataFrame, cols: AnalysisColumns, setup: ContrastSetup,
              options: RandomisationOptions) -> tuple[Contrast, dict]:
    """Permute, test and (optionally) invert for one prepared contrast."""
    rule = (None if options.accept is None
            else _series_rule(df, cols, setup, options.accept))
    perms = within_strata_permutations(setup.treated, setup.strata, setup.fixed,
                                       options.permutations, options.seed,
                                       options.exact_threshold, rule)
    if len(perms.assignments) == 0:
        raise AnalysisInputError("the acceptance rule rejected every allocation")
    observed_ok = True if rule is None else bool(rule(setup.treated.copy()))
    included = perms.observed_included and observed_ok
    studentise = options.studentise
    stats_perm = permutation_statistics(setup, perms.assignments, studentise=studentise)
    stats_obs = permutation_statistics(setup, setup.treated[None, :], studentise=True)

    def p_at(tau: float) -> float:
        return randomisation_p_value(stats_perm.at(tau, studentise),
                                     float(stats_obs.at(tau, studentise)[0]), included)

    estimate = float(stats_obs.coef[0])
    se = float(stats_obs.se_at(0.0)[0])
    p_value = p_at(0.0)
    low = high = math.nan
    if options.ci:
        step = se if math.isfinite(se) and se > 0 else max(abs(estimate), 1.0)
        low = _invert(p_at, estimate, step, options.alpha, -1)
        high = _invert(p_at, estimate, step, options.alpha, +1)
    n_perm = len(perms.assignments)
    mc_se = 0.0 if included else math.sqrt(p_value * (1 - p_value) / n_perm)
    details = {
        "method": perms.method, "permutations": n_perm, "p_value_mc_se": mc_se,
        "n_allocations": perms.n_allocations, "n_candidates": perms.n_candidates,
        "observed_accepted": observed_ok, "clusters_permuted": int((~setup.fixed).sum()),
        "clusters_fixed": int(setup.fixed.sum()),
        "clusters_without_outcome": int((setup.sizes == 0).sum()),
        "degenerate_allocations": int((stats_perm.denominator <= 0).sum()),
    }
    contrast = Contrast(
        arm=setup.arm, versus=setup.control, estimate=estimate, se=se, df=None,
        statistic=estimate / se if se > 0 else math.nan, p_value=p_value,
        ci_low=low, ci_high=high, randomised=True,
        extra={"ri_method": perms.method, "ri_permutations": n_perm, "p_value_mc_se": mc_se},
    )
    return contrast, details


def _series_rule(df: pd.DataFrame, cols: AnalysisColumns, setup: ContrastSetup,
                 accept: Callable[[pd.Series], bool]) -> Callable[[np.ndarray], bool]:
    """Adapt a user rule on (cluster label -> arm) Series to the cluster-indicator generator."""
    everyone = (df[[cols.cluster, cols.arm]].dropna().astype(str)
                .groupby(cols.cluster, sort=True)[cols.arm].first())
    position = everyone.index.get_indexer(setup.cluster_labels)
    base = everyone.to_numpy(dtype=object)

    def rule(indicator: np.ndarray) -> bool:
        candidate = base.copy()
        candidate[position] = np.where(indicator, setup.arm, setup.control)
        return bool(accept(pd.Series(candidate, index=everyone.index, copy=False)))

    return rule
