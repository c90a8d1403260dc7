"""Multiplicity adjustment across a family of confirmatory tests."""

from __future__ import annotations

import math
from collections.abc import Mapping


def holm_adjust(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm (1979) step-down adjusted p-values, keyed like the input (controls the FWER).

    Sorted ascending, the k-th smallest of m p-values becomes max over j <= k of
    min(1, (m - j + 1) * p_(j)); rejecting adjusted p <= alpha is Holm's procedure.
    """
    for name, p in p_values.items():
        if not (isinstance(p, int | float) and math.isfinite(p) and 0 <= p <= 1):
            raise ValueError(f"p-value for {name!r} must be a number in [0, 1], got {p!r}")
    ordered = sorted(p_values, key=lambda name: p_values[name])
    m = len(ordered)
    adjusted: dict[str, float] = {}
    running = 0.0
    for rank, name in enumerate(ordered):
        running = max(running, min(1.0, (m - rank) * float(p_values[name])))
        adjusted[name] = running
    return {name: adjusted[name] for name in p_values}
