"""Randomisation invariants: counts, national coordination, exact marginals, determinism."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.allocation.randomise import (
    LeftoverRounder,
    RandomStream,
    StratifiedDesign,
    split_counts,
)

sizes_strategy = st.lists(st.integers(1, 12), min_size=1, max_size=8)
ratios_strategy = st.lists(st.integers(0, 4), min_size=2, max_size=4).filter(lambda r: sum(r) > 0)


def arm_counts(arms: np.ndarray, design: StratifiedDesign) -> np.ndarray:
    """(batch x strata x arms) counts of each arm in each stratum."""
    n_arms = len(design.ratios)
    return np.stack([
        np.stack([(arms[:, s:s + n] == a).sum(axis=1) for a in range(n_arms)], axis=1)
        for s, n in zip(design.starts, design.sizes, strict=True)
    ], axis=1)


@settings(max_examples=60, deadline=None)
@given(sizes=sizes_strategy, ratios=ratios_strategy, seed=st.integers(0, 2**32))
def test_stratum_and_national_counts_within_floor_and_ceiling(sizes, ratios, seed):
    design = StratifiedDesign(sizes, ratios)
    counts = arm_counts(design.draw(40, RandomStream(seed)), design)
    total = sum(ratios)
    for s, n in enumerate(sizes):
        for a, r in enumerate(ratios):
            target = n * r / total
            assert np.all(counts[:, s, a] >= math.floor(target))
            assert np.all(counts[:, s, a] <= math.ceil(target))
    national = counts.sum(axis=1)
    for a, r in enumerate(ratios):
        target = sum(sizes) * r / total
        assert np.all(national[:, a] >= math.floor(target))
        assert np.all(national[:, a] <= math.ceil(target))


def exact_count_distribution(rounder: LeftoverRounder) -> list[tuple[Fraction, np.ndarray]]:
    """Every leaf of the dependent-rounding walk with its exact probability."""
    leaves, stack = [], [(rounder.root, Fraction(1))]
    while stack:
        node, probability = stack.pop()
        if node.result is not None:
            leaves.append((probability, node.result))
            continue
        up = node.child(True)
        stack.append((up, probability * node.p_up))
        stack.append((node.child(False), probability * (1 - node.p_up)))
    return leaves


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 9), min_size=1, max_size=5),
       ratios=st.lists(st.integers(0, 5), min_size=2, max_size=4).filter(lambda r: sum(r) > 0))
def test_exact_marginals_by_exhaustive_enumeration(sizes, ratios):
    """E[count of arm a in stratum s] = n_s r_a / R exactly, so with a uniform shuffle every
    unit's probability of arm a is exactly r_a / R, also for unequal ratios."""
    base, leftovers = split_counts(sizes, ratios)
    leaves = exact_count_distribution(LeftoverRounder(leftovers))
    assert sum(p for p, _ in leaves) == 1
    total = sum(ratios)
    for s, n in enumerate(sizes):
        for a, r in enumerate(ratios):
            expected = sum(p * (int(base[s, a]) + int(result[s, a])) for p, result in leaves)
            assert expected == Fraction(n * r, total)
            assert expected / n == Fraction(r, total)


def test_randomizr_leftover_counterexample_is_exact():
    """Unequal weights with two leftovers per stratum: marginals stay exactly r_a / R."""
    sizes, ratios = [3, 3, 5, 2], [1, 2, 3]
    base, leftovers = split_counts(sizes, ratios)
    leaves = exact_count_distribution(LeftoverRounder(leftovers))
    for s, n in enumerate(sizes):
        for a, r in enumerate(ratios):
            expected = sum(p * (int(base[s, a]) + int(res[s, a])) for p, res in leaves) / n
            assert expected == Fraction(r, 6)


def test_unit_marginals_by_simulation_within_binomial_tolerance():
    design = StratifiedDesign([5, 3, 7, 1, 2], [1, 2, 3])
    draws = 20_000
    arms = design.draw(draws, RandomStream(11))
    for a, share in enumerate([1 / 6, 2 / 6, 3 / 6]):
        observed = (arms == a).mean(axis=0)
        tolerance = 4.5 * math.sqrt(share * (1 - share) / draws)
        assert np.all(np.abs(observed - share) < tolerance)


def test_within_stratum_shuffle_is_uniform_over_positions():
    design = StratifiedDesign([4], [1, 1, 1, 1])
    arms = design.draw(20_000, RandomStream(5))
    permutations = {tuple(row) for row in arms[:2000]}
    assert len(permutations) == 24     # every ordering of 4 distinct arms occurs


def test_same_seed_same_allocation_and_different_seed_differs():
    design = StratifiedDesign([9, 8, 7, 13], [1, 1])
    first = design.draw(1, RandomStream(20220214))
    again = StratifiedDesign([9, 8, 7, 13], [1, 1]).draw(1, RandomStream(20220214))
    other = design.draw(1, RandomStream(20220215))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


class ScriptedStream(RandomStream):
    """A stream whose words are given, to test the exact integer comparisons."""

    def __init__(self, words: list[int]) -> None:
        self._script = list(words)
        self._buffer, self._next = [], 0

    def words(self, count: int) -> np.ndarray:
        taken, self._script = self._script[:count], self._script[count:]
        return np.array(taken, dtype=np.uint64)

    def coin(self, probability: Fraction) -> bool:
        word = self._script.pop(0)
        return word * probability.denominator < probability.numerator * 2**64


@pytest.mark.parametrize("probability", [Fraction(1, 3), Fraction(1, 2), Fraction(5, 7)])
def test_coin_threshold_is_exact(probability):
    threshold = math.ceil(probability * 2**64)
    assert ScriptedStream([threshold - 1]).coin(probability) is True
    assert ScriptedStream([threshold]).coin(probability) is False


def test_bounded_integers_reject_the_biased_tail():
    bound = 3
    highest_fair = 2**64 - (2**64 % bound) - 1
    stream = ScriptedStream([highest_fair + 1, 7, highest_fair])
    values = RandomStream.below(stream, bound, 2)
    # the rejected first word is replaced by the next word after the batch
    assert values.tolist() == [highest_fair % bound, 7 % bound]


def test_bounded_integers_are_in_range_and_roughly_uniform():
    values = RandomStream(3).below(7, 70_000)
    assert values.min() == 0 and values.max() == 6
    counts = np.bincount(values, minlength=7)
    assert np.all(np.abs(counts - 10_000) < 5 * math.sqrt(10_000))


def test_zero_ratio_arm_receives_no_randomised_units():
    design = StratifiedDesign([10, 7], [0, 1, 1])
    arms = design.draw(200, RandomStream(1))
    assert not np.any(arms == 0)


def test_invalid_ratios_are_rejected():
    with pytest.raises(ValueError):
        StratifiedDesign([3], [0, 0])
    with pytest.raises(ValueError):
        StratifiedDesign([3], [-1, 2])
