"""Stratum keys from integer codes: the same keys, order and errors as joining the text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evalkit.allocation.allocate import stratum_codes, stratum_keys
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
