"""The published page in real headless Chromium (file://): tabs, search, staff ID look-up."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from webdriver import Browser, find_browser

from evalkit.delivery.publish import publish
from evalkit.register import Register

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium, chromedriver = find_browser()
    if not (chromium and chromedriver):
        missing = "chromium" if not chromium else "chromedriver"
        reason = f"{missing} not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}: browser tests must run in CI")
        pytest.skip(reason)
    driver = Browser(chromium, chromedriver)
    yield driver
    driver.quit()


def _published(run, tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """Publish a copy's page (the session runs are read-only; publishing logs an event)."""
    import shutil

    folder = tmp_path_factory.mktemp(name) / "run"
    shutil.copytree(run.directory, folder)
    return publish(folder).path


@pytest.fixture(scope="module")
def pdu_page(national_run, tmp_path_factory) -> Path:
    return _published(national_run, tmp_path_factory, "pdu_page")


@pytest.fixture(scope="module")
def staff_page(staff_level_run, tmp_path_factory) -> Path:
    return _published(staff_level_run, tmp_path_factory, "staff_page")


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


def _look_up(browser: Browser, staff_id: str) -> str:
    field = browser.find("#staff-id")
    field.clear()
    field.send_keys(staff_id)
    browser.execute("document.getElementById('staff-result').textContent = ''")
    browser.find("#staff-form button").click()
    return browser.wait_for("return document.getElementById('staff-result').textContent")


def test_staff_id_finds_own_group_and_window(browser, staff_page, staff_level_run) -> None:
    design = Register.open(staff_level_run.directory).design
    staff = staff_level_run.staff_allocation
    person = staff[staff["course"] == design.courses[1].name].iloc[7]
    start, end = next(c for c in design.courses if c.name == person["course"]).windows[
        person["group"]]
    open_page(browser, staff_page)
    text = _look_up(browser, f"  {person['staff_id'].lower()} ")
    assert f"in the {person['group']} group for {person['course']}" in text
    assert f"between {start.day} {start:%B %Y} and {end.day} {end:%B %Y}" in text
    assert person["name"] not in text


def test_unknown_staff_id_says_so(browser, staff_page) -> None:
    open_page(browser, staff_page)
    text = _look_up(browser, "X999999")
    assert "could not find staff ID X999999" in text
    assert "result-missing" in browser.find("#staff-result").attribute("class")


@pytest.mark.parametrize("text", ["", "abc", "a" * 55, "a" * 56, "b" * 64, "c" * 65,
                                  "0123456789abcdefS000123", "Café ✓ naïve" * 20])
def test_pure_javascript_sha256_matches_python(browser, staff_page, text) -> None:
    if browser.execute("return !window.evalkitPage"):
        open_page(browser, staff_page)
    expected = hashlib.sha256(text.encode()).hexdigest()
    assert browser.execute("return window.evalkitPage.sha256Fallback(arguments[0])",
                           text) == expected
    web_crypto = browser.execute_async(
        "window.evalkitPage.sha256Hex(arguments[0]).then(arguments[1])", text)
    assert web_crypto == expected
