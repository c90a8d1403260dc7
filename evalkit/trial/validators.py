"""Small checks shared by the design sections (raise ValueError for pydantic to report)."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def require_unique_names(names: list[str], what: str) -> None:
    """Fail naming the repeated names, e.g. two arms called 'Control'."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{what} names must be unique; repeated: {repeated}")


def require_exactly_one(flagged: list[str], what: str, flag: str) -> None:
    """Fail unless exactly one item carries `flag = true`."""
    if len(flagged) != 1:
        raise ValueError(f"exactly one {what} must have {flag} = true; found {flagged or 'none'}")


def require_one_line(value: str) -> str:
    """Names end up in file headers, calendars and pages: no line breaks or control characters."""
    if _CONTROL.search(value):
        raise ValueError(f"{value!r} contains a line break or control character; write it on "
                         "one line")
    if not value.strip():
        raise ValueError("must not be blank")
    return value
