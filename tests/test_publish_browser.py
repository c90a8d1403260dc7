"""The published page in real headless Chromium (file://): tabs, search, lookup codes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from webdriver import Browser, running_browser

from evalkit.delivery.publish import (
    DEFAULT_ITERATIONS,
    lookup_codes_for,
    lookup_digest,
    publish,
    render_page,
)
from evalkit.register import Register

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with running_browser() as driver:
        yield driver


def _published(run, tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """Publish a copy's page (the session runs are read-only; publishing logs an event)."""
    import shutil

    folder = tmp_path_factory.mktemp(name) / "run"
    shutil.copytree(run.directory, folder)
    return publish(folder).path


@pytest.fixture(scope="module")
def pdu_page(national_run, tmp_path_factory) -> Path:
    return _published(national_run, tmp_path_factory, "pdu_page")


STAFF_ON_PAGE = 40  # hashing at the page's real rounds costs ~0.1 s per person


@pytest.fixture(scope="module")
def staff_page(staff_level_run, tmp_path_factory) -> dict:
    """A staff-level page for a sample of staff, hashed at the real (default) rounds."""
    register = Register.open(staff_level_run.directory)
    staff = register.table("staff_allocation")
    sample = staff[staff["course"] != "none"].sample(STAFF_ON_PAGE, random_state=3)
    codes = lookup_codes_for(sample["staff_id"], iterations=DEFAULT_ITERATIONS)
    path = tmp_path_factory.mktemp("staff_page") / "index.html"
    path.write_text(render_page(register.design, register.table("allocation"), sample, codes),
                    encoding="utf-8")
    people = sample.merge(codes.table, on="staff_id")
    return {"path": path, "people": people, "salt": codes.salt}


def open_page(browser: Browser, page: Path) -> None:
    browser.get(page.resolve().as_uri())
    assert browser.wait_for("return !document.getElementById('course-tabs').hidden")


def selected_tab(browser: Browser) -> str:
    return browser.execute(
        "return document.querySelector('[role=tab][aria-selected=true]').id")


def visible_panels(browser: Browser) -> list[str]:
    return browser.execute("return [...document.querySelectorAll('[role=tabpanel]')]"
                           ".filter(p => !p.hidden).map(p => p.id)")


def test_tabs_switch_by_click(browser, pdu_page) -> None:
    open_page(browser, pdu_page)
    assert visible_panels(browser) == ["panel-1"]
    browser.find("#tab-3").click()
    assert selected_tab(browser) == "tab-3"
    assert visible_panels(browser) == ["panel-3"]
    assert browser.find("#panel-3 h2").text == browser.find("#tab-3").text


def test_tabs_follow_arrow_keys_home_and_end(browser, pdu_page) -> None:
    open_page(browser, pdu_page)
    tab_count = len(browser.find_all("[role=tab]"))
    browser.find("#tab-1").click()
    browser.press("ArrowRight")
    assert selected_tab(browser) == "tab-2"
    assert browser.active_element_id() == browser.find("#tab-2").id
    assert visible_panels(browser) == ["panel-2"]
    browser.press("ArrowLeft")
    browser.press("ArrowLeft")
    assert selected_tab(browser) == f"tab-{tab_count}"  # wraps round
    browser.press("Home")
    assert selected_tab(browser) == "tab-1"
    browser.press("End")
    assert selected_tab(browser) == f"tab-{tab_count}"
    tab_indexes = browser.execute(
        "return [...document.querySelectorAll('[role=tab]')].map(t => t.tabIndex)")
    assert sorted(tab_indexes) == [-1] * (tab_count - 1) + [0]  # one tab stop


def _visible_codes(browser: Browser) -> list[str]:
    return browser.execute(
        "return [...document.querySelectorAll('#panel-1 tr[data-code]')]"
        ".filter(r => r.offsetParent !== null).map(r => r.dataset.code)")


def _search(browser: Browser, text: str) -> str:
    field = browser.find("#pdu-search")
    field.clear()
    field.send_keys(text)
    return browser.wait_for("return document.getElementById('search-status').textContent")


def test_search_finds_a_pdu_by_name_and_by_code(browser, pdu_page, national_run) -> None:
    allocation = Register.open(national_run.directory).table("allocation")
    unit = allocation.sort_values("name").iloc[len(allocation) // 2]
    open_page(browser, pdu_page)
    status = _search(browser, unit["name"])
    assert f"{unit['name']} ({unit['unit_id']})" in status
    assert unit["unit_id"] in _visible_codes(browser)
    named = allocation[allocation["name"].str.lower().str.contains(unit["name"].lower(),
                                                                   regex=False)]
    assert sorted(_visible_codes(browser)) == sorted(named["unit_id"])
    status = _search(browser, unit["unit_id"].lower())
    assert _visible_codes(browser) == [unit["unit_id"]]
    assert status.startswith("1 PDU matches")
    assert "No PDU matches" in _search(browser, "zzqx no such pdu")
    assert _visible_codes(browser) == []
    _search(browser, "")
    assert len(_visible_codes(browser)) >= len(allocation)


def test_page_loads_nothing_from_the_network(browser, pdu_page) -> None:
    open_page(browser, pdu_page)
    assert browser.execute("return performance.getEntriesByType('resource').length") == 0


def _look_up(browser: Browser, code: str) -> str:
    field = browser.find("#lookup-code")
    field.clear()
    field.send_keys(code)
    browser.execute("document.getElementById('staff-result').textContent = ''")
    browser.find("#staff-form button").click()
    return browser.wait_for("return document.getElementById('staff-result').textContent")


def test_a_code_shows_its_own_group_and_window_quickly(browser, staff_page,
                                                      staff_level_run) -> None:
    design = Register.open(staff_level_run.directory).design
    open_page(browser, staff_page["path"])
    timings = []
    for person in staff_page["people"].head(3).itertuples():
        course = next(c for c in design.courses if c.name == person.course)
        start, end = course.windows[person.group]
        typed = f"  {person.code.lower().replace('-', ' ')} "
        text = _look_up(browser, typed)
        assert f"Code {person.code}: you are in the {person.group} group for {person.course}" \
            in text
        assert f"between {start.day} {start:%B %Y} and {end.day} {end:%B %Y}" in text
        assert person.name not in text and person.staff_id not in text
        assert "result-found" in browser.find("#staff-result").attribute("class")
        timings.append(browser.execute("return window.evalkitPage.timings.lastLookupMs"))
    assert max(timings) < 500, timings  # one lookup at the page's real rounds


@pytest.mark.parametrize("typed", ["ZZZZ-ZZZZ", "0000 0000"])
def test_a_wrong_code_says_not_found(browser, staff_page, typed) -> None:
    open_page(browser, staff_page["path"])
    text = _look_up(browser, typed)
    assert f"Code {typed.replace(' ', '-')} not found" in text
    assert "result-missing" in browser.find("#staff-result").attribute("class")


@pytest.mark.parametrize("typed", ["S000123", "K7QX-29M", "K7QU-29MD"])
def test_something_that_is_not_a_code_says_so(browser, staff_page, typed) -> None:
    open_page(browser, staff_page["path"])
    assert "is not a lookup code" in _look_up(browser, typed)


@pytest.mark.parametrize("text", ["K7QX29MD", "", "Café ✓ naïve" * 10])
def test_javascript_pbkdf2_matches_python(browser, staff_page, text) -> None:
    if browser.execute("return !window.evalkitPage"):
        open_page(browser, staff_page["path"])
    salt = staff_page["salt"].hex()
    expected = hashlib.pbkdf2_hmac("sha256", text.encode(), staff_page["salt"], 1000, 16).hex()
    fallback = browser.execute(
        "var p = window.evalkitPage; "
        "return p.pbkdf2Fallback(p.utf8Bytes(arguments[0]), p.hexBytes(arguments[1]), 1000, 128)",
        text, salt)
    assert fallback == expected
    web_crypto = browser.execute_async(
        "window.evalkitPage.pbkdf2Hex(arguments[0], arguments[1], 1000, 128).then(arguments[2])",
        text, salt)
    assert web_crypto == expected
    if text == "K7QX29MD":
        assert expected == lookup_digest(text, staff_page["salt"], 1000)


@pytest.mark.parametrize("text", ["", "abc", "a" * 55, "a" * 56, "b" * 64, "c" * 65,
                                  "Café ✓ naïve" * 20])
def test_pure_javascript_sha256_matches_python(browser, staff_page, text) -> None:
    if browser.execute("return !window.evalkitPage"):
        open_page(browser, staff_page["path"])
    expected = hashlib.sha256(text.encode()).hexdigest()
    assert browser.execute("return window.evalkitPage.sha256Fallback(arguments[0])",
                           text) == expected


def test_a_published_staff_page_works_end_to_end(browser, staff_level_run, tmp_path) -> None:
    """publish() itself (register codes, mail-merge CSV, page) on a small staff table."""
    import shutil

    import pandas as pd

    folder = tmp_path / "run"
    shutil.copytree(staff_level_run.directory, folder)
    register = Register.open(folder)
    register.replace_table("staff_allocation", register.table("staff_allocation").head(12))
    result = publish(folder, iterations=2000)
    merge = pd.read_csv(result.codes_file, dtype=str)
    person = register.table("staff_allocation").merge(merge, on="staff_id").iloc[5]
    open_page(browser, result.path)
    assert f"you are in the {person['group']} group" in _look_up(browser, person["code"])
