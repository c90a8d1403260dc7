"""The published lookup page: self-contained, complete, accessible markup, no staff IDs or names."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from evalkit.allocation.keys import normalise_lookup_code
from evalkit.cli import app
from evalkit.delivery.publish import (
    CODES_FILE,
    lookup_codes_for,
    lookup_digest,
    publish,
    render_page,
    stored_lookup_codes,
)
from evalkit.errors import EvalkitError
from evalkit.register import Register

FAST_ROUNDS = 10  # the national staff-level page in tests; the default is measured elsewhere


class PageParser(HTMLParser):
    """Collects the rows of each course panel: (code, group text, window start, window end)."""

    def __init__(self) -> None:
        super().__init__()
        self.panels: dict[str, list[dict]] = {}
        self.panel_attributes: list[dict] = []
        self.tabs: list[dict] = []
        self.header_scopes: list[str | None] = []
        self.captions = 0
        self._panel: str | None = None
        self._row: dict | None = None
        self._cell = -1
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if attributes.get("role") == "tabpanel":
            self._panel = attributes["data-course"]
            self.panels[self._panel] = []
            self.panel_attributes.append(attributes)
        elif attributes.get("role") == "tab":
            self.tabs.append(attributes)
        elif tag == "caption":
            self.captions += 1
        elif tag == "tr" and "data-code" in attributes:
            self._row = {"code": attributes["data-code"], "cells": [], "times": []}
            self._cell = -1
        if self._row is not None and tag in {"th", "td"}:
            self._cell += 1
            self._row["cells"].append("")
        if self._row is not None and tag == "time":
            self._row["times"].append(attributes["datetime"])
        if tag == "th":
            self.header_scopes.append(attributes.get("scope"))

    def handle_data(self, data: str) -> None:
        if self._row is not None and self._cell >= 0:
            self._row["cells"][self._cell] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self._row is not None:
            cells = [" ".join(c.split()) for c in self._row["cells"]]
            self.panels[self._panel].append({"code": self._row["code"], "name": cells[0],
                                             "group": cells[2], "times": self._row["times"]})
            self._row = None


def parse(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    return parser


@pytest.fixture(scope="module")
def pdu_page(national_run) -> str:
    register = Register.open(national_run.directory)
    return render_page(register.design, register.table("allocation"),
                       register.table("staff_allocation"))


@pytest.fixture(scope="module")
def staff_codes(staff_level_run):
    staff = Register.open(staff_level_run.directory).table("staff_allocation")
    return lookup_codes_for(staff["staff_id"], iterations=FAST_ROUNDS)


@pytest.fixture(scope="module")
def staff_page(staff_level_run, staff_codes) -> str:
    register = Register.open(staff_level_run.directory)
    return render_page(register.design, register.table("allocation"),
                       register.table("staff_allocation"), staff_codes)


def staff_index(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="staff-index">(.*?)</script>', html,
                      re.S)
    assert match, "staff-level page has no staff index"
    return json.loads(match.group(1))


def assert_self_contained(html: str) -> None:
    lowered = html.lower()
    for forbidden in ['src="http', "src='http", 'href="http', "href='http", "@import", "url(",
                      "<link", "<script src", "<iframe", "http:", "https:", "//fonts."]:
        assert forbidden not in lowered, forbidden


def assert_no_roster_people(html: str, staff) -> None:
    """No staff ID, staff name or email from the roster appears anywhere in the page."""
    id_like = set(re.findall(r"[A-Za-z]*\d+[A-Za-z0-9]*", html))
    assert not id_like & set(staff["staff_id"])
    name_pairs = set(re.findall(r"(?=\b([A-Z][\w'-]+ [A-Z][\w'-]+))", html))
    assert not name_pairs & set(staff["name"].dropna())
    assert "@" not in re.sub(r"@(media|import)", "", html)


@pytest.mark.parametrize("page", ["pdu_page", "staff_page"])
def test_page_is_self_contained_and_holds_no_people(page, request, national_run) -> None:
    html = request.getfixturevalue(page)
    assert_self_contained(html)
    assert_no_roster_people(html, national_run.staff_allocation)


def test_every_course_lists_every_pdu_with_its_group_and_window(pdu_page, national_run) -> None:
    register = Register.open(national_run.directory)
    design, allocation = register.design, register.table("allocation")
    panels = parse(pdu_page).panels
    assert list(panels) == [course.name for course in design.courses]
    for course in design.courses:
        rows = {row["code"]: row for row in panels[course.name]}
        assert set(allocation["unit_id"]) <= set(rows)
        for unit in allocation.itertuples():
            start, end = course.windows[unit.group]
            assert rows[unit.unit_id]["group"] == unit.group
            assert rows[unit.unit_id]["name"] == unit.name
            assert rows[unit.unit_id]["times"] == [start.isoformat(), end.isoformat()]


def test_excluded_pdus_are_shown_as_not_in_trial(pdu_page, national_run) -> None:
    staff = national_run.staff_allocation
    excluded = set(staff.loc[staff["group"] == "Not in trial", "pdu_code"])
    assert excluded, "the SEEDS2 example excludes a PDU"
    for rows in parse(pdu_page).panels.values():
        listed = {row["code"]: row for row in rows}
        assert all(listed[code]["group"] == "Not in trial" and not listed[code]["times"]
                   for code in excluded)


def test_accessible_markup(pdu_page, national_run) -> None:
    page = parse(pdu_page)
    courses = Register.open(national_run.directory).design.courses
    assert re.search(r'<html lang="en', pdu_page)
    assert "<noscript>" in pdu_page
    assert 'role="tablist"' in pdu_page
    assert [tab["aria-selected"] for tab in page.tabs] == ["true"] + ["false"] * (len(courses) - 1)
    assert [tab["aria-controls"] for tab in page.tabs] == [p["id"] for p in page.panel_attributes]
    # Without JavaScript every panel (and so every table) is visible: none starts hidden.
    assert all("hidden" not in panel for panel in page.panel_attributes)
    assert page.captions == len(courses) * 12
    assert set(page.header_scopes) == {"col", "row"}
    assert 'aria-live="polite"' in pdu_page
    assert ":focus-visible" in pdu_page


def test_pdu_level_page_has_no_staff_lookup(pdu_page) -> None:
    assert 'id="staff-index"' not in pdu_page
    assert 'id="staff-id"' not in pdu_page


def test_code_hashes_verify_in_python(staff_page, staff_codes, staff_level_run) -> None:
    index = staff_index(staff_page)
    assert (index["salt"], index["iterations"]) == (staff_codes.salt.hex(), FAST_ROUNDS)
    staff = staff_level_run.staff_allocation
    design = Register.open(staff_level_run.directory).design
    assert len(index["hashes"]) == len(staff)
    codes = staff_codes.table.set_index("staff_id")["code"]
    for person in staff[staff["course"] != "none"].sample(25, random_state=1).itertuples():
        digest = lookup_digest(codes[person.staff_id], staff_codes.salt, FAST_ROUNDS)
        group, course, start, end = index["outcomes"][index["hashes"][digest]]
        assert (group, course) == (person.group, person.course)
        window = next(c for c in design.courses if c.name == course).windows[group]
        assert [start, end] == [f"{d.day} {d:%B %Y}" for d in window]


def test_staff_index_holds_only_group_course_and_window(staff_page) -> None:
    index = staff_index(staff_page)
    assert set(index) == {"salt", "iterations", "bits", "outcomes", "hashes", "not_in_trial"}
    assert all(len(outcome) == 4 for outcome in index["outcomes"])
    assert len(index["outcomes"]) < 20  # shared outcomes, nothing person-specific
    assert all(re.fullmatch(r"[0-9a-f]{32}", digest) for digest in index["hashes"])
    assert list(index["hashes"]) == sorted(index["hashes"])  # no trace of the roster's order


def test_codes_are_distinct_well_formed_and_not_from_the_seed(staff_level_run, staff_codes):
    staff_ids = staff_level_run.staff_allocation["staff_id"]
    codes = staff_codes.table["code"]
    assert codes.is_unique and len(codes) == len(staff_ids)
    assert all(re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}", c) for c in codes)
    again = lookup_codes_for(staff_ids, iterations=1)  # same run, same seed: other codes
    assert not set(again.table["code"]) & set(codes)
    assert again.salt != staff_codes.salt


def test_republishing_keeps_codes_and_hashes_and_adds_new_staff(staff_codes) -> None:
    ids = staff_codes.table["staff_id"]
    more = lookup_codes_for(pd.concat([ids, pd.Series(["NEW1"])]), staff_codes, FAST_ROUNDS)
    pd.testing.assert_frame_equal(more.table.iloc[:-1], staff_codes.table)
    assert more.table.iloc[-1]["staff_id"] == "NEW1"
    assert more.table.iloc[-1]["digest"] == lookup_digest(more.table.iloc[-1]["code"],
                                                          staff_codes.salt, FAST_ROUNDS)
    slower = lookup_codes_for(ids.head(3), lookup_codes_for(ids.head(3), None, 1), 2)
    assert slower.table["digest"].tolist() == [lookup_digest(c, slower.salt, 2)
                                               for c in slower.table["code"]]


@given(st.text(alphabet="0123456789ABCDEFGHJKMNPQRSTVWXYZ", min_size=8, max_size=8),
       st.lists(st.sampled_from([" ", "\t", "-"]), max_size=3))
def test_typed_codes_hash_alike_whatever_the_case_or_spacing(code, spaces) -> None:
    typed = "".join(spaces) + code[:4].lower() + "".join(spaces) + code[4:] + " "
    assert normalise_lookup_code(typed) == code
    salt = bytes(16)
    assert lookup_digest(typed, salt, 1) == lookup_digest(code, salt, 1)


@pytest.mark.parametrize(("typed", "normalised"), [
    ("k7qx-29md", "K7QX29MD"), (" K7QX 29MD ", "K7QX29MD"), ("OIL0-0000", "01100000"),
    ("K7QX-29M", None), ("K7QX-29MDX", None), ("K7QU-29MD", None), ("S123456", None), ("", None),
])
def test_code_normalisation(typed, normalised) -> None:
    assert normalise_lookup_code(typed) == normalised


def test_publish_writes_default_site_and_logs_event(fresh_run: Path) -> None:
    first = publish(fresh_run)
    assert first.path == fresh_run / "site" / "index.html"
    assert first.path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    second = publish(fresh_run, fresh_run / "notice.html")
    assert second.path == fresh_run / "notice.html"
    events = Register.open(fresh_run).events()
    published = events[events["kind"] == "published"]
    assert len(published) == 2
    assert json.loads(published.iloc[-1]["detail"])["path"] == "notice.html"  # folder-relative
    assert [p.name for p in (fresh_run / "site").iterdir()] == ["index.html"]  # no temp files


def test_publish_without_register_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(EvalkitError, match="no register found"):
        publish(tmp_path)
    assert not (tmp_path / "site").exists()


def test_staff_level_publish_stores_codes_and_writes_the_mail_merge(staff_level_run,
                                                                   tmp_path) -> None:
    folder = tmp_path / "run"
    shutil.copytree(staff_level_run.directory, folder)
    register = Register.open(folder)
    small = register.table("staff_allocation").head(30)
    register.replace_table("staff_allocation", small)
    first = publish(folder, iterations=FAST_ROUNDS)
    merge = pd.read_csv(folder / CODES_FILE, dtype=str, keep_default_na=False)
    assert list(merge.columns) == ["staff_id", "name", "email", "code"]
    assert merge["staff_id"].tolist() == small["staff_id"].tolist()
    assert first.codes_file == folder / CODES_FILE and first.new_codes == 30
    stored = stored_lookup_codes(register)
    assert stored.iterations == FAST_ROUNDS
    second = publish(folder)
    assert second.new_codes == 0
    pd.testing.assert_frame_equal(stored_lookup_codes(register).table, stored.table)
    page = staff_index(second.path.read_text(encoding="utf-8"))
    assert page["salt"] == stored.salt.hex()
    assert set(page["hashes"]) == set(stored.table["digest"])


def test_pdu_level_publish_writes_no_codes(fresh_run: Path) -> None:
    result = publish(fresh_run)
    assert result.codes_file is None
    assert not (fresh_run / CODES_FILE).exists()
    assert stored_lookup_codes(Register.open(fresh_run)) is None


def test_cli_publish(fresh_run: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["publish", str(fresh_run), "--out", str(tmp_path / "web")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "web" / "index.html").exists()
    assert "109 PDUs" in result.output
    missing = CliRunner().invoke(app, ["publish", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2  # no register: bad usage


def test_cli_publish_in_a_real_process(fresh_run: Path, tmp_path: Path) -> None:
    command = [shutil.which("evalkit")] if shutil.which("evalkit") else [
        sys.executable, "-c", "from evalkit.cli import app; app()"]
    target = tmp_path / "page.html"
    done = subprocess.run([*command, "publish", str(fresh_run), "--out", str(target)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert_self_contained(target.read_text(encoding="utf-8"))
