"""A small, fast XLSX writer for large plain tables (about 10x faster than openpyxl).

Same promises as `files.write_xlsx`: text is stored as inline text (never a formula), the
header is bold and frozen, columns are sized to content, and the file appears atomically.
"""

from __future__ import annotations

import math
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from xml.sax.saxutils import escape

import pandas as pd

from evalkit.io.files import atomic_path

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PACKAGE_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_TYPES = "http://schemas.openxmlformats.org/package/2006/content-types"
_OFFICE = "application/vnd.openxmlformats-officedocument"
_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_STYLES = (
    f'{_HEAD}<styleSheet xmlns="{_MAIN}">'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)


def column_letter(index: int) -> str:
    """1 -> 'A', 27 -> 'AA'."""
    letters = ""
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def _text(ref: str, value: str, style: str = "") -> str:
    clean = escape(_ILLEGAL.sub("", value))
    return f'<c r="{ref}" t="inlineStr"{style}><is><t xml:space="preserve">{clean}</t></is></c>'


def _cell(ref: str, value: object) -> str:
    if value is None or value is pd.NA or value is pd.NaT or value == "":
        return ""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return f'<c r="{ref}" t="b"><v>{int(bool(value))}</v></c>'
    if isinstance(value, int | float) or hasattr(value, "dtype"):
        number = float(value)
        if math.isnan(number):
            return ""
        if math.isfinite(number):
            return f'<c r="{ref}"><v>{value.item() if hasattr(value, "item") else value}</v></c>'
    return _text(ref, str(value))


def sheet_xml(frame: pd.DataFrame) -> str:
    """One worksheet: bold frozen header, sized columns, then the rows."""
    letters = [column_letter(i + 1) for i in range(len(frame.columns))]
    widths = []
    for column in frame.columns:
        sample = frame[column].head(500).astype(str)
        widths.append(min(max([len(str(column)), *sample.str.len().tolist()]) + 2, 60))
    cols = "".join(f'<col min="{i}" max="{i}" width="{w}" customWidth="1"/>'
                   for i, w in enumerate(widths, start=1))
    header = "".join(_text(f"{letter}1", str(column), ' s="1"')
                     for letter, column in zip(letters, frame.columns, strict=True))
    rows = [f'<row r="1">{header}</row>']
    values = frame.astype(object).to_numpy().tolist()
    for number, record in enumerate(values, start=2):
        cells = "".join(_cell(f"{letter}{number}", value)
                        for letter, value in zip(letters, record, strict=True))
        rows.append(f'<row r="{number}">{cells}</row>')
    view = ('<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" '
            'activePane="bottomLeft" state="frozen"/></sheetView></sheetViews>')
    return (f'{_HEAD}<worksheet xmlns="{_MAIN}">{view}<cols>{cols}</cols>'
            f'<sheetData>{"".join(rows)}</sheetData></worksheet>')


def _sheet_name(name: str, taken: set[str]) -> str:
    base = re.sub(r"[\[\]:*?/\\]", " ", name)[:31] or "Sheet"
    candidate, counter = base, 2
    while candidate.lower() in taken:
        candidate = f"{base[:28]} {counter}"
        counter += 1
    taken.add(candidate.lower())
    return candidate


def write_xlsx(target: Path, sheets: Mapping[str, pd.DataFrame]) -> Path:
    """Write frames as sheets of one workbook, atomically."""
    taken: set[str] = set()
    names = [_sheet_name(name, taken) for name in sheets]
    count = len(names)
    overrides = "".join(
        f'<Override PartName="/xl/worksheets/sheet{i}.xml" '
        f'ContentType="{_OFFICE}.spreadsheetml.worksheet+xml"/>' for i in range(1, count + 1))
    types = (f'{_HEAD}<Types xmlns="{_TYPES}">'
             f'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
             f'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
             f'<Override PartName="/xl/workbook.xml" '
             f'ContentType="{_OFFICE}.spreadsheetml.sheet.main+xml"/>'
             f'<Override PartName="/xl/styles.xml" '
             f'ContentType="{_OFFICE}.spreadsheetml.styles+xml"/>{overrides}</Types>')
    root_rels = (f'{_HEAD}<Relationships xmlns="{_PACKAGE_RELS}"><Relationship Id="rId1" '
                 f'Type="{_RELS}/officeDocument" Target="xl/workbook.xml"/></Relationships>')
    sheet_entries = "".join(
        f'<sheet name="{escape(name, {chr(34): "&quot;"})}" sheetId="{i}" r:id="rId{i}"/>'
        for i, name in enumerate(names, start=1))
    workbook = (f'{_HEAD}<workbook xmlns="{_MAIN}" xmlns:r="{_RELS}">'
                f"<sheets>{sheet_entries}</sheets></workbook>")
    relations = "".join(f'<Relationship Id="rId{i}" Type="{_RELS}/worksheet" '
                        f'Target="worksheets/sheet{i}.xml"/>' for i in range(1, count + 1))
    workbook_rels = (f'{_HEAD}<Relationships xmlns="{_PACKAGE_RELS}">{relations}'
                     f'<Relationship Id="rId{count + 1}" Type="{_RELS}/styles" '
                     f'Target="styles.xml"/></Relationships>')
    with atomic_path(target) as temp, zipfile.ZipFile(temp, "w", zipfile.ZIP_DEFLATED,
                                                      compresslevel=1) as archive:
        archive.writestr("[Content_Types].xml", types)
        archive.writestr("_rels/.rels", root_rels)
        archive.writestr("xl/workbook.xml", workbook)
        archive.writestr("xl/_rels/workbook.xml.rels", workbook_rels)
        archive.writestr("xl/styles.xml", _STYLES)
        for i, frame in enumerate(sheets.values(), start=1):
            archive.writestr(f"xl/worksheets/sheet{i}.xml", sheet_xml(frame))
    return Path(target)
