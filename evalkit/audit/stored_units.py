"""The stored units' digest (the manifest's `units_sha256`), computed from the seal read.

`verify` reads every sealed cell once to check the seal. The units table's digest over the
manifest's columns (`evalkit.allocation.assign.units_digest`) can be computed from those very
chunks, instead of reading the units again through pandas (at 1,000,000 staff that second read
was 4 s). The digest hashes a column whole before the next, so every column but the first is
kept as bytes until the read ends (about 50 bytes a unit).

Only cells whose pandas reading is certain are hashed here: a column of texts alone (read as
text; hashed joined by NUL) or of numbers alone (read as numbers; hashed as float64), with the
unit IDs in order. Anything else (a missing value, a blob, a column mixing texts and numbers,
IDs out of order) gives None, and `verify` reads the units the usual way.
"""

from __future__ import annotations

import hashlib
import operator
from typing import Any

import numpy as np

_TEXT, _NUMBER = "text", "number"


class StoredUnitsDigest:
    """Fed the units table's chunks in rowid order (see `evalkit.register.ColumnTap`);
    `hexdigest()` is `units_digest(stored units, columns)`, or None when unsure."""

    def __init__(self, columns: list[str]) -> None:
        self.columns = list(columns)
        self._digest = hashlib.sha256()
        self._kinds: dict[str, str] = {}
        self._later: dict[str, list[bytes]] = {column: [] for column in self.columns[1:]}
        self._last_id: str | None = None
        self._hashed: set[str] = set()
        self._usable = bool(self.columns) and self.columns[0] == "unit_id"
        if self._usable:
            self._digest.update(b"unit_id\x01")

    def feed(self, chunk: dict[str, tuple[list[Any], set[type]]]) -> None:
        """Take one chunk of rows: column name -> (its values, the set of their types)."""
        if not self._usable or "unit_id" not in chunk or not chunk["unit_id"][0]:
            return
        if not set(self.columns) <= chunk.keys() or not self._ids_in_order(*chunk["unit_id"]):
            self._usable = False
            return
        for column in self.columns:
            encoded = self._encoded(column, *chunk[column])
            if encoded is None:
                self._usable = False
                return
            if column == "unit_id":
                self._digest.update(encoded)
            else:
                self._later[column].append(encoded)

    def hexdigest(self) -> str | None:
        """The digest, once every chunk was fed; None if any cell was not certain."""
        if not self._usable or self._last_id is None:
            return None
        digest = self._digest.copy()
        for column, parts in self._later.items():
            digest.update(column.encode() + b"\x01")
            for part in parts:
                digest.update(part)
        return digest.hexdigest()

    def _ids_in_order(self, ids: list[Any], kinds: set[type]) -> bool:
        """True while the IDs seen so far are texts in ascending order (pandas' is_monotonic
        order for texts), as `units_digest` needs to hash them unsorted."""
        if kinds != {str}:
            return False
        if self._last_id is not None and ids[0] < self._last_id:
            return False
        if not all(map(operator.le, ids, ids[1:])):
            return False
        self._last_id = ids[-1]
        return True

    def _encoded(self, column: str, values: list[Any], kinds: set[type]) -> bytes | None:
        """A chunk's bytes as `columns_digest` hashes them, or None when not certain."""
        kind = _TEXT if kinds == {str} else _NUMBER if kinds and kinds <= {int, float} \
            else None
        if kind is None or self._kinds.setdefault(column, kind) != kind:
            return None
        if kind == _NUMBER:
            return np.array(values, dtype="<f8").tobytes()
        joined = "\x00".join(values).encode()
        return joined if self._first_chunk(column) else b"\x00" + joined

    def _first_chunk(self, column: str) -> bool:
        """True the first time a column is hashed (its first chunk needs no separator)."""
        first = column not in self._hashed
        self._hashed.add(column)
        return first
