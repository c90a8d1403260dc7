"""Randomisation inference checked against plain refit-per-allocation implementations."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from evalkit.analysis.data import AnalysisColumns, build_design
from evalkit.analysis.randomisation_inference import (
    TIE_TOLERANCE,
    NonRandomisedArmError,
    contrast_setup,
    count_allocations,
    permutation_statistics,
    randomisation_test,
    within_strata_permutations,
)

COLS = AnalysisColumns("y", "arm", "pdu", "region", ("x1",))

def simulate(n_strata, clusters_per_stratum, treated_per_stratum, size, effect, seed,
             early_adopters=0):
    """Cluster trial: `treated_per_stratum` Treatment clusters per stratum, rest Control."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_strata):
        arms = ["Treatment"] * treated_per_stratum
        arms += ["Control"] * (clusters_per_stratum - treated_per_stratum)
        arms = ["Early Adopter"] * early_adopters + list(rng.permutation(arms))
        for j, arm in enumerate(arms):
            m = int(rng.integers(size // 2, size + 1))
            x1 = rng.normal(size=m)
            y = 0.5 * x1 + 0.3 * s + rng.normal(0, 0.4) + rng.normal(size=m)
            y += effect * (arm == "Treatment")
            rows.append(pd.DataFrame({"pdu": f"S{s}C{j}", "region": f"R{s}", "arm": arm,
                                      "x1": x1, "y": y}))
    return pd.concat(rows, ignore_index=True)


def plain_allocations(cluster_table):
    """Every within-strata allocation by brute force: list of sets of treated cluster labels."""
    per_stratum = []
    for _, group in cluster_table.groupby("region"):
        n_treated = int((group["arm"] == "Treatment").sum())
        per_stratum.append(list(itertools.combinations(group["pdu"], n_treated)))
    return [set(itertools.chain(*combo)) for combo in itertools.product(*per_stratum)]


def plain_fit(df, treated):
    """OLS of y on [1, A, region dummies, x1] by lstsq, with a hand-written CR1 SE."""
    a = df["pdu"].isin(treated).to_numpy(float)
    regions = pd.get_dummies(df["region"], drop_first=True, dtype=float).to_numpy()
    X = np.column_stack([np.ones(len(df)), a, regions, df["x1"]])
    beta = np.linalg.lstsq(X, df["y"].to_numpy(), rcond=None)[0]
    resid = df["y"].to_numpy() - X @ beta
    bread = np.linalg.inv(X.T @ X)
    meat = sum(np.outer(sc, sc) for sc in (
        X[(df["pdu"] == g).to_numpy()].T @ resid[(df["pdu"] == g).to_numpy()]
        for g in df["pdu"].unique()))
    n, p, g = len(df), X.shape[1], df["pdu"].nunique()
    cov = bread @ meat @ bread * g / (g - 1) * (n - 1) / (n - p)
    return beta[1], np.sqrt(cov[1, 1])


def plain_p(statistics, observed):
    """Share of allocations at least as extreme (observed allocation is among them)."""
    statistics = np.abs(np.asarray(statistics))
    return np.mean(statistics >= abs(observed) * (1 - TIE_TOLERANCE))


@pytest.mark.parametrize("studentise", [False, True])
def test_exact_enumeration_matches_plain_refits(studentise):
    df = simulate(2, 4, 2, 12, effect=0.6, seed=1)
    table = df.groupby("pdu")[["region", "arm"]].first().reset_index()
    allocations = plain_allocations(table)
    fits = [plain_fit(df, treated) for treated in allocations]
    stats = [b / se if studentise else b for b, se in fits]
    observed_set = set(table.loc[table["arm"] == "Treatment", "pdu"])
    observed = stats[allocations.index(observed_set)]

    result = randomisation_test(df, AnalysisColumns("y", "arm", "pdu", "region", ["x1"]),
                                studentise=studentise, ci=False)
    setup = contrast_setup(df, COLS, arm="Treatment")
    perms = within_strata_permutations(setup.treated, setup.strata)
    ours = permutation_statistics(setup, perms.assignments, True).at(0.0, studentise)

    assert perms.method == "exact" and len(perms.assignments) == len(allocations) == 36
    np.testing.assert_allclose(np.sort(ours), np.sort(stats), rtol=1e-10, atol=1e-12)
    assert result.contrasts[0].p_value == pytest.approx(plain_p(stats, observed), abs=1e-12)
    assert result.contrasts[0].estimate == pytest.approx(fits[allocations.index(observed_set)][0])


def test_vectorised_statistics_match_statsmodels_refits():
    df = simulate(4, 8, 4, 30, effect=0.3, seed=2)
    setup = contrast_setup(df, COLS, arm="Treatment")
    perms = within_strata_permutations(setup.treated, setup.strata, permutations=150, seed=3)
    pieces = permutation_statistics(setup, perms.assignments, studentise=True)
    X_fixed = pd.get_dummies(df["region"], drop_first=True, dtype=float).assign(x1=df["x1"])
    groups = pd.Index(setup.cluster_labels).get_indexer(df["pdu"])
    for row, assignment in enumerate(perms.assignments[:150]):
        a = assignment[groups].astype(float)
        X = sm.add_constant(X_fixed.assign(a=a).to_numpy())
        fit = sm.OLS(df["y"].to_numpy(), X).fit(cov_type="cluster",
                                                cov_kwds={"groups": groups})
        assert pieces.coef[row] == pytest.approx(fit.params[-1], abs=1e-8)
        assert pieces.se_at(0.0)[row] == pytest.approx(fit.bse[-1], abs=1e-8)


def test_statistic_at_tau_equals_refit_on_shifted_outcome():
    df = simulate(3, 6, 3, 20, effect=0.4, seed=4)
    setup = contrast_setup(df, COLS, arm="Treatment")
    perms = within_strata_permutations(setup.treated, setup.strata, permutations=50, seed=1,
                                       exact_threshold=10)
    tau = 0.37
    shifted = df.assign(y=df["y"] - tau * (df["arm"] == "Treatment"))
    direct = permutation_statistics(
        contrast_setup(shifted, COLS, arm="Treatment"),
        perms.assignments, True)
    inverted = permutation_statistics(setup, perms.assignments, True)
    for studentise in (False, True):
        np.testing.assert_allclose(inverted.at(tau, studentise), direct.at(0.0, studentise),
                                   rtol=1e-9, atol=1e-12)


def test_permutations_preserve_strata_counts_and_fixed_clusters():
    rng = np.random.default_rng(5)
    strata = np.repeat([0, 1, 2], [7, 9, 8])
    treated = np.zeros(24, dtype=bool)
    for s in range(3):
        treated[rng.choice(np.flatnonzero(strata == s), 3, replace=False)] = True
    fixed = np.zeros(24, dtype=bool)
    fixed[[0, 1, 9]] = True  # one may be treated, others control
    for threshold in (10**9, 10):  # exact, then Monte Carlo
        perms = within_strata_permutations(treated, strata, fixed, permutations=500,
                                           exact_threshold=threshold)
        assert perms.method == ("exact" if threshold > 10 else "monte-carlo")
        rows = perms.assignments
        assert (rows[:, fixed] == treated[fixed]).all()
        for s in range(3):
            assert (rows[:, strata == s].sum(1) == treated[strata == s].sum()).all()
    exact = within_strata_permutations(treated, strata, fixed, exact_threshold=10**9)
    assert len(exact.assignments) == count_allocations(treated, strata, fixed)
    assert len({r.tobytes() for r in exact.assignments}) == len(exact.assignments)


def test_monte_carlo_is_reproducible_by_seed():
    treated = np.arange(40) % 2 == 0
    a = within_strata_permutations(treated, permutations=200, seed=7, exact_threshold=0)
    b = within_strata_permutations(treated, permutations=200, seed=7, exact_threshold=0)
    c = within_strata_permutations(treated, permutations=200, seed=8, exact_threshold=0)
    assert (a.assignments == b.assignments).all()
    assert not (a.assignments == c.assignments).all()


@pytest.mark.parametrize("threshold", [10**9, 10])
def test_acceptance_rule_is_respected(threshold):
    strata = np.repeat([0, 1], 6)
    treated = np.tile([True, True, True, False, False, False], 2)

    def balanced_first_two(indicator):  # rule: clusters 0 and 6 are not both treated
        return not (indicator[0] and indicator[6])

    perms = within_strata_permutations(treated, strata, accept=balanced_first_two,
                                       permutations=300, exact_threshold=threshold)
    both_treated = math.comb(5, 2) ** 2  # exact: allocations with clusters 0 and 6 treated
    expected = 300 if perms.method == "monte-carlo" else math.comb(6, 3) ** 2 - both_treated
    assert len(perms.assignments) == expected
    assert all(balanced_first_two(row) for row in perms.assignments)
    assert perms.n_candidates > len(perms.assignments)


def test_acceptance_rule_sees_whole_design_in_randomisation_test():
    df = simulate(2, 6, 3, 10, effect=0.0, seed=6, early_adopters=1)
    seen = []

    def rule(assignment: pd.Series) -> bool:
        seen.append(assignment)
        return assignment[["S0C1", "S0C2"]].tolist() != ["Treatment", "Treatment"]

    result = randomisation_test(df, AnalysisColumns("y", "arm", "pdu", "region"),
                                arm="Treatment", fixed_clusters=["S0C0", "S1C0"], accept=rule,
                                ci=False)
    assert {a.index.size for a in seen} == {df["pdu"].nunique()}
    assert all((a[["S0C0", "S1C0"]] == "Early Adopter").all() for a in seen)
    details = result.diagnostics["arms"]["Treatment"]
    assert details["permutations"] < details["n_allocations"] == 400


def test_arm_of_fixed_clusters_is_refused():
    df = simulate(2, 5, 2, 10, effect=0.0, seed=8, early_adopters=2)
    fixed = df.loc[df["arm"] == "Early Adopter", "pdu"].unique()
    with pytest.raises(NonRandomisedArmError, match="Early Adopter"):
        randomisation_test(df, AnalysisColumns("y", "arm", "pdu", "region"), fixed_clusters=fixed)
    result = randomisation_test(df, AnalysisColumns("y", "arm", "pdu", "region"),
                                arm="Treatment", fixed_clusters=fixed, ci=False)
    assert [c.arm for c in result.contrasts] == ["Treatment"]


@pytest.mark.parametrize("studentise", [False, True])
def test_ci_covers_truth_and_p_equals_alpha_at_bounds(studentise):
    effect, alpha, n_perm = 0.5, 0.1, 2000
    df = simulate(3, 10, 5, 25, effect=effect, seed=11)
    kwargs = dict(permutations=n_perm, seed=2, exact_threshold=0, studentise=studentise)
    result = randomisation_test(df, COLS, alpha=alpha, **kwargs)
    contrast = result.contrasts[0]
    assert contrast.ci_low < effect < contrast.ci_high
    assert contrast.ci_low < contrast.estimate < contrast.ci_high
    treated = (df["arm"] == "Treatment").to_numpy()
    for bound, inward in ((contrast.ci_low, +1), (contrast.ci_high, -1)):
        eps = 1e-6 * (contrast.ci_high - contrast.ci_low)
        p = {}
        for side, tau in (("in", bound + inward * eps), ("out", bound - inward * eps)):
            shifted = df.assign(y=df["y"] - tau * treated)
            p[side] = randomisation_test(shifted, COLS, ci=False, **kwargs).contrasts[0].p_value
        assert p["in"] > alpha >= p["out"]
        assert abs(p["in"] - alpha) < 5 / n_perm


def test_ci_coverage_in_repeated_simulation():
    covered = 0
    for seed in range(40):
        df = simulate(3, 8, 4, 15, effect=0.3, seed=100 + seed)
        c = randomisation_test(df, AnalysisColumns("y", "arm", "pdu", "region", ["x1"]),
                               permutations=500, seed=seed, exact_threshold=0).contrasts[0]
        covered += c.ci_low < 0.3 < c.ci_high
    assert covered >= 34  # nominal 38 of 40; binomial 1% lower tail is about 34


def test_null_p_value_is_roughly_uniform_and_valid():
    p_values = []
    for seed in range(30):
        df = simulate(2, 6, 3, 8, effect=0.0, seed=200 + seed)
        p_values.append(randomisation_test(df, AnalysisColumns("y", "arm", "pdu", "region"),
                                           ci=False).contrasts[0].p_value)
    p_values = np.array(p_values)
    assert ((p_values > 0) & (p_values <= 1)).all()
    assert (p_values <= 0.05).sum() <= 5


def test_counts_match_the_shared_design_with_missing_values():
    df = pd.read_csv(Path(__file__).parent / "reference" / "datasets" / "missing.csv")
    result = randomisation_test(df, AnalysisColumns("y", "arm", "pdu", "region", ["x1"]),
                                permutations=200, ci=False)
    design = build_design(df, AnalysisColumns("y", "arm", "pdu", "region", ["x1"]))
    assert (result.n_obs, result.n_clusters) == (design.n_obs, design.n_clusters)
    assert result.n_dropped == design.n_dropped > 0
    assert [c.arm for c in result.contrasts] == design.arms


def test_stratum_without_treated_clusters_is_enumerated():
    treated = np.array([True, False, False, False, False])
    perms = within_strata_permutations(treated, strata=np.array([0, 0, 1, 1, 1]))
    assert perms.method == "exact" and perms.n_allocations == 2
    assert sorted(map(tuple, perms.assignments.astype(int))) == [(0, 1, 0, 0, 0),
                                                                   (1, 0, 0, 0, 0)]
