"""The published lookup page: self-contained, complete, accessible markup, no staff IDs or names."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.delivery.publish import hash_staff_id, normalise_staff_id, publish, render_page
from evalkit.errors import CheckFailed
from evalkit.register import Register

SALT = "0123456789abcdef0123456789abcdef"


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
def staff_page(staff_level_run) -> str:
    register = Register.open(staff_level_run.directory)
    return render_page(register.design, register.table("allocation"),
                       register.table("staff_allocation"), salt=SALT)


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


def test_staff_hashes_verify_in_python(staff_page, staff_level_run) -> None:
    index = staff_index(staff_page)
    assert index["salt"] == SALT
    staff = staff_level_run.staff_allocation
    design = Register.open(staff_level_run.directory).design
    assert len(index["hashes"]) == len(staff)
    for person in staff[staff["course"] != "none"].sample(25, random_state=1).itertuples():
        digest = hashlib.sha256((SALT + person.staff_id).encode()).hexdigest()
        group, course, start, end = index["outcomes"][index["hashes"][digest]]
        assert (group, course) == (person.group, person.course)
        window = next(c for c in design.courses if c.name == course).windows[group]
        assert [start, end] == [f"{d.day} {d:%B %Y}" for d in window]


def test_staff_index_holds_only_group_course_and_window(staff_page) -> None:
    index = staff_index(staff_page)
    assert set(index) == {"salt", "outcomes", "hashes", "not_in_trial"}
    assert all(len(outcome) == 4 for outcome in index["outcomes"])
    assert len(index["outcomes"]) < 20  # shared outcomes, nothing person-specific
    assert all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest in index["hashes"])


def test_each_publish_draws_a_new_salt(staff_level_run) -> None:
    register = Register.open(staff_level_run.directory)
    args = (register.design, register.table("allocation"), register.table("staff_allocation"))
    first, second = staff_index(render_page(*args)), staff_index(render_page(*args))
    assert first["salt"] != second["salt"]
    assert len(first["salt"]) >= 32
    assert not set(first["hashes"]) & set(second["hashes"])


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
               min_size=1, max_size=12), st.lists(st.sampled_from([" ", "\t"]), max_size=3))
def test_typed_ids_hash_alike_whatever_the_case_or_spacing(staff_id, spaces) -> None:
    typed = "".join(spaces) + staff_id.lower() + "".join(spaces)
    assert normalise_staff_id(typed) == staff_id.upper()
    assert hash_staff_id(SALT, typed) == hash_staff_id(SALT, staff_id)


def test_publish_writes_default_site_and_logs_event(fresh_run: Path) -> None:
    first = publish(fresh_run)
    assert first.path == fresh_run / "site" / "index.html"
    assert first.path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    second = publish(fresh_run, fresh_run / "notice.html")
    assert second.path == fresh_run / "notice.html"
    events = Register.open(fresh_run).events()
    published = events[events["kind"] == "published"]
    assert len(published) == 2
    assert json.loads(published.iloc[-1]["detail"])["path"] == str(second.path.resolve())
    assert [p.name for p in (fresh_run / "site").iterdir()] == ["index.html"]  # no temp files


def test_publish_without_register_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(CheckFailed, match="no register found"):
        publish(tmp_path)
    assert not (tmp_path / "site").exists()


def test_cli_publish(fresh_run: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["publish", str(fresh_run), "--out", str(tmp_path / "web")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "web" / "index.html").exists()
    assert "109 PDUs" in result.output
    missing = CliRunner().invoke(app, ["publish", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1


def test_cli_publish_in_a_real_process(fresh_run: Path, tmp_path: Path) -> None:
    command = [shutil.which("evalkit")] if shutil.which("evalkit") else [
        sys.executable, "-c", "from evalkit.cli import app; app()"]
    target = tmp_path / "page.html"
    done = subprocess.run([*command, "publish", str(fresh_run), "--out", str(target)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert_self_contained(target.read_text(encoding="utf-8"))
