"""The joiner-sequence check of `verify`, done with the integrity checks (in the worker).

Recomputing every slot's commitment from the key (250,000 slots at 1,000,000 staff: about 2 s)
needs only the design, the key and the units per stratum, not the recomputed allocation. So
the integrity side (a forked worker, for large runs) does it with the stratum sizes of the
stored allocation, while this process recomputes the allocation. The answer is used only when
it was computed from the same design, the same key and the same stratum sizes as the
recomputation has; otherwise `verify` checks the sequence again the usual way, so the report is
the same either way.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from evalkit.allocation.joiner_sequence import KEY_META, SEQUENCE_TABLE, stratum_sizes
from evalkit.allocation.keys import key_fingerprint, read_key
from evalkit.audit.replay import sequence_differences
from evalkit.errors import EvalkitError
from evalkit.register import Register, StoredColumn
from evalkit.trial.design import TrialDesign, load_design


@dataclass(frozen=True)
class SequenceCheck:
    """The sequence's differences, and what they were computed from."""

    design_digest: str
    key_fingerprint: str
    sizes: dict[str, int]
    differences: list[str]


class StoredStratumSizes:
    """Units per stratum of the stored allocation, counted from the seal's read of it (see
    `evalkit.register.ColumnTap`); `sizes()` is None when a stratum cell is not a plain text
    or number (then they are read again and counted by `stratum_sizes`)."""

    def __init__(self, strata: list[str]) -> None:
        self.strata = list(strata)
        self._counts: Counter[tuple] = Counter()
        self._usable = True

    def feed(self, chunk: dict[str, StoredColumn]) -> None:
        """Take one window of rows: column name -> its cells (see `StoredColumn`)."""
        if not self._usable or not self.strata:
            return
        if not set(self.strata) <= chunk.keys() or \
                not all(chunk[c].kinds() <= {str, int, float} for c in self.strata):
            self._usable = False
            return
        self._counts.update(zip(*(chunk[c].python_values() for c in self.strata),
                                strict=True))

    def sizes(self) -> dict[str, int] | None:
        """Stratum key (as `stratum_keys` writes it) -> units; None when unsure."""
        if not self._usable or not self.strata or not self._counts:
            return None
        return {" | ".join(map(str, values)): count for values, count in self._counts.items()}


def check_sequence_beside(register: Register, design_path: Path, key_file: Path | None,
                          sizes: dict[str, int] | None = None) -> SequenceCheck | None:
    """The sequence check from the stored allocation's stratum `sizes` (counted here when not
    given), or None when there is nothing to check here or anything is amiss (the
    recomputation side then checks it itself)."""
    if key_file is None or not register.has_table(SEQUENCE_TABLE):
        return None
    try:
        design = load_design(design_path)
        key = read_key(key_file)
        recorded = (register.meta(KEY_META) or {}).get("fingerprint")
        if design.trial.unit != "staff" or recorded != key_fingerprint(key):
            return None
        if sizes is None:
            sizes = stratum_sizes(design, register.table("allocation", design.trial.strata
                                                         or ["unit_id"]))
        return SequenceCheck(design.digest(), key_fingerprint(key), sizes,
                             sequence_differences(register, design, None, key, sizes))
    except (EvalkitError, OSError, KeyError, ValueError):
        return None


def sequence_report(register: Register, design: TrialDesign, allocation: pd.DataFrame,
                    key: bytes | None, beside: SequenceCheck | None) -> list[str]:
    """The sequence's differences for the report: the check done beside when it was made
    from this design, key and stratum sizes, else computed here."""
    if design.trial.unit != "staff" or key is None:
        return []
    if beside is not None and beside.design_digest == design.digest() \
            and beside.key_fingerprint == key_fingerprint(key) \
            and beside.sizes == stratum_sizes(design, allocation):
        return beside.differences
    return sequence_differences(register, design, allocation, key)
