"""Errors that carry enough context (file, row, column, nearest valid value) to act on."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path


class EvalkitError(Exception):
    """Base class: a problem the user can fix; the CLI prints it and exits with `exit_code`."""

    exit_code = 2


class ConfigError(EvalkitError):
    """The trial design file is malformed or names something impossible."""


class InputError(EvalkitError):
    """A roster or data file has a bad value; names the file, row and column."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.file, self.row, self.column, self.detail = file, row, column, message
        where = []
        if file is not None:
            where.append(str(file))
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class SealedError(EvalkitError):
    """An operation would overwrite or alter a sealed allocation."""


class CheckFailed(EvalkitError):
    """A check ran and failed (verify mismatch, lookup not found): exit code 1."""

    exit_code = 1


def _normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def _similarity(query: str, candidate: str) -> float:
    """Best of whole-string, prefix and per-word similarity, so typos in one word still match."""
    q, c = _normalise(query), _normalise(candidate)
    if not q or not c:
        return 0.0
    scores = [difflib.SequenceMatcher(None, q, c).ratio()]
    scores.append(difflib.SequenceMatcher(None, q, c[: len(q)]).ratio())
    scores.extend(difflib.SequenceMatcher(None, q, word).ratio() for word in c.split())
    return max(scores)


def closest_matches(
    query: str, candidates: Iterable[str], n: int = 3, cutoff: float = 0.6
) -> list[str]:
    """Candidates most like `query` (typos, case, punctuation), best first."""
    scored = sorted(
        ((s, c) for c in dict.fromkeys(candidates) if (s := _similarity(query, c)) >= cutoff),
        key=lambda pair: (-pair[0], pair[1]),
    )
    return [c for _, c in scored[:n]]


def suggestion(query: str, candidates: Iterable[str]) -> str:
    """A ' Did you mean ...?' suffix, or '' when nothing is close."""
    matches = closest_matches(query, candidates)
    if not matches:
        return ""
    return " Did you mean " + " or ".join(repr(m) for m in matches) + "?"
