"""The block-drawn Fisher-Yates shuffle and the repeat-built slot arms give the allocations
the step-by-step code gave, word for word, including when a word is rejected."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.allocation import randomise
from evalkit.allocation.randomise import RandomStream, StratifiedDesign

MAX = 2**64 - 1


def old_shuffle_within_strata(stratum_sizes, batch: int, stream: RandomStream) -> np.ndarray:
    """`shuffle_within_strata` before the block draw: one `below` a step."""
    sizes = np.asarray(stratum_sizes, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    local = np.concatenate([np.arange(n, dtype=np.int64) for n in sizes]) if len(sizes) else \
        np.zeros(0, dtype=np.int64)
    perm = np.tile(local, (batch, 1))
    rows = np.arange(batch)[:, None]
    for position in range(int(sizes.max(initial=0)) - 1, 0, -1):
        active = starts[sizes > position]
        offsets = stream.below(position + 1, batch * active.size).reshape(batch, active.size)
        here = active + position
        there = active + offsets
        held = perm[rows, here].copy()
        perm[rows, here] = perm[rows, there]
        perm[rows, there] = held
    return perm


def old_draw(design: StratifiedDesign, batch: int, stream: RandomStream) -> np.ndarray:
    """`StratifiedDesign.draw` before: slot arms by counting arm boundaries."""
    counts = np.stack([design.base + design.rounder.draw(stream) for _ in range(batch)])
    perm = old_shuffle_within_strata(design.sizes, batch, stream)
    stratum_of = np.repeat(np.arange(len(design.sizes)), design.sizes)
    local_slot = perm.dtype.type(0) + np.arange(design.n_units) - design.starts[stratum_of]
    slot_ends = np.cumsum(counts, axis=2)[:, stratum_of, :]
    slot_arm = (local_slot[None, :, None] >= slot_ends).sum(axis=2).astype(np.int8)
    arms = np.empty((batch, design.n_units), dtype=np.int8)
    np.put_along_axis(arms, design.starts[stratum_of][None, :] + perm, slot_arm, axis=1)
    return arms


class RejectingBits:
    """A bit generator whose every `every`-th word is 2**64 - 1 (rejected for any bound that
    is not a power of two), so the rewind path is taken; its state is its place."""

    def __init__(self, seed: int, every: int) -> None:
        self.words = np.random.PCG64(seed).random_raw(200_000)
        if every:
            self.words[every - 1::every] = np.uint64(MAX)
        self.state = 0

    def random_raw(self, size: int | None = None):
        start = self.state
        if size is None:
            self.state += 1
            return int(self.words[start])
        self.state += size
        return self.words[start:start + size].copy()


def streams(seed: int, every: int) -> tuple[RandomStream, RandomStream]:
    pair = []
    for _ in range(2):
        stream = RandomStream(seed)
        if every >= 0:
            stream._bits = RejectingBits(seed, every)
        pair.append(stream)
    return pair[0], pair[1]


sizes_lists = st.lists(st.integers(0, 40), min_size=1, max_size=6)
rejections = st.sampled_from([-1, 0, 3, 17, 500])   # -1: PCG64 itself; 0: no rejected word


@settings(max_examples=200, deadline=None)
@given(sizes_lists, st.integers(1, 4), st.integers(0, 2**32), rejections)
def test_shuffle_is_the_step_by_step_shuffle(sizes, batch, seed, every) -> None:
    fast, slow = streams(seed, every)
    assert np.array_equal(randomise.shuffle_within_strata(sizes, batch, fast),
                          old_shuffle_within_strata(sizes, batch, slow))
    assert fast.words(5).tolist() == slow.words(5).tolist()   # the same words used


@settings(max_examples=200, deadline=None)
@given(sizes_lists.filter(lambda s: sum(s) > 0), st.lists(st.integers(1, 4), min_size=2,
                                                           max_size=4),
       st.integers(1, 3), st.integers(0, 2**32), rejections)
def test_draw_is_the_old_draw(sizes, ratios, batch, seed, every) -> None:
    fast, slow = streams(seed, every)
    design = StratifiedDesign(sizes, ratios)
    assert np.array_equal(design.draw(batch, fast), old_draw(design, batch, slow))


def test_small_blocks_split_a_run_of_steps(monkeypatch) -> None:
    monkeypatch.setattr(randomise, "_BLOCK_WORDS", 7)
    for every in (-1, 5):
        fast, slow = streams(11, every)
        assert np.array_equal(randomise.shuffle_within_strata([30, 3, 12], 2, fast),
                              old_shuffle_within_strata([30, 3, 12], 2, slow))


def test_a_large_stratum_is_shuffled_as_before() -> None:
    fast, slow = RandomStream(7), RandomStream(7)
    design = StratifiedDesign([5000, 3001, 1, 0, 2], [2, 1])
    assert np.array_equal(design.draw(1, fast), old_draw(design, 1, slow))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.booleans(), max_size=30))
def test_assignment_column_is_the_one_np_where_gave(fixed: list[bool]) -> None:
    import pandas as pd

    from evalkit.allocation.allocate import assignment_column

    is_fixed = np.array(fixed, dtype=bool)
    old, new = pd.DataFrame(index=range(len(fixed))), pd.DataFrame(index=range(len(fixed)))
    old["assignment"] = np.where(is_fixed, "fixed", "random")
    new["assignment"] = assignment_column(is_fixed)
    pd.testing.assert_frame_equal(new, old)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(["A1", "a1", "B", "b", "", " B", "\xa0", "ß", "SS"]),
                          st.text(max_size=3)), max_size=12), st.booleans())
def test_units_already_in_id_order_are_the_sorted_units(ids: list[str], presort: bool) -> None:
    import pandas as pd

    ids = sorted(ids) if presort else ids
    units = pd.DataFrame({"unit_id": pd.Series(ids, dtype=object), "n": range(len(ids))},
                         index=range(5, 5 + len(ids)))
    if units["unit_id"].is_monotonic_increasing:
        pd.testing.assert_frame_equal(
            units.reset_index(drop=True),
            units.sort_values("unit_id", kind="stable").reset_index(drop=True))
