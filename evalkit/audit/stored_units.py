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

from evalkit.register import StoredColumn

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

    def feed(self, chunk: dict[str, StoredColumn]) -> None:
        """Take one window of rows: column name -> its cells (see `StoredColumn`)."""
        if not self._usable or "unit_id" not in chunk or not chunk["unit_id"].rows:
            return
        if not set(self.columns) <= chunk.keys() or not self._ids_in_order(chunk["unit_id"]):
            self._usable = False
            return
        for column in self.columns:
            encoded = self._encoded(column, chunk[column])
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

    def _ids_in_order(self, ids: StoredColumn) -> bool:
        """True while the IDs seen so far are texts in ascending order (pandas' is_monotonic
        order for texts), as `units_digest` needs to hash them unsorted. UTF-8 bytes sort as
        their characters do, so joined IDs are compared as bytes."""
        if ids.kinds() != {str}:
            return False
        values: list[Any] = ids.texts.split(b"\x1f") if ids.texts is not None \
            else list(ids.values or [])
        first = values[0] if ids.texts is None else values[0].decode("utf-8")
        if self._last_id is not None and first < self._last_id:
            return False
        if not all(map(operator.le, values, values[1:])):
            return False
        self._last_id = values[-1] if ids.texts is None else values[-1].decode("utf-8")
        return True

    def _encoded(self, column: str, cells: StoredColumn) -> bytes | None:
        """A window's bytes as `columns_digest` hashes them, or None when not certain."""
        kinds = cells.kinds()
        kind = _TEXT if kinds == {str} else _NUMBER if kinds and kinds <= {int, float} \
            else None
        if kind is None or self._kinds.setdefault(column, kind) != kind:
            return None
        if kind == _NUMBER:
            values = cells.integers if cells.integers is not None else cells.values
            return np.asarray(values, dtype="<f8").tobytes()
        joined = cells.texts.replace(b"\x1f", b"\x00") if cells.texts is not None \
            else "\x00".join(cells.values or []).encode()
        return joined if self._first_chunk(column) else b"\x00" + joined

    def _first_chunk(self, column: str) -> bool:
        """True the first time a column is hashed (its first chunk needs no separator)."""
        first = column not in self._hashed
        self._hashed.add(column)
        return first
