"""The run folder's front door: links only to files that exist, lists every file, goes stale."""

from __future__ import annotations

import os
import re
import stat
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.examples.demo import PACKAGED_DESIGN

sys.path.insert(0, str(Path(__file__).parent))
from helpers import write_trial  # noqa: E402

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: object):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def links(index: Path) -> list[str]:
    return re.findall(r'href="([^"#]+)"', index.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("index")
    out = folder / "run"
    assert "Front door:" in invoke("assign", write_trial(folder), "--out", out).output
    for command in ("windows", "guidance", "log"):
        invoke(command, out)
    return out


def test_every_link_points_to_a_file_that_exists(run: Path) -> None:
    found = links(run / "index.html")
    assert found
    for link in found:
        assert (run / link).exists(), link


def test_every_file_in_the_folder_is_listed(run: Path) -> None:
    found = {link.rstrip("/") for link in links(run / "index.html")}
    for entry in run.iterdir():
        if entry.name != "index.html" and not entry.name.startswith("."):
            assert entry.name in found, entry.name
    html = (run / "index.html").read_text(encoding="utf-8")
    assert "Booking windows workbook" in html and "Not analysed yet" in html
    assert "guidance.html" in found and "monitoring.html" not in found


def test_glance_counts_units_and_staff_per_group(run: Path) -> None:
    html = (run / "index.html").read_text(encoding="utf-8")
    allocation = pd.read_csv(run / "allocation.csv")
    staff = pd.read_csv(run / "staff_allocation.csv")
    for group in ("Treatment", "Control"):
        row = re.search(rf"group-{group.lower()}\">{group}</strong></td>(.*?)</tr>", html,
                        re.S).group(1)
        numbers = [int(n.replace(",", "")) for n in re.findall(r">([\d,]+)</td>", row)]
        assert numbers == [(allocation["group"] == group).sum(), (staff["group"] == group).sum()]


def test_files_written_before_an_enrolment_are_marked_stale(run: Path, tmp_path: Path) -> None:
    pd.DataFrame({"staff_id": ["NEW9"], "grade": ["PSO"], "pdu_code": ["P101"]}).to_csv(
        tmp_path / "new.csv", index=False)
    invoke("enrol", run, "--staff", tmp_path / "new.csv")
    html = (run / "index.html").read_text(encoding="utf-8")
    row = re.search(r'href="booking_windows.csv">.*?</tr>', html, re.S)
    rebuilt = (run / "booking_windows.csv").read_text().count("NEW9") > 0
    assert ("may be out of date" in row.group(0)) != rebuilt


def test_generated_folders_are_readable_by_colleagues(run: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    for name in ("calendars", "briefings"):  # as mkdir makes them, not mkdtemp's 0700
        mode = stat.S_IMODE((run / name).stat().st_mode)
        assert mode == 0o777 & ~umask, f"{name} is {oct(mode)}"
        for file in (run / name).iterdir():
            assert stat.S_IMODE(file.stat().st_mode) == 0o666 & ~umask, file


def test_the_packaged_design_is_the_repository_one() -> None:
    assert PACKAGED_DESIGN.read_bytes() == (ROOT / "configs" / "seeds2.toml").read_bytes()


@pytest.mark.slow
def test_the_front_door_fits_a_phone(run: Path) -> None:
    from webdriver import running_browser

    with running_browser() as browser:
        browser.command("POST", "/window/rect", {"width": 390, "height": 900})
        browser.get((run / "index.html").as_uri())
        width = browser.execute("return window.innerWidth")
        overflow = browser.execute("return document.documentElement.scrollWidth")
        assert width <= 400 and overflow <= width, f"page is {overflow} px wide at {width} px"
