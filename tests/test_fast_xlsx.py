"""The fast XLSX writer: what openpyxl reads back is what was written; text stays text."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.io.xlsx import column_letter, write_xlsx

xml_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x00"
                                 + "".join(map(chr, range(1, 32))) + "\ufffe\uffff"),
                   max_size=30)


def test_values_round_trip_and_formulas_stay_text(tmp_path: Path) -> None:
    frame = pd.DataFrame({"text": ["=1+1", "Åsa <b> & co", "", "+44 7"],
                          "number": [1, 2.5, float("nan"), -3], "flag": [True, False, True, False]})
    path = write_xlsx(tmp_path / "out.xlsx", {"First: sheet?": frame, "Second": frame})
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["First  sheet ", "Second"]
    sheet = book["Second"]
    assert sheet.freeze_panes == "A2" and sheet["A1"].font.b
    assert [c.value for c in sheet["A"]][1:] == ["=1+1", "Åsa <b> & co", None, "+44 7"]
    assert sheet["A2"].data_type == "s"
    assert [c.value for c in sheet["B"]][1:] == [1, 2.5, None, -3]
    assert [c.value for c in sheet["C"]][1:] == [True, False, True, False]


@settings(max_examples=30, deadline=None)
@given(st.lists(xml_text, min_size=1, max_size=20))
def test_any_text_round_trips(tmp_path_factory, values: list[str]) -> None:
    path = tmp_path_factory.mktemp("xlsx") / "t.xlsx"
    write_xlsx(path, {"S": pd.DataFrame({"row": range(len(values)), "value": values})})
    back = pd.read_excel(path, dtype=str, keep_default_na=False)["value"].tolist()
    assert back == values


def test_column_letters() -> None:
    assert [column_letter(i) for i in (1, 26, 27, 52, 703)] == ["A", "Z", "AA", "AZ", "AAA"]


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("&<>\"'a é;#")), max_size=12))
def test_escape_is_the_standard_librarys(text: str) -> None:
    """The writer's own `escape` gives xml.sax.saxutils.escape's text (without importing it,
    which pulls in urllib), with and without extra entities."""
    from xml.sax.saxutils import escape as standard

    from evalkit.io.xlsx import escape

    quote = {'"': "&quot;"}
    assert escape(text) == standard(text)
    assert escape(text, quote) == standard(text, quote)
