"""Stratum keys from integer codes: the same keys, order and errors as joining the text."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from evalkit.allocation.allocate import stratum_codes, stratum_keys
from evalkit.allocation.randomise import RandomStream
from evalkit.errors import InputError


def _joined_text(units: pd.DataFrame, strata: list[str]) -> pd.Series:
    keys = units[strata[0]].astype(str)
    for column in strata[1:]:
        keys = keys + " | " + units[column].astype(str)
    return keys


def test_codes_rank_the_joined_text_keys() -> None:
    rng = np.random.default_rng(5)
    regions = np.array(["A", "A B", "a", "Z|", "1"], dtype=object)
    units = pd.DataFrame({"unit_id": [f"U{i:03d}" for i in range(300)],
                          "region": regions[rng.integers(0, 5, 300)],
                          "size": rng.integers(0, 3, 300),      # numbers become their text
                          "pdu": rng.choice(["x", "y | z", "x y"], 300)})
    strata = ["region", "size", "pdu"]
    codes, keys = stratum_codes(units, strata)
    expected = _joined_text(units, strata)
    assert keys == sorted(set(expected))
    assert (np.array(keys, dtype=object)[codes] == expected.to_numpy()).all()
    assert stratum_keys(units, strata).equals(expected)


def test_no_strata_is_one_blank_key_and_blanks_are_errors() -> None:
    units = pd.DataFrame({"unit_id": ["U1", "U2", "U3"], "region": ["North", " ", "South"]})
    codes, keys = stratum_codes(units, [])
    assert keys == [""] and codes.tolist() == [0, 0, 0]
    with pytest.raises(InputError, match="'U2' has a blank stratum value"):
        stratum_codes(units, ["region"])



def _word_by_word(stream, bound: int) -> int:
    """The rejection rule on the public word stream, as `below` applies it."""
    highest_accepted = 2**64 - 1 - 2**64 % bound
    while True:
        word = int(stream.words(1)[0])
        if word <= highest_accepted:
            return word % bound


def test_one_number_at_a_time_uses_the_stream_word_by_word() -> None:
    fast, reference = RandomStream(9, purpose=2), RandomStream(9, purpose=2)
    bounds = [2, 3, 7, 2**63 + 5, 1000] * 200          # 2**63 + 5 rejects about half the words
    drawn, expected = [], []
    for index, bound in enumerate(bounds):
        if index % 97 == 0:                               # coins prefetch words into a buffer
            assert fast.coin(Fraction(1, 3)) == reference.coin(Fraction(1, 3))
        drawn.append(int(fast.below(bound, 1)[0]))
        expected.append(_word_by_word(reference, bound))
    assert drawn == expected
    assert fast.words(5).tolist() == reference.words(5).tolist()
