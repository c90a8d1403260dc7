"""Exact stratified complete randomisation with nationally coordinated leftovers.

The algorithm, in order (and so the order in which random words are used):

1. Each stratum s with n_s randomised units gets floor(n_s * r_a / R) units of each arm a.
   The fractional parts f[s, a] (each row sums to a whole number, the stratum's leftovers)
   are rounded to 0/1 by bipartite *dependent rounding* (Gandhi, Khuller, Parthasarathy and
   Srinivasan, J. ACM 53(3), 2006) on the strata x arms graph: every cell is rounded up with
   probability exactly f[s, a], every stratum keeps exactly its leftovers, and every arm's
   national total lands on the floor or ceiling of its target. randomizr's sequential
   leftover draw does not give exact marginals with unequal weights; this does.
2. Within each stratum (units sorted by ID) a Fisher-Yates shuffle, vectorised over strata and
   over a batch of candidate allocations, deals the slots out. A unit's marginal probability of
   arm a is E[count] / n_s = r_a / R exactly.

Randomness is PCG64's raw 64-bit output (a stream numpy fixes by specification), turned into
coins and bounded integers by exact integer rejection here, never by numpy's Generator
methods, whose streams may change between numpy versions.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np

ALGORITHM_VERSION = "evalkit-stratified-complete/1"
BATCH_SIZE = 1000  # candidates generated per batch when re-randomising (part of the algorithm)
_MAX_WORD = np.uint64(2**64 - 1)
_TWO_64 = 2**64


class RandomStream:
    """Uniform 64-bit words from PCG64 seeded by (seed, purpose); exact sampling on top."""

    def __init__(self, seed: int, purpose: int = 0) -> None:
        sequence = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(purpose),))
        self._bits = np.random.PCG64(sequence)
        self._buffer: list[int] = []   # words prefetched for coins, in stream order
        self._next = 0

    def words(self, count: int) -> np.ndarray:
        """The next `count` raw uint64 words of the stream."""
        taken = self._buffer[self._next:self._next + count]
        self._next += len(taken)
        fresh = np.asarray(self._bits.random_raw(count - len(taken)), dtype=np.uint64)
        if not taken:
            return fresh.reshape(count)
        return np.concatenate([np.array(taken, dtype=np.uint64), fresh])

    def snapshot(self) -> tuple | None:
        """The stream's place, for `rewind`; None for a stream whose words come from elsewhere
        (a subclass with its own `words`), which cannot be rewound."""
        if type(self).words is not RandomStream.words or not hasattr(self, "_bits"):
            return None
        return self._bits.state, self._buffer, self._next   # the buffer is replaced, not changed

    def rewind(self, place: tuple) -> None:
        """Back to a place `snapshot` gave: the same words are drawn again."""
        self._bits.state, self._buffer, self._next = place

    def coin(self, probability: Fraction) -> bool:
        """True with probability exactly `probability` (to 2**-64 resolution)."""
        if self._next >= len(self._buffer):
            self._buffer = self._bits.random_raw(256).tolist()
            self._next = 0
        word = self._buffer[self._next]
        self._next += 1
        return word * probability.denominator < probability.numerator * _TWO_64

    def below(self, bound: int, count: int) -> np.ndarray:
        """`count` independent uniform integers in [0, bound), unbiased by rejection."""
        if count == 1:   # one number at a time (the joiner sequence): plain integers
            return np.array([self.below_one(int(bound))], dtype=np.int64)
        bound_u = np.uint64(bound)
        remainder = (_MAX_WORD % bound_u + np.uint64(1)) % bound_u   # 2**64 mod bound
        highest_accepted = _MAX_WORD - remainder
        out = self.words(count)
        rejected = np.flatnonzero(out > highest_accepted)
        while rejected.size:
            out[rejected] = self.words(rejected.size)
            rejected = rejected[out[rejected] > highest_accepted]
        return (out % bound_u).astype(np.int64)


    def below_one(self, bound: int) -> int:
        """One uniform integer in [0, bound) from the same words `below` would use (a plain
        int: no array per call, for loops that draw one number at a time)."""
        highest_accepted = _TWO_64 - 1 - _TWO_64 % bound
        while True:
            if self._next < len(self._buffer):
                word = self._buffer[self._next]
                self._next += 1
            else:
                word = int(self._bits.random_raw())
            if word <= highest_accepted:
                return word % bound


class _Node:
    """One state of the rounding walk; children are built on first visit and kept."""

    __slots__ = ("state", "p_up", "_up", "_down", "result", "_rounder", "_edges")

    def __init__(self, state: tuple[Fraction, ...], rounder: LeftoverRounder) -> None:
        self.state, self._rounder = state, rounder
        self._up = self._down = None
        self.p_up: Fraction | None = None
        self.result: np.ndarray | None = None
        edges = rounder._cycle_or_maximal_path(state)
        if edges:
            self._edges = edges
        else:
            self.result = np.array([int(v) for v in state], dtype=np.int64).reshape(
                rounder.n_strata, rounder.n_arms
            )

    def child(self, up: bool) -> _Node:
        """The state after moving along the cycle/path up (or down)."""
        if self._up is None:
            self._split()
        return self._up if up else self._down

    def _split(self) -> None:
        edges, state = self._edges, self.state
        first, second = edges[0::2], edges[1::2]
        alpha = min([1 - state[e] for e in first] + [state[e] for e in second])
        beta = min([state[e] for e in first] + [1 - state[e] for e in second])
        up, down = list(state), list(state)
        for edge in first:
            up[edge] += alpha
            down[edge] -= beta
        for edge in second:
            up[edge] -= alpha
            down[edge] += beta
        self._up, self._down = _Node(tuple(up), self._rounder), _Node(tuple(down), self._rounder)
        self.p_up = beta / (alpha + beta)



class LeftoverRounder:
    """Dependent rounding of a strata x arms matrix of fractions (rows sum to integers).

    The walk's states are kept as a tree, so drawing many allocations of one design is cheap.
    """

    def __init__(self, fractions: Sequence[Sequence[Fraction]]) -> None:
        self.n_strata = len(fractions)
        self.n_arms = len(fractions[0]) if fractions else 0
        self.root = _Node(tuple(Fraction(v) for row in fractions for v in row), self)

    def draw(self, stream: RandomStream) -> np.ndarray:
        """One rounded 0/1 matrix (strata x arms)."""
        node = self.root
        while node.result is None:
            up = node.child(True)  # ensure p_up is known
            node = up if stream.coin(node.p_up) else node.child(False)
        return node.result

    def _cycle_or_maximal_path(self, state: tuple[Fraction, ...]) -> list[int]:
        """Edges (cell indices) of a cycle, or of a path between two degree-1 vertices."""
        adjacency: dict[tuple[str, int], list[int]] = {}
        for cell, value in enumerate(state):
            if 0 < value < 1:
                stratum, arm = divmod(cell, self.n_arms)
                adjacency.setdefault(("s", stratum), []).append(cell)
                adjacency.setdefault(("a", arm), []).append(cell)
        if not adjacency:
            return []
        ends = [v for v, cells in adjacency.items() if len(cells) == 1]
        vertex = min(ends) if ends else min(adjacency)
        path_vertices, path_edges, previous = [vertex], [], None
        while True:
            onward = [c for c in adjacency[vertex] if c != previous]
            if not onward:
                return path_edges
            previous = onward[0]
            vertex = self._other_end(vertex, previous)
            path_edges.append(previous)
            if vertex in path_vertices:
                return path_edges[path_vertices.index(vertex):]
            path_vertices.append(vertex)

    def _other_end(self, vertex: tuple[str, int], cell: int) -> tuple[str, int]:
        stratum, arm = divmod(cell, self.n_arms)
        return ("a", arm) if vertex[0] == "s" else ("s", stratum)


def split_counts(stratum_sizes: Sequence[int], ratios: Sequence[int]) -> tuple[np.ndarray, list]:
    """Whole-number part of each stratum's arm targets, and the fractional leftovers."""
    total = sum(ratios)
    base = np.array([[n * r // total for r in ratios] for n in stratum_sizes], dtype=np.int64)
    leftovers = [[Fraction(n * r % total, total) for r in ratios] for n in stratum_sizes]
    return base, leftovers


def shuffle_within_strata(
    stratum_sizes: Sequence[int], batch: int, stream: RandomStream
) -> np.ndarray:
    """A uniform random permutation of every stratum's positions, for `batch` candidates.

    Returns a (batch x N) array; columns are strata laid end to end, each holding a
    permutation of its own local positions 0..n_s-1. Fisher-Yates from the last position down,
    one step across all strata and candidates at a time.
    """
    sizes = np.asarray(stratum_sizes, dtype=np.int64)
    local = np.concatenate([np.arange(n, dtype=np.int64) for n in sizes]) if len(sizes) else \
        np.zeros(0, dtype=np.int64)
    perm = np.tile(local, (batch, 1))
    rows = np.arange(batch)[:, None]
    for active, positions in _steps_with_the_same_strata(sizes):
        steps_a_block = max(_BLOCK_WORDS // (batch * active.size), 1)
        for first in range(0, len(positions), steps_a_block):
            block = positions[first:first + steps_a_block]
            offsets = _block_offsets(block, batch, active.size, stream)
            for step, position in enumerate(block.tolist()):
                here = active + position
                there = active + (offsets[step] if offsets is not None else stream.below(
                    position + 1, batch * active.size).reshape(batch, active.size))
                held = perm[rows, here].copy()
                perm[rows, here] = perm[rows, there]
                perm[rows, there] = held
    return perm


_BLOCK_WORDS = 1 << 20   # offsets drawn at once (8 MB), checked together for rejections


def _steps_with_the_same_strata(sizes: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The Fisher-Yates positions from the largest stratum's last down to 1, in runs that
    move the same strata (those larger than the position): (their starts, the positions)."""
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    edges = sorted({int(n) - 1 for n in sizes if n > 1} | {0}, reverse=True)
    return [(starts[sizes > high], np.arange(high, low, -1, dtype=np.int64))
            for high, low in zip(edges, edges[1:], strict=False)]


def _block_offsets(positions: np.ndarray, batch: int, width: int,
                   stream: RandomStream) -> np.ndarray | None:
    """Each step's `stream.below(position + 1, batch * width)`, drawn for all the steps at
    once: the same words when none is rejected (a word is, for bound b, with probability
    below b / 2**64). Else None, the stream rewound (or one that cannot be): step by step."""
    place = stream.snapshot()
    if place is None:
        return None
    bounds = (positions + 1).astype(np.uint64)[:, None]
    words = stream.words(len(positions) * batch * width).reshape(len(positions), -1)
    highest_accepted = _MAX_WORD - (_MAX_WORD % bounds + np.uint64(1)) % bounds
    if (words > highest_accepted).any():
        stream.rewind(place)
        return None
    return (words % bounds).astype(np.int64).reshape(len(positions), batch, width)


def _slot_arms(counts: np.ndarray, sizes: list[int], stratum_of: np.ndarray,
               local_slot: np.ndarray) -> np.ndarray:
    """(batch x N) the arm of each stratum's slots: the first counts[s, 0] slots arm 0, the
    next arm 1, ...; one repeat when every stratum's counts add up to its size (they do),
    else the number of arm boundaries at or below each slot."""
    batch, strata, arms = counts.shape
    if np.array_equal(counts.sum(axis=2), np.broadcast_to(sizes, (batch, strata))):
        labels = np.tile(np.arange(arms, dtype=np.int8), batch * strata)
        return np.repeat(labels, counts.ravel()).reshape(batch, len(stratum_of))
    slot_ends = np.cumsum(counts, axis=2)[:, stratum_of, :]          # batch x N x A
    return (local_slot[None, :, None] >= slot_ends).sum(axis=2).astype(np.int8)


class StratifiedDesign:
    """Draws complete allocations of units already sorted by (stratum, unit ID)."""

    def __init__(self, stratum_sizes: Sequence[int], ratios: Sequence[int]) -> None:
        if any(r < 0 for r in ratios) or sum(ratios) == 0:
            raise ValueError("ratios must be non-negative and not all zero")
        self.sizes = [int(n) for n in stratum_sizes]
        self.ratios = [int(r) for r in ratios]
        self.base, leftovers = split_counts(self.sizes, self.ratios)
        self.rounder = LeftoverRounder(leftovers)
        self.starts = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)

    @property
    def n_units(self) -> int:
        """Randomised units across all strata."""
        return int(sum(self.sizes))

    def draw(self, batch: int, stream: RandomStream) -> np.ndarray:
        """(batch x N) arm indices; rows are independent allocations."""
        counts = np.stack([self.base + self.rounder.draw(stream) for _ in range(batch)])
        perm = shuffle_within_strata(self.sizes, batch, stream)
        stratum_of = np.repeat(np.arange(len(self.sizes)), self.sizes)
        local_slot = perm.dtype.type(0) + np.arange(self.n_units) - self.starts[stratum_of]
        slot_arm = _slot_arms(counts, self.sizes, stratum_of, local_slot)
        arms = np.empty((batch, self.n_units), dtype=np.int8)
        np.put_along_axis(arms, self.starts[stratum_of][None, :] + perm, slot_arm, axis=1)
        return arms

    def exact_probabilities(self) -> np.ndarray:
        """Each arm's marginal probability (identical for every unit): r_a / R."""
        total = sum(self.ratios)
        return np.array([r / total for r in self.ratios])
