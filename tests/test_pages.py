"""The HTML pages people read: one look per group, phone-width lookup, short monitoring page.

Browser checks run in headless Chromium (tests/webdriver.py) at phone (390 px) and desktop
(1,280 px) widths; the rest are plain unit tests of evalkit.io.html.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from webdriver import Browser, running_browser

from evalkit.delivery.publish import publish
from evalkit.examples.bookings import write_example_bookings
from evalkit.io.html import (
    CONTROL,
    EARLY_ADOPTER,
    GROUP_STYLES,
    TREATMENT,
    group_css,
    group_style,
    group_tag,
    yes_no,
)
from evalkit.monitoring.report import run_monitor

PHONE, DESKTOP = 390, 1280


def _luminance(colour: str) -> float:
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(first: str, second: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb colours."""
    high, low = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# ---- the shared scheme (no browser) ----

def test_each_group_has_its_own_colour_pattern_and_marker():
    for attribute in ("slug", "tag_fill", "border", "colour", "marker", "linestyle"):
        values = [getattr(style, attribute) for style in GROUP_STYLES]
        assert len(set(values)) == len(values), attribute


def test_tag_text_and_plot_colours_meet_contrast_rules():
    for style in GROUP_STYLES:
        assert contrast(style.tag_text, style.tag_fill) >= 4.5, style.label  # WCAG AA text
        assert contrast(style.colour, "#ffffff") >= 3.0, style.label  # non-text graphics


def test_group_style_by_name_and_by_keyword():
    assert group_style("Early Adopter") is EARLY_ADOPTER
    assert group_style("control") is CONTROL
    assert group_style("Wait-list control") is CONTROL
    assert group_style("Arm B") is TREATMENT
    assert group_style("Not in trial").slug == "not-in-trial"


def test_group_tag_is_text_with_a_class_and_escapes_names():
    assert str(group_tag("Control")) == '<strong class="group group-control">Control</strong>'
    assert "&lt;b&gt;" in str(group_tag("<b>"))
    css = str(group_css())
    for style in GROUP_STYLES:
        rule = f".group-{style.slug} {{ color: {style.tag_text}; background: {style.tag_fill}"
        assert rule in css


def test_yes_no_replaces_python_booleans():
    assert [yes_no(v) for v in (True, False, "True", "nan", "S001")] == ["Yes", "No", "Yes", "",
                                                                        "S001"]


# ---- pages in Chromium ----

@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with running_browser() as driver:
        yield driver


@pytest.fixture(scope="module")
def pages(national_run, tmp_path_factory) -> dict[str, Path]:
    """A copy of the national run with its lookup page and monitoring page written."""
    run = tmp_path_factory.mktemp("pages") / "run"
    shutil.copytree(national_run.directory, run)
    bookings = write_example_bookings(run, run.parent / "bookings.csv")
    monitored = run_monitor(run, bookings, as_of=dt.date(2023, 12, 31))
    return {"lookup": publish(run).path, "monitoring": monitored.files["html"]}


def open_at(browser: Browser, page: Path, width: int) -> None:
    browser.command("POST", "/window/rect", {"width": width, "height": 900})
    browser.get(page.resolve().as_uri())
    assert browser.execute("return window.innerWidth") == width


OVERLAPS = """
const overlap = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 0.5 &&
                          Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 0.5;
const found = [];
for (const row of document.querySelectorAll('table.pdus tbody tr')) {
  if (!row.offsetParent) continue;
  const cells = Array.from(row.children).map(c => c.getBoundingClientRect());
  for (let i = 0; i < cells.length; i++)
    for (let j = i + 1; j < cells.length; j++)
      if (overlap(cells[i], cells[j])) found.push(row.dataset.code + ' cells ' + i + '/' + j);
  for (const cell of row.children)
    if (cell.scrollWidth > cell.clientWidth + 1) found.push(row.dataset.code + ' overflows');
  const badge = row.querySelector('.group');
  if (badge) {
    const b = badge.getBoundingClientRect();
    const others = Array.from(row.children).filter(c => !c.contains(badge));
    for (const cell of others)
      if (overlap(b, cell.getBoundingClientRect())) found.push(row.dataset.code + ' badge');
    const own = badge.closest('td').getBoundingClientRect();
    if (b.right > own.right + 0.5) found.push(row.dataset.code + ' badge sticks out');
  }
}
return {rows: document.querySelectorAll('table.pdus tbody tr').length, found: found};
"""


@pytest.mark.browser
@pytest.mark.parametrize("width", [PHONE, DESKTOP])
def test_lookup_page_has_no_overflow_and_no_overlapping_cells(browser, pages, width):
    open_at(browser, pages["lookup"], width)
    assert browser.execute("return document.documentElement.scrollWidth") <= width
    result = browser.execute(OVERLAPS)
    assert result["rows"] > 100 and result["found"] == []


@pytest.mark.browser
def test_lookup_page_shows_pdus_as_labelled_cards_on_a_phone(browser, pages):
    open_at(browser, pages["lookup"], PHONE)
    shape = browser.execute("""
      const row = document.querySelector('table.pdus tbody tr');
      const cells = Array.from(row.children).map(c => c.getBoundingClientRect());
      return {stacked: cells.every((c, i) => i === 0 || c.top >= cells[i - 1].bottom - 0.5),
              label: getComputedStyle(row.querySelector('td'), '::before').content,
              header: document.querySelector('table.pdus thead').getBoundingClientRect().height};
    """)
    assert shape["stacked"] and shape["label"] == '"Code"' and shape["header"] <= 1


@pytest.mark.browser
def test_every_page_draws_a_group_the_same_way(browser, pages):
    seen = set()
    for page in (pages["lookup"], pages["monitoring"]):
        open_at(browser, page, DESKTOP)
        seen.add(tuple(browser.execute("""
          return ['control', 'treatment'].map(slug => {
            const tag = document.querySelector('.group-' + slug);
            const style = getComputedStyle(tag);
            return [slug, style.backgroundColor, style.color, style.borderTopStyle];
          }).flat();""")))
    assert len(seen) == 1
    assert "dashed" in next(iter(seen))  # Control is readable without colour too


@pytest.mark.browser
def test_monitoring_page_leads_with_the_control_early_list(browser, pages):
    html = pages["monitoring"].read_text(encoding="utf-8")
    assert not re.search(r"<td>(True|False|nan|NaT)</td>", html)
    open_at(browser, pages["monitoring"], DESKTOP)
    layout = browser.execute("""
      const list = document.getElementById('control-early');
      const first = list.nextElementSibling.nextElementSibling.querySelector('td');
      return {top: list.getBoundingClientRect().top + scrollY,
              height: document.documentElement.scrollHeight,
              width: document.documentElement.scrollWidth,
              manager: Array.from(document.querySelectorAll('#control-early ~ details th'))
                         .some(th => th.textContent === 'Manager email'),
              folded: ['late', 'not-booked', 'unmatched']
                         .every(id => !document.getElementById(id).open),
              first: first ? first.textContent : ''};""")
    assert layout["top"] < 2 * 900  # within the first two screens
    assert layout["height"] < 30_000 and layout["width"] <= DESKTOP
    assert layout["manager"] and layout["folded"] and layout["first"]
    open_at(browser, pages["monitoring"], PHONE)
    assert browser.execute("return document.documentElement.scrollWidth") <= PHONE


@pytest.mark.browser
@pytest.mark.slow
def test_report_fits_a_desktop_screen_and_an_a4_page(browser, analysed_run):
    report = analysed_run["out"] / "report.html"
    too_wide = """return Array.from(document.querySelectorAll('table'))
        .filter(t => t.getBoundingClientRect().right > window.innerWidth + 0.5).length;"""
    open_at(browser, report, DESKTOP)
    assert browser.execute("return document.documentElement.scrollWidth") <= DESKTOP
    assert browser.execute(too_wide) == 0
    browser.command("POST", "/goog/cdp/execute",
                    {"cmd": "Emulation.setEmulatedMedia", "params": {"media": "print"}})
    try:
        open_at(browser, report, 688)  # A4 less 14 mm margins, in CSS pixels
        assert browser.execute(too_wide) == 0
    finally:
        browser.command("POST", "/goog/cdp/execute",
                        {"cmd": "Emulation.setEmulatedMedia", "params": {"media": ""}})
