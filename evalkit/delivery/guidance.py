"""`guidance`: what each group is asked to do, a briefing per PDU for its Head and SPOs, and
the contamination risk report (see `evalkit.delivery.contamination`).

The guidance text itself (templates, rendering, the Markdown subset) is in `guidance_text`,
which `windows` shares.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from markupsafe import Markup

from evalkit.delivery.contamination import HIGH_SHARE, KINDS, ContaminationReport, assess
from evalkit.delivery.guidance_text import (
    GuidanceTemplates,
    html_text,
    markdown_text,
    render_group_guidance,
)
from evalkit.delivery.instructions import group_windows
from evalkit.io.files import read_table, safe_file_name, write_csv, write_folder, write_text
from evalkit.register import NOT_IN_TRIAL, Register
from evalkit.trial.design import TrialDesign


@dataclass
class GuidancePlan:
    """Everything `guidance` writes, computed in memory first."""

    guidance: dict[str, str]
    briefings: dict[str, str]
    report: ContaminationReport


def pdu_context(design: TrialDesign, members: list[dict], guidance: dict[str, str]) -> dict:
    """What a PDU briefing shows: groups, courses and windows, who takes which course."""
    first = members[0]
    groups = []
    for group in sorted({m["group"] for m in members}):
        people = [m for m in members if m["group"] == group]
        windows = group_windows(design, group)
        courses = [_course_people(w, sorted((p for p in people if p["course"] == w.course),
                                            key=lambda p: (p["pod"] or "", p["name"])))
                   for w in windows]
        offered = {w.course for w in windows}
        no_course = Counter(p["grade"] for p in people if p["course"] not in offered)
        groups.append({"name": group, "staff": len(people), "courses": courses,
                       "no_course": dict(sorted(no_course.items())),
                       "guidance": guidance.get(group, ""), "in_trial": group != NOT_IN_TRIAL})
    return {"pdu_code": first["pdu_code"], "pdu_name": first["pdu_name"],
            "region": first["region"], "staff": len(members), "groups": groups}


def _course_people(window: object, people: list[dict]) -> dict:
    """A course in a briefing: its window, its people, and their list as the briefing
    templates print it, one line each (Markdown and HTML), made here in one pass instead of
    three escaped template fields per person (~19,000 people nationally)."""
    names, grades, pods = ([str(p[key]) for p in people] for key in ("name", "grade", "pod"))
    markdown = [f"- {name} ({grade}{', ' + pod if pod else ''})\n" for name, grade, pod in zip(
        *(_escaped(column, markdown_text) for column in (names, grades, pods)), strict=True)]
    html = [f'<li>{name} <span class="muted">({grade}{", " + pod if pod else ""})</span></li>\n'
            for name, grade, pod in zip(*(_escaped(column, html_text)
                                          for column in (names, grades, pods)), strict=True)]
    return {"window": window, "people": people, "people_markdown": Markup("".join(markdown)),
            "people_html": Markup("".join(html))}


_MAY_NEED_ESCAPING = re.compile(r"[&<>\[\]'\"]")  # what markdown_text or html_text change


def _escaped(values: list[str], escape: Callable[[str], object]) -> list[str]:
    """`escape` of each value, each distinct value once (none when none can need it)."""
    if not _MAY_NEED_ESCAPING.search("".join(values)):
        return values
    done = {value: str(escape(value)) for value in set(values)}
    return [done[value] for value in values]


def plan_guidance(design: TrialDesign, staff: pd.DataFrame, events: pd.DataFrame | None,
                  templates: GuidanceTemplates) -> GuidancePlan:
    """Render group guidance, assess contamination and render every PDU briefing."""
    present = set(staff["group"].unique())
    groups = [a.name for a in design.arms if a.name in present] or [a.name for a in design.arms]
    guidance = {g: render_group_guidance(design, g, templates) for g in groups}
    report = assess(design, staff, events)
    risk = report.by_pdu.set_index("pdu_code")
    files: dict[str, str] = {}
    pdus = []
    records = _records(staff.fillna("").sort_values("pdu_code", kind="stable"))
    for code, members in itertools.groupby(records, key=lambda r: r["pdu_code"]):
        context = pdu_context(design, list(members), guidance)
        context |= {"trial": design.trial.name, "risk": risk.loc[code].to_dict()}
        name = safe_file_name(code)  # codes are validated; the guard holds anyway
        files[f"{name}.md"] = templates.render("briefing.md.j2", **context)
        files[f"{name}.html"] = templates.render("briefing.html.j2", html=True, **context)
        pdus.append(context)
    files["index.html"] = templates.render("index.html.j2", html=True, trial=design.trial.name,
                                           pdus=pdus)
    return GuidancePlan(guidance, files, report)


def _records(frame: pd.DataFrame) -> list[dict]:
    """`frame.to_dict("records")`, built from whole columns (much faster on text columns).
    Plain dicts: the shipped briefing templates print people from the lines `_course_people`
    makes, and a template's `person.name` still finds the key."""
    columns = list(frame.columns)
    values = [frame[column].tolist() for column in columns]
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


def overview_html(design: TrialDesign, plan: GuidancePlan, templates: GuidanceTemplates) -> str:
    """guidance.html: each group's guidance and the contamination risk report."""
    report = plan.report
    return templates.render(
        "overview.html.j2", html=True, trial=design.trial.name, guidance=plan.guidance,
        report=report, kinds=KINDS, high_share=HIGH_SHARE,
        by_pdu=report.by_pdu.to_dict("records"), by_region=report.by_region.to_dict("records"),
        finding_counts=report.findings["kind"].value_counts().to_dict())


def run_guidance(directory: Path, templates: Path | None = None) -> tuple[GuidancePlan,
                                                                          dict[str, Path]]:
    """Read the register in `directory`, compute guidance and risk, and write every file."""
    register = Register.open(directory)
    design, manifest = register.design, register.manifest
    staff = with_roster_extras(register.table("staff_allocation"), manifest)
    finder = GuidanceTemplates.for_design(design, manifest, templates)
    plan = plan_guidance(design, staff, register.events(), finder)
    overview = overview_html(design, plan, finder)
    directory = Path(directory)
    files = {
        "contamination": write_csv(directory / "contamination.csv", plan.report.findings),
        "contamination_by_pdu": write_csv(directory / "contamination_by_pdu.csv",
                                          plan.report.by_pdu),
        "contamination_by_region": write_csv(directory / "contamination_by_region.csv",
                                             plan.report.by_region),
        "briefings": write_folder(directory / "briefings", plan.briefings),
        "guidance": write_text(directory / "guidance.html", overview),
    }
    return plan, files


def with_roster_extras(staff: pd.DataFrame, manifest: dict) -> pd.DataFrame:
    """Add `secondary_pdu_code` from the recorded staff roster when it has that column."""
    if "secondary_pdu_code" in staff.columns:
        return staff
    record = (manifest.get("inputs") or {}).get("staff") or {}
    path = Path(record.get("path", ""))
    if not record or not path.is_file() or not _may_have_column(path, "secondary_pdu_code"):
        return staff
    roster = read_table(path)
    if "secondary_pdu_code" not in roster.columns:
        return staff
    return staff.merge(roster[["staff_id", "secondary_pdu_code"]], on="staff_id", how="left")


def _may_have_column(path: Path, column: str) -> bool:
    """False only when a text (CSV) roster cannot have `column`: its name is nowhere in the
    file's bytes (read as UTF-8 or Windows-1252, an ASCII name is in the bytes as it is).
    Spares reading and validating the whole roster again when it has no such column."""
    if path.suffix.lower() not in {".csv", ".txt", ".tsv", ""}:
        return True   # a workbook is compressed: read it to know
    return column.encode("ascii") in path.read_bytes()
