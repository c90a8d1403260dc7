"""Reading rosters (CSV or XLSX) and writing outputs atomically and safely for Excel."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit.errors import InputError

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_STARTS = frozenset(FORMULA_PREFIXES)


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV (UTF-8, with or without BOM) or XLSX file as text columns, blanks as ''."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", file=path)
    suffix = path.suffix.lower()
    if suffix in {".xlsx", ".xlsm"}:
        frame = pd.read_excel(path, dtype=str, keep_default_na=False, engine="openpyxl")
    elif suffix in {".csv", ".txt", ""}:
        frame = _read_csv_text(path)
    else:
        raise InputError(f"unsupported file type {suffix!r}; expected .csv or .xlsx", file=path)
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.apply(lambda col: col.astype(str).str.strip()).astype(object)


def _read_csv_text(path: Path) -> pd.DataFrame:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise InputError(
            f"not valid UTF-8 (byte {error.start}, line {line}); save the file as "
            "'CSV UTF-8' in Excel, or provide an .xlsx file",
            file=path,
        ) from None
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except pd.errors.ParserError as error:
        raise InputError(f"cannot parse CSV: {error}", file=path) from None
    except pd.errors.EmptyDataError:
        raise InputError("file is empty", file=path) from None


def excel_safe(value: object) -> object:
    """Prefix text that Excel would run as a formula with an apostrophe (OWASP CSV injection)."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def excel_safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Escape every text cell of a frame for CSV output (vectorised per column).

    A text column is scanned as one joined string first (C speed); only a column where some
    cell may start like a formula is checked cell by cell. The frame is copied only then.
    """
    escaped: dict[object, pd.Series] = {}
    for column in frame.columns:
        values = frame[column]
        if values.dtype == object or pd.api.types.is_string_dtype(values):
            cells = values.tolist()
            if not _may_start_formula(cells):
                continue
            risky = [i for i, v in enumerate(cells) if type(v) is str and v[:1] in _FORMULA_STARTS]
            if risky:
                safe_cells = np.array(cells, dtype=object)
                safe_cells[risky] = ["'" + cells[i] for i in risky]
                escaped[column] = pd.Series(safe_cells, index=values.index, name=column)
    if not escaped:
        return frame
    safe = frame.copy()
    for column, values in escaped.items():
        safe[column] = values
    return safe


def _may_start_formula(cells: list[object]) -> bool:
    """False only when no cell can start with a formula prefix (all text, none at a line start)."""
    if not cells:
        return False
    try:
        text = "\n".join(cells)
    except TypeError:   # not all text (NaN, numbers): let the per-cell check decide
        return True
    return text.startswith(FORMULA_PREFIXES) or any(
        "\n" + prefix in text for prefix in FORMULA_PREFIXES)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success rename it over `target`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(handle)
    temp = Path(temp_name)
    try:
        yield temp
        os.chmod(temp, 0o666 & ~_current_umask())   # mkstemp makes 0600; match a normal file
        os.replace(temp, target)
    finally:
        if temp.exists():
            temp.unlink()


def write_text(target: Path, text: str) -> Path:
    """Write text atomically (UTF-8)."""
    with atomic_path(target) as temp:
        temp.write_text(text, encoding="utf-8")
    return Path(target)


def write_csv(target: Path, frame: pd.DataFrame) -> Path:
    """Write a frame as UTF-8 CSV, formula-like text escaped, atomically."""
    with atomic_path(target) as temp:
        excel_safe_frame(frame).to_csv(temp, index=False, encoding="utf-8")
    return Path(target)


def write_folder(target: Path, contents: Mapping[str, bytes | str]) -> Path:
    """Replace a folder of generated files as a whole: written beside it, then swapped in."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    old = target.with_name(f".{target.name}.old")
    try:
        for name, data in contents.items():
            raw = data.encode("utf-8") if isinstance(data, str) else data
            (staging / name).write_bytes(raw)
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return target
