"""Analytic MDES and power against PowerUpR's documented examples, and their behaviour."""

from __future__ import annotations

import pytest

from evalkit.errors import InputError
from evalkit.power.analytic import Arms, Assumptions, analyse, clusters_needed, mdes


def test_cra2_matches_powerupr_documentation():
    # PowerUpR: mdes.cra2(rho2 = .17, n = 15, J = 20) -> 0.629, df 18
    result = analyse("cra2", Arms.balanced(20, 15), Assumptions(icc=0.17))
    assert result.df == 18
    assert round(result.mdes, 3) == 0.629


def test_bcra3f2_matches_powerupr_documentation():
    # PowerUpR: mdes.bcra3f2(rho2 = .10, n = 20, J = 44, K = 5) -> 0.145, df 210
    result = analyse("bcra3f2", Arms.balanced(44, 20, blocks=5), Assumptions(icc=0.10))
    assert result.df == 210
    assert round(result.mdes, 3) == 0.145


def test_bcra3f2_with_covariates_matches_powerupr():
    # the same with R2 = .5 at both levels and one cluster covariate -> 0.102, df 209
    assumptions = Assumptions(icc=0.10, r2_cluster=0.5, r2_individual=0.5, covariates=1)
    result = analyse("bcra3f2", Arms.balanced(44, 20, blocks=5), assumptions)
    assert result.df == 209
    assert round(result.mdes, 3) == 0.102


def test_power_at_the_mdes_is_close_to_the_target_and_solving_inverts_it():
    assumptions = Assumptions(icc=0.10)
    arms = Arms.balanced(44, 20, blocks=5)
    result = analyse("bcra3f2", arms, assumptions, effect=mdes("bcra3f2", arms, assumptions))
    assert result.power == pytest.approx(0.80, abs=0.005)
    solved = clusters_needed("bcra3f2", result.mdes + 1e-9, assumptions, 20, blocks=5)
    assert solved.clusters_needed in (44, 45)
    assert solved.power >= 0.80


def test_unequal_blocks_generalise_the_df():
    arms = Arms((3, 2, 5), (3, 3, 4), cluster_size=10)
    result = analyse("bcra3f2", arms, Assumptions(icc=0.05, covariates=1))
    assert result.df == (6 - 2) + (5 - 2) + (9 - 2) - 1


def test_unequal_cluster_sizes_raise_the_mdes_by_either_method():
    arms = Arms.balanced(40, 25)
    equal = mdes("cra2", arms, Assumptions(icc=0.05))
    eldridge = mdes("cra2", arms, Assumptions(icc=0.05, size_cv=0.6))
    breukelen = mdes("cra2", arms, Assumptions(icc=0.05, size_cv=0.6,
                                               size_method="van_breukelen"))
    assert equal < breukelen < eldridge


def test_bonferroni_and_attrition_raise_the_mdes():
    arms = Arms.balanced(40, 25)
    base = mdes("cra2", arms, Assumptions(icc=0.05))
    assert mdes("cra2", arms, Assumptions(icc=0.05, contrasts=2, adjustment="bonferroni")) > base
    assert mdes("cra2", arms, Assumptions(icc=0.05, attrition=0.2)) > base


def test_staff_randomisation_within_blocks_matches_powerupr_bira2f1_at_zero_icc():
    # mdes.bira2f1(n = 55, J = 3): SE = sqrt(1 / (.25 * 165)), df = 3 * 53
    result = analyse("bira2f1", Arms.balanced(55, 1, blocks=3), Assumptions(icc=0.0))
    assert result.df == 159
    assert result.standard_error == pytest.approx((1 / (0.25 * 165)) ** 0.5)


@pytest.mark.parametrize("bad", [{"icc": 1.0}, {"icc": -0.1}, {"icc": 0.1, "r2_cluster": 1.0},
                                 {"icc": 0.1, "alpha": 0.0}, {"icc": 0.1, "power": 1.0}])
def test_bad_assumptions_are_input_errors(bad):
    with pytest.raises(InputError):
        Assumptions(**bad)


def test_a_block_with_one_cluster_is_refused():
    with pytest.raises(InputError, match="block 2"):
        analyse("bcra3f2", Arms((2, 1), (2, 0), 10), Assumptions(icc=0.1))
