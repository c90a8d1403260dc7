"""Reading rosters (CSV or XLSX) and writing outputs atomically and safely for Excel."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import io
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit.errors import InputError, suggestion

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_STARTS = frozenset(FORMULA_PREFIXES)


class InputNote(UserWarning):
    """How an input was read, worth telling the user (e.g. 'read as Windows-1252').

    Library code warns with it; the CLI prints each note. `read_table` also keeps them in
    `frame.attrs["notes"]`.
    """


DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NOT_CONTROL_BYTES = bytes(b for b in range(256) if not _CONTROL.match(chr(b)))
_SHEET_MARK = "#"


def source_file(path: Path | str) -> Path:
    """The file part of `roster.xlsx#Sheet` (a path without `#Sheet` is returned as is)."""
    return split_sheet(Path(path))[0]


def split_sheet(path: Path) -> tuple[Path, str | None]:
    """`roster.xlsx#Staff` -> (roster.xlsx, 'Staff'); any other path -> (path, None)."""
    name = path.name
    if _SHEET_MARK in name and not path.exists():
        stem, _, sheet = name.partition(_SHEET_MARK)
        if Path(stem).suffix.lower() in {".xlsx", ".xlsm"} and sheet:
            return path.with_name(stem), sheet
    return path, None


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (for `book.xlsx#Sheet`, of the workbook)."""
    digest = hashlib.sha256()
    with open(source_file(path), "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def column_key(name: str) -> str:
    """A header reduced to lower-case letters and digits: 'Staff ID' and 'staff_id' -> 'staffid'."""
    return re.sub(r"[^a-z0-9]+", "", str(name).lower())


def match_columns(frame: pd.DataFrame, wanted: Iterable[str], path: Path) -> pd.DataFrame:
    """Rename headers that mean a wanted column ignoring case, spaces and punctuation."""
    renames: dict[str, str] = {}
    for name in wanted:
        matches = [c for c in frame.columns if column_key(c) == column_key(name)]
        if len(matches) > 1:
            letters = " and ".join(f"{m!r} (column {column_letter(list(frame.columns).index(m))})"
                                   for m in matches)
            raise InputError(f"columns {letters} both mean {name!r}; delete or rename one",
                             file=path, row=1, column=matches[1])
        if matches and matches[0] != name:
            renames[matches[0]] = name
    return frame.rename(columns=renames) if renames else frame


def column_letter(position: int) -> str:
    """Spreadsheet column letter of a 0-based position: 0 -> A, 27 -> AB."""
    letters = ""
    position += 1
    while position:
        position, remainder = divmod(position - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def read_table(path: Path, sheet: str | None = None) -> pd.DataFrame:
    """Read a CSV or XLSX file as stripped text columns, blanks as ''.

    CSV: UTF-8 (with or without BOM) or Windows-1252; delimiter comma, semicolon or tab.
    XLSX: one sheet, or the one named by `sheet` or `book.xlsx#Sheet`. Fully blank rows are
    ignored; the index keeps each row's place, so spreadsheet row = index + 2.
    """
    path, named = split_sheet(Path(path))
    sheet = sheet or named
    _require_file(path)
    suffix = path.suffix.lower()
    notes: list[str] = []
    try:
        if suffix in {".xlsx", ".xlsm"}:
            frame = _frame_from_rows(*_read_xlsx(path, sheet), path)
        elif suffix in {".csv", ".txt", ".tsv", ""}:
            frame = _read_csv(path, notes)
        else:
            raise InputError(f"unsupported file type {suffix!r}; expected .csv or .xlsx",
                             file=path)
    except OSError as error:
        raise InputError(f"cannot read the file: {error.strerror or error}", file=path) from None
    frame.attrs["notes"] = notes
    for note in notes:
        warnings.warn(InputNote(f"{path}: {note}"), stacklevel=2)
    return frame


def _require_file(path: Path) -> None:
    if path.is_dir():
        raise InputError("is a folder, not a file; give the path of the CSV or XLSX file",
                         file=path)
    if not path.exists():
        raise InputError("file not found", file=path)


def _decode(raw: bytes, path: Path, notes: list[str]) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as utf8_error:
        try:
            text = raw.decode("cp1252")
        except UnicodeDecodeError:
            line = raw[: utf8_error.start].count(b"\n") + 1
            raise InputError(
                f"neither UTF-8 nor Windows-1252 (byte {utf8_error.start}, line {line}); save "
                "the file as 'CSV UTF-8' in Excel, or provide an .xlsx file", file=path,
            ) from None
        notes.append("read as Windows-1252 (not valid UTF-8); check accented names, or save "
                     "as 'CSV UTF-8' to be sure")
        return text


def _read_csv(path: Path, notes: list[str]) -> pd.DataFrame:
    text = _decode(path.read_bytes(), path, notes)
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise InputError("contains a NUL byte (not a text CSV file); export it again as CSV",
                         file=path, row=line)
    lines = text[:_SNIFF_CHARS].splitlines()
    first = next((line for line in lines if line.strip()), None)
    if first is None and not text[:_SNIFF_CHARS].isspace():
        first = next((line for line in text.splitlines() if line.strip()), None)
    if first is None:
        raise InputError("file is empty; expected a header row and data rows", file=path)
    delimiter = _sniff_delimiter(first, lines[:50], path)
    if delimiter != ",":
        notes.append(f"read as {DELIMITERS[delimiter]}-separated")
    fast = _plain_csv_frame(text, delimiter, path, quoted=True)
    if fast is not None:
        return fast
    try:
        records = list(csv.reader(io.StringIO(text), delimiter=delimiter, strict=True))
    except csv.Error as error:
        raise InputError(f"cannot parse CSV: {error}; check quotes (\") in that line",
                         file=path) from None
    while records and not any(cell.strip() for cell in records[0]):
        records.pop(0)
    if not records:
        raise InputError("file has no header row: every line is blank or only delimiters; "
                         "expected a header row and data rows", file=path)
    return _frame_from_rows(records[0], records[1:], path)


_SNIFF_CHARS = 1 << 16  # the delimiter is told from the first lines


def _plain_csv_frame(text: str, delimiter: str, path: Path,
                     quoted: bool = False) -> pd.DataFrame | None:
    """The frame `_frame_from_rows` makes, read by pandas' C parser, for the common file:
    no quote characters (with `quoted`, only quotes around whole one-line fields), no control
    characters, the header on the first line and no row longer than it. None for any other
    file, which the csv module reads (it gives the exact line of a problem)."""
    has_quotes = '"' in text
    if has_quotes and not (quoted and _quotes_wrap_whole_fields(text, delimiter)):
        return None
    if has_control_character(text) or not text.lstrip("\ufeff")[:1].strip():
        return None
    try:
        table = pd.read_csv(io.StringIO(text), sep=delimiter, header=None, dtype=object,
                            na_filter=False, skip_blank_lines=False, engine="c",
                            quoting=csv.QUOTE_MINIMAL if has_quotes else csv.QUOTE_NONE)
    except (pd.errors.ParserError, ValueError):
        return None
    cells = {position: _stripped(table[position]) for position in table.columns}
    header = [cells[position][0] for position in table.columns]
    if not any(header):
        return None
    while header and not header[-1] and not any(cells[len(header) - 1][1:]):
        header.pop()
    header = [h or f"Unnamed: {i}" for i, h in enumerate(header)]
    _require_unique_headers(header, path)
    frame = pd.DataFrame({name: cells[position][1:] for position, name in enumerate(header)},
                         dtype=object, columns=header)
    blank = ~np.logical_or.reduce([frame[c].to_numpy() != "" for c in header])
    if blank.all() and len(frame):
        return frame.iloc[:0].set_axis(pd.Index([], dtype=object))  # as the csv path gives
    return frame[~blank] if blank.any() else frame


def _quotes_wrap_whole_fields(text: str, delimiter: str) -> bool:
    """True when every quote opens a field, closes one or is doubled inside one, and no quoted
    field spans lines: the csv module and pandas' C parser then read the same cells (e.g.
    `"Kent, Surrey and Sussex"`). Split at quotes, the odd pieces are inside quotes."""
    pieces = text.split('"')
    if len(pieces) % 2 == 0:
        return False   # an odd number of quotes: one is never closed
    boundary = (delimiter, "\n", "\r")
    if (pieces[0] and not pieces[0].endswith(boundary)) or (
            pieces[-1] and not pieces[-1].startswith(boundary)):
        return False
    for between in pieces[2:-1:2]:   # empty: a doubled quote inside a field
        if between and not (between.startswith(boundary) and between.endswith(boundary)):
            return False
    return not any("\n" in inside or "\r" in inside for inside in pieces[1::2])


def has_control_character(text: str) -> bool:
    """Whether `_CONTROL` matches anywhere in the text, 5x faster than its search on a long
    text: control characters are single bytes in UTF-8 (every byte of a longer character is
    >= 0x80), so delete all other bytes, a megabyte at a time, and see if any is left."""
    return any(text[start:start + _CHUNK].encode("utf-8", "surrogatepass")
               .translate(None, _NOT_CONTROL_BYTES) for start in range(0, len(text), _CHUNK))


_CHUNK = 1 << 20


def _stripped(column: pd.Series | np.ndarray) -> np.ndarray:
    """A parsed column's cells as stripped text, missing cells (short rows) as ''. A column of
    few distinct texts (see `share_repeated_text`) is stripped once per distinct text, its
    cells sharing one object per text."""
    cells = column.to_numpy() if isinstance(column, pd.Series) else column
    if not mostly_repeated(cells[:1000].tolist()):
        if strip_changes_nothing(cells.tolist()):
            return cells
        return np.array([cell.strip() if isinstance(cell, str) else "" for cell in cells],
                        dtype=object)
    codes, uniques = pd.factorize(cells)   # a missing cell: code -1, the last text ('')
    return np.array([text.strip() for text in uniques] + [""], dtype=object)[codes]


ASCII_WHITESPACE = "".join(chr(code) for code in range(128) if chr(code).isspace())
_NOT_ASCII_WHITESPACE = bytes(b for b in range(256) if chr(b) not in ASCII_WHITESPACE)


def has_ascii_whitespace(text: str) -> bool:
    """Whether an ASCII text holds a character `str.isspace` calls whitespace (space, tab, line
    breaks, and \\x0b, \\x0c, \\x1c-\\x1f), by deleting every other byte: ~10x faster than `\\s`."""
    return bool(text.encode("ascii").translate(None, _NOT_ASCII_WHITESPACE))


def strip_changes_nothing(cells: list) -> bool:
    """True when every cell is ASCII text without whitespace at either end, so `str.strip`
    would return each as it is; told from the cells joined on NUL. False when unsure (a cell
    that is not text, holds a NUL or non-ASCII text): then strip cell by cell."""
    try:
        joined = "\x00".join(cells)
    except TypeError:
        return False   # a missing cell (a short row): it becomes ''
    if not joined.isascii() or joined.count("\x00") != len(cells) - 1:
        return False
    if not has_ascii_whitespace(joined):
        return True
    if joined[:1] in ASCII_WHITESPACE or joined[-1:] in ASCII_WHITESPACE:
        return not joined   # '' is in every string: an empty text needs no strip
    return not any(f"\x00{space}" in joined or f"{space}\x00" in joined
                   for space in ASCII_WHITESPACE)


def mostly_repeated(sample: list) -> bool:
    """True when at most half of a column's first cells are distinct: worth sharing."""
    return len(set(sample)) <= len(sample) // 2


def share_repeated_text(values: list) -> list:
    """The same values, equal texts sharing one object, for a column of few distinct texts
    (grades, PDU codes, regions, groups): a million cells then hold 8-byte references to a
    few strings instead of a million copies (about 55 MB less per column). A column whose
    first 1,000 cells are mostly distinct (IDs, names) is returned as it is."""
    if not mostly_repeated(values[:1000]):
        return values
    shared: dict = {}
    return [shared.setdefault(value, value) for value in values]


def _sniff_delimiter(header: str, sample: list[str], path: Path) -> str:
    """The one of , ; tab that splits the header; if several do, the one rows agree with."""
    counts = {d: _split(header, d) for d in DELIMITERS}
    present = [d for d, fields in counts.items() if len(fields) > 1]
    if len(present) <= 1:
        return present[0] if present else ","
    rows = [line for line in sample[1:] if line.strip()]
    consistent = [d for d in present if all(len(_split(r, d)) == len(counts[d]) for r in rows)]
    if len(consistent) == 1:
        return consistent[0]
    names = " and ".join(DELIMITERS[d] for d in present)
    raise InputError(f"cannot tell the delimiter: the header splits on both {names}; save "
                     "the file from Excel as 'CSV UTF-8 (Comma delimited)'", file=path, row=1)


def _split(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter))
    except (csv.Error, StopIteration):
        return [line]


def _frame_from_rows(header: list[str], rows: list[list[str]], path: Path) -> pd.DataFrame:
    """Check the header, square the rows, drop fully blank rows, check for control characters."""
    header = [str(h).strip() for h in header]
    while header and not header[-1] and all(len(r) < len(header) or not str(r[len(header) - 1])
                                            .strip() for r in rows):
        header.pop()
    header = [h or f"Unnamed: {i}" for i, h in enumerate(header)]
    _require_unique_headers(header, path)
    width = len(header)
    squared = []
    for number, row in enumerate(rows, start=2):
        if len(row) > width and any(str(c).strip() for c in row[width:]):
            raise InputError(f"has {len(row)} cells but the header has {width}; check for a "
                             "stray delimiter or an unquoted comma", file=path, row=number,
                             column=column_letter(width))
        squared.append([str(c).strip() for c in row[:width]] + [""] * max(0, width - len(row)))
    kept = [position for position, row in enumerate(squared) if any(row)]
    index = None if len(kept) == len(squared) else kept   # keep each row's place
    frame = pd.DataFrame([squared[p] for p in kept], columns=header, index=index, dtype=object)
    if has_control_character("\n".join("\t".join(row) for row in squared)):
        _reject_control_characters(frame, path)
    return frame


def _require_unique_headers(header: list[str], path: Path) -> None:
    seen: dict[str, int] = {}
    for position, name in enumerate(header):
        if _CONTROL.search(name):
            raise InputError(f"header {name!r} contains a control character; retype it",
                             file=path, row=1, column=column_letter(position))
        if name in seen:
            raise InputError(f"column {name!r} appears twice (columns "
                             f"{column_letter(seen[name])} and {column_letter(position)}); "
                             "delete or rename one", file=path, row=1, column=name)
        seen[name] = position


def _reject_control_characters(frame: pd.DataFrame, path: Path) -> None:
    for column in frame.columns:
        bad = frame[column].str.contains(_CONTROL)
        if bad.any():
            label = bad.idxmax()
            value = frame.at[label, column]
            raise InputError(f"contains a control character ({value!r}); remove it (it is "
                             "invisible in Excel: retype the cell)", file=path,
                             row=int(label) + 2, column=column)


_XLSX_HELP = ("open it in Excel and save it again as .xlsx (Excel Workbook), or export it "
              "as CSV UTF-8")


def _open_workbook(path: Path, values: bool):
    import openpyxl  # only XLSX inputs need it

    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=values)
    except OSError:
        raise
    except Exception:  # noqa: BLE001 - openpyxl raises many types for a damaged file
        raise InputError(f"not a readable .xlsx workbook (damaged, or another format renamed "
                         f"to .xlsx); {_XLSX_HELP}", file=path) from None


def _choose_sheet(book, path: Path, sheet: str | None):
    names = list(book.sheetnames)
    if sheet is not None:
        if sheet not in names:
            raise InputError(f"no sheet {sheet!r}; sheets: {', '.join(names)}."
                             + suggestion(sheet, names), file=path)
        return book[sheet]
    filled = [n for n in names if _has_cells(book[n])]
    if len(filled) > 1:
        raise InputError(f"the workbook has {len(filled)} sheets with data "
                         f"({', '.join(filled)}); say which to read as "
                         f"{path.name}#SHEET, e.g. {path.name}#{filled[0]}", file=path)
    return book[filled[0] if filled else names[0]]


def _has_cells(worksheet) -> bool:
    for row in worksheet.iter_rows(values_only=True):
        if any(v is not None and str(v).strip() for v in row):
            return True
    return False


def _read_xlsx(path: Path, sheet: str | None) -> tuple[list[str], list[list[str]]]:
    book = _open_workbook(path, values=False)
    try:
        worksheet = _choose_sheet(book, path, sheet)
        title = worksheet.title
        raw = [list(row) for row in worksheet.iter_rows(values_only=True)]
    finally:
        book.close()
    formulas = [(r, c) for r, row in enumerate(raw) for c, v in enumerate(row)
                if isinstance(v, str) and v.startswith("=")]
    if formulas:
        cached = _open_workbook(path, values=True)
        try:
            stored = [list(row) for row in cached[title].iter_rows(values_only=True)]
        finally:
            cached.close()
        for r, c in formulas:
            value = stored[r][c] if r < len(stored) and c < len(stored[r]) else None
            if value is None:
                raise InputError(f"formula {raw[r][c]!r} has no stored value; {_XLSX_HELP} "
                                 "(Excel stores the values when it saves), or paste values",
                                 file=path, row=r + 1, column=_header_name(raw, c))
            raw[r][c] = value
    rows = [[_cell_text(v) for v in row] for row in raw]
    while rows and not any(rows[0]):
        rows.pop(0)
    if not rows:
        raise InputError(f"sheet {title!r} is empty; expected a header row and data rows",
                         file=path)
    return rows[0], rows[1:]


def _header_name(raw: list[list[object]], position: int) -> str:
    header = raw[0] if raw else []
    named = position < len(header) and header[position] is not None
    return str(header[position]) if named else column_letter(position)


def _cell_text(value: object) -> str:
    """A cell as the text a CSV export would hold (dates as YYYY-MM-DD)."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


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
    headers = {c: excel_safe(c) for c in frame.columns if excel_safe(c) is not c}
    if not escaped and not headers:
        return frame
    safe = frame.copy()
    for column, values in escaped.items():
        safe[column] = values
    return safe.rename(columns=headers) if headers else safe   # headers are text users wrote too


def _may_start_formula(cells: list[object]) -> bool:
    """False only when no cell can start with a formula prefix (all text, none at a line start)."""
    if not cells:
        return False
    try:
        text = "\n".join(cells)
    except TypeError:   # not all text (NaN, numbers): let the per-cell check decide
        return True
    return text.startswith(FORMULA_PREFIXES) or _FORMULA_AFTER_NEWLINE.search(text) is not None


_FORMULA_AFTER_NEWLINE = re.compile("\n[" + re.escape("".join(FORMULA_PREFIXES)) + "]")


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
    """Write a frame as UTF-8 CSV, formula-like text escaped, atomically.

    The bytes are pandas' `to_csv(index=False)`; frames of text, integer, float and boolean
    columns are formatted here a column at a time, 100,000 rows at a time (`csv_lines`), which
    is faster than `to_csv` and keeps memory flat.
    """
    safe = excel_safe_frame(frame)
    with atomic_path(target) as temp:
        if not _write_plain_csv(temp, safe):
            safe.to_csv(temp, index=False, encoding="utf-8")
    return Path(target)


_CSV_CHUNK = 100_000
_NEEDS_QUOTES = re.compile('[,"\r\n]')


def _write_plain_csv(path: Path, frame: pd.DataFrame) -> bool:
    """Write `frame` as `to_csv` would, a chunk of rows at a time (memory stays flat);
    False, with nothing kept, when some column is one that pandas formats its own way."""
    width = len(frame.columns)
    with open(path, "wb") as handle:
        header = _csv_row([_csv_field(str(name)) for name in frame.columns], width)
        handle.write((header + "\n").encode("utf-8"))
        for start in range(0, len(frame), _CSV_CHUNK):
            cells = _csv_cells(frame.iloc[start:start + _CSV_CHUNK])
            if cells is None:
                handle.truncate(0)
                return False
            handle.write(csv_lines(cells).encode("utf-8"))
    return True


def csv_lines(cells: list[list[str]]) -> str:
    """Rows of formatted fields (one list per column) as CSV lines, as `to_csv` writes them."""
    if len(cells) == 1:
        return "".join((c or '""') + "\n" for c in cells[0])
    return "\n".join(map(",".join, zip(*cells, strict=True))) + "\n" if cells[0] else ""


def _csv_row(fields: list[str], width: int) -> str:
    return '""' if width == 1 and not fields[0] else ",".join(fields)


def _csv_field(text: str) -> str:
    """One field as Python's csv module writes it for pandas (QUOTE_MINIMAL, lines ending
    in \\n): fields with a character that may need quoting are formatted by the module."""
    if not _NEEDS_QUOTES.search(text):
        return text
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([text])
    return buffer.getvalue()[:-1]


def _csv_cells(frame: pd.DataFrame) -> list[list[str]] | None:
    """Each column's fields as `to_csv` formats them, or None for a frame it would format
    some other way (dates, categories, mixed objects, a non-default index)."""
    if not isinstance(frame.index, pd.RangeIndex):
        return None
    cells = []
    for position in range(frame.shape[1]):
        column = frame.iloc[:, position]
        fields = _column_fields(column)
        if fields is None:
            return None
        cells.append(fields)
    return cells


def _column_fields(column: pd.Series) -> list[str] | None:
    dtype = column.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":
        return list(map(str, column.tolist()))
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        values = column.to_numpy()
        fields = values.astype(str).astype(object)  # numpy's shortest repr, as pandas writes
        fields[np.isnan(values)] = ""
        return fields.tolist()
    if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
        values = column.tolist()
        kinds = set(map(type, values))
        if kinds - {str, type(None), float}:
            return None
        if float in kinds and any(v == v for v in values if type(v) is float):
            return None  # a number among text: pandas' own formatting decides
        fields = values if kinds == {str} else ["" if type(v) is not str else v for v in values]
        if _NEEDS_QUOTES.search("".join(fields)):
            distinct = set(fields)  # a few place names with commas: format each one once
            if len(distinct) <= len(fields) // 2:
                return list(map({v: _csv_field(v) for v in distinct}.__getitem__, fields))
            return list(map(_csv_field, fields))
        return fields
    return None


_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]+")


def safe_file_name(text: str) -> str:
    """A file name (without extension) for `text`: itself when it is only letters, digits,
    '-' and '_' (validated codes are), else those characters plus a short hash, so it can
    never climb out of its folder or collide."""
    text = str(text)
    if _SAFE_NAME.fullmatch(text):
        return text
    kept = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")[:40] or "file"
    return f"{kept}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def _require_plain_name(name: str) -> None:
    if not name or Path(name).name != name or name in {".", ".."} or "\\" in name:
        raise ValueError(f"refusing to write {name!r}: not a plain file name")


def write_folder(target: Path, contents: Mapping[str, bytes | str]) -> Path:
    """Replace a folder of generated files as a whole: written beside it, then swapped in."""
    target = Path(target)
    for name in contents:
        _require_plain_name(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    os.chmod(staging, 0o777 & ~_current_umask())  # mkdtemp makes 0700: colleagues on a
    # shared drive must be able to open the folder, as they can any folder made by mkdir
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
