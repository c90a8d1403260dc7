"""`evalkit guidance`: group guidance, PDU briefings, template overrides, contamination risk."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from evalkit.cli import app
from evalkit.delivery.contamination import KINDS
from evalkit.delivery.guidance import run_guidance
from evalkit.delivery.guidance_text import markdown_blocks
from evalkit.register import Register
from tests.delivery_helpers import staff_level_run

runner = CliRunner()


@pytest.fixture()
def guided(fresh_run: Path) -> Path:
    result = runner.invoke(app, ["guidance", str(fresh_run)])
    assert result.exit_code == 0, result.output
    return fresh_run


@pytest.fixture(scope="module")
def staff_level(example_files, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return staff_level_run(example_files, tmp_path_factory.mktemp("staff_level"))


def _briefing_of(folder: Path, group: str) -> tuple[str, pd.DataFrame]:
    staff = Register.open(folder).table("staff_allocation")
    code = staff.loc[staff["group"] == group, "pdu_code"].iloc[0]
    return code, staff[staff["pdu_code"] == code]


def test_control_and_treatment_guidance_say_what_is_asked(guided: Path) -> None:
    code, _ = _briefing_of(guided, "Control")
    control = (guided / "briefings" / f"{code}.md").read_text(encoding="utf-8").lower()
    for phrase in ["carry on working", "don't open", "mylearning", "be patient",
                   "don't discuss", "don't book before"]:
        assert phrase in control
    for group in ["Treatment", "Early Adopter"]:
        code, _ = _briefing_of(guided, group)
        text = (guided / "briefings" / f"{code}.md").read_text(encoding="utf-8").lower()
        assert "don't share" in text
        assert "unless everyone in the conversation has completed the learning" in text


def test_briefing_lists_who_takes_which_course(guided: Path) -> None:
    code, members = _briefing_of(guided, "Treatment")
    markdown = (guided / "briefings" / f"{code}.md").read_text(encoding="utf-8")
    html = (guided / "briefings" / f"{code}.html").read_text(encoding="utf-8")
    takers = members[members["course"] != "none"]
    for person in takers.itertuples():
        assert f"- {person.name} ({person.grade}" in markdown
    for course in takers["course"].unique():
        count = (takers["course"] == course).sum()
        assert f"### {course}: {count} staff" in markdown
        assert f"{course}: {count} staff</h3>" in html
    staff = Register.open(guided).table("staff_allocation")
    index = (guided / "briefings" / "index.html").read_text(encoding="utf-8")
    assert all(f'href="{c}.html"' in index for c in staff["pdu_code"].unique())
    assert "<script" not in html and "Contamination risk" in (guided / "guidance.html").read_text()


def test_national_example_finds_only_cross_pdu_line_management(guided: Path) -> None:
    staff = Register.open(guided).table("staff_allocation")
    findings = pd.read_csv(guided / "contamination.csv", dtype=str, keep_default_na=False)
    pairs = staff.merge(staff[["staff_id", "group"]], left_on="line_manager_id",
                        right_on="staff_id", suffixes=("", "_manager"))
    crossing = set(pairs.loc[pairs["group"] != pairs["group_manager"], "staff_id"])
    managed = findings[findings["kind"].str.contains("management|supervision")]
    assert set(managed["subject"]) == crossing and len(crossing) > 0
    assert set(findings["kind"]) <= set(KINDS)
    by_pdu = pd.read_csv(guided / "contamination_by_pdu.csv")
    assert set(by_pdu["risk"]) <= {"low", "medium", "high"}
    flagged = set(findings["pdu_code"])
    assert set(by_pdu.loc[by_pdu["risk"] == "low", "pdu_code"]).isdisjoint(flagged)
    named = by_pdu[by_pdu["pdu_code"].isin(flagged)]
    assert named["mitigation"].str.startswith("Brief ").all()


def test_template_override_by_option(fresh_run: Path, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "control.md.j2").write_text("OUR OWN WORDS for {{ group }}\n", encoding="utf-8")
    result = runner.invoke(app, ["guidance", str(fresh_run), "--templates", str(templates)])
    assert result.exit_code == 0, result.output
    code, _ = _briefing_of(fresh_run, "Control")
    assert "OUR OWN WORDS for Control" in (fresh_run / "briefings" / f"{code}.md").read_text()
    code, _ = _briefing_of(fresh_run, "Treatment")
    assert "OUR OWN WORDS" not in (fresh_run / "briefings" / f"{code}.md").read_text()


def test_broken_template_is_an_input_error_and_writes_nothing(fresh_run: Path,
                                                             tmp_path: Path) -> None:
    (tmp_path / "treatment.md.j2").write_text("{% if %}\n", encoding="utf-8")
    result = runner.invoke(app, ["guidance", str(fresh_run), "--templates", str(tmp_path)])
    assert result.exit_code == 2
    assert "treatment.md.j2" in result.output
    assert not (fresh_run / "guidance.html").exists()
    assert not (fresh_run / "briefings").exists()


def test_staff_level_design_reports_control_staff_sharing_pods(staff_level: Path) -> None:
    design_templates = staff_level.parent / "templates"
    (design_templates / "treatment.md.j2").write_text("FROM THE DESIGN KEY\n", encoding="utf-8")
    plan, _ = run_guidance(staff_level)
    staff = Register.open(staff_level).table("staff_allocation")
    in_pods = staff[staff["pod"] != ""]
    treated_pods = set(map(tuple, in_pods.loc[in_pods["group"] == "Treatment",
                                              ["pdu_code", "pod"]].to_numpy()))
    control = in_pods[in_pods["group"] == "Control"]
    exposed = sum((c, p) in treated_pods for c, p in zip(control["pdu_code"], control["pod"],
                                                         strict=True))
    report = plan.report
    assert (report.control_with_treated_pod_mate, report.control_in_pods) == (exposed,
                                                                             len(control))
    assert report.control_pod_share > 0.5
    assert (report.findings["kind"] == "supervision_across_groups").any()
    assert (report.by_pdu["risk"] == "high").all()
    assert "FROM THE DESIGN KEY" in plan.guidance["Treatment"]
    result = runner.invoke(app, ["guidance", str(staff_level)])
    assert result.exit_code == 0, result.output
    assert f"{exposed} of {len(control)}" in result.output


def test_windows_on_a_staff_level_design(staff_level: Path) -> None:
    result = runner.invoke(app, ["windows", str(staff_level)])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(staff_level / "booking_windows.csv", dtype=str, keep_default_na=False)
    assert set(rows["group"]) == {"Treatment", "Control"}


def test_markdown_blocks_split_headings_paragraphs_and_lists() -> None:
    blocks = markdown_blocks("## Title\n\nSome text\nmore.\n\n- one\n- two\n")
    assert blocks == [{"kind": "heading", "level": 3, "text": "Title"},
                      {"kind": "paragraph", "text": "Some text more."},
                      {"kind": "list", "items": ["one", "two"]}]


def test_transfers_after_allocation_are_reported(fresh_run: Path) -> None:
    from evalkit.turnover.events import transfer

    staff = Register.open(fresh_run).table("staff_allocation")
    mover = staff[(staff["group"] == "Control") & (staff["grade"] == "PO")].iloc[0]
    target = staff.loc[staff["group"] == "Treatment", "pdu_code"].iloc[0]
    transfer(fresh_run, mover["staff_id"], target, reason="promotion")
    plan, _ = run_guidance(fresh_run)
    moves = plan.report.findings[plan.report.findings["kind"] == "transfer"]
    assert moves[["subject", "pdu_code", "severity"]].values.tolist() == [
        [mover["staff_id"], target, "medium"]]
    row = plan.report.by_pdu.set_index("pdu_code").loc[target]
    assert row["transfer"] == 1 and row["risk"] != "low"
