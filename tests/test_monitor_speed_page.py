"""The monitoring page's rows are built in Python (`table_rows`) and the Control early list is
shared out by PDU in one pass (`_early_by_pdu`): both must give what the cell-by-cell Jinja
macro and the per-PDU `_listing` gave before, byte for byte."""

from __future__ import annotations

import pandas as pd
from markupsafe import Markup

from evalkit.io.html import html_environment
from evalkit.monitoring import report

# The `table` macro's rows as they were written in report.html.j2 before `table_rows`.
JINJA_ROWS = """{% for row in data.rows %}<tr>{% for value in row %}{% set key = data['keys'][loop.index0] %}
{% if key == "group" %}<td>{{ value | group_tag }}</td>{% elif key == "manager_email" and value %}<td><a href="mailto:{{ value }}">{{ value }}</a></td>{% elif key in numeric %}<td class="num">{{ "{:,}".format(value | int) }}</td>{% elif key.startswith(("first_", "window_", "date")) %}<td class="date">{{ value }}</td>{% else %}<td>{{ value }}</td>{% endif %}
{% endfor %}</tr>
{% endfor %}"""  # noqa: E501


def jinja_rows(data: dict, numeric=()) -> str:
    import jinja2

    template = html_environment(jinja2.DictLoader({"rows": JINJA_ROWS})).get_template("rows")
    return template.render(data=data, numeric=numeric)


def test_table_rows_are_the_jinja_macro_rows() -> None:
    data = {"keys": ["name", "group", "manager_email", "staff", "first_booked", "date", "note"],
            "rows": [["O'Neil <b>", "Control", "a&b@x.org", "1234", "3 Mar 2023", "1 Jan 2024",
                      Markup("<a href='#'>link</a>")],
                     ["", "Treatment", "", "7.0", "", "", "x & y"],
                     ["Zoë", "Early Adopter", "z@x.org", "12345678", "NaT", "", '"q"']]}
    assert str(report.table_rows(data, ["staff"])) == jinja_rows(data, ["staff"])
    assert str(report.table_rows(data)) == jinja_rows(data)
    assert report.table_rows({"keys": ["a"], "rows": []}) == jinja_rows({"keys": ["a"],
                                                                         "rows": []})


def per_pdu_listings(early: pd.DataFrame) -> list[dict]:
    """`_early_by_pdu` as it was: one `_listing` per PDU group."""
    columns = ["name", "staff_id", "grade", "first_booked", "first_completed", "manager_name",
               "manager_email"]
    return [{"code": code, "name": name, "staff": len(people),
             "managers": int(people["manager_name"].nunique()),
             "listing": report._listing(people, columns)}
            for (code, name), people in early.groupby(["pdu_code", "pdu_name"], sort=True)]


def test_early_lists_by_pdu_are_the_per_pdu_listings(monkeypatch) -> None:
    monkeypatch.setattr(report, "HTML_ROW_LIMIT", 3)
    rows = [("P2", "Bath", "S9", "Ann", "m1"), ("P1", "York", "S1", "Bo", "m1"),
            ("P1", "York", "S2", "Cy", "m2"), ("P1", "York", "S3", "Di", "m2"),
            ("P1", "York", "S4", "Ed", ""), ("P3", "Ayr", "S5", "Fi", "m3")]
    early = pd.DataFrame(rows, columns=["pdu_code", "pdu_name", "staff_id", "name",
                                        "manager_name"]).assign(
        grade="PO", first_booked=pd.Timestamp("2023-03-01"), first_completed=pd.NaT,
        manager_email=lambda d: d["manager_name"] + "@x.org")

    class Early:
        control_early = early

    assert report._early_by_pdu(Early) == per_pdu_listings(early)
    Early.control_early = early.iloc[:0]
    assert report._early_by_pdu(Early) == []
