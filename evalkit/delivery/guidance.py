"""`guidance`: what each group is asked to do, a briefing per PDU for its Head and SPOs, and
the contamination risk report (see `evalkit.delivery.contamination`).

Group guidance comes from Jinja2 templates (`<group>.md.j2`, e.g. `control.md.j2`) shipped in
`evalkit/delivery/templates/guidance/`; a folder given by `--templates` or `[delivery] templates`
(relative to the design file) overrides them file by file.
"""

from __future__ import annotations

import functools
import html
import itertools
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import Markup, escape

from evalkit.delivery.contamination import HIGH_SHARE, KINDS, ContaminationReport, assess
from evalkit.delivery.instructions import group_windows
from evalkit.errors import ConfigError, InputError
from evalkit.io.files import read_table, safe_file_name, write_csv, write_folder, write_text
from evalkit.io.html import add_group_helpers
from evalkit.register import NOT_IN_TRIAL, Register
from evalkit.trial.design import TrialDesign

PACKAGE_TEMPLATES = Path(__file__).parent / "templates" / "guidance"


@dataclass(frozen=True)
class GuidanceTemplates:
    """Where guidance templates are looked up: an optional override folder, then the defaults."""

    override: Path | None = None

    @classmethod
    def for_design(cls, design: TrialDesign, manifest: dict,
                   option: Path | None = None) -> GuidanceTemplates:
        """`--templates` wins; else `[delivery] templates` relative to the design file."""
        if option is not None:
            if not Path(option).is_dir():
                raise InputError("templates folder not found", file=option)
            return cls(Path(option))
        configured = design.delivery.templates
        if configured is None:
            return cls()
        folder = Path(manifest["config"]["path"]).parent / configured
        if not folder.is_dir():
            raise ConfigError(f"key 'delivery.templates': folder {folder} not found")
        return cls(folder)

    def environment(self, html: bool) -> jinja2.Environment:
        return _environment(self.override, html)

    def render(self, name: str, html: bool = False, **context) -> str:
        """Render a template; template mistakes become ConfigErrors naming the file."""
        try:
            return self.environment(html).get_template(name).render(**context)
        except jinja2.TemplateSyntaxError as error:
            raise ConfigError(f"template {error.filename or name}, line {error.lineno}: "
                              f"{error.message}") from None
        except jinja2.UndefinedError as error:
            raise ConfigError(f"template {name}: {error.message}") from None


@functools.lru_cache(maxsize=8)
def _environment(override: Path | None, html: bool) -> jinja2.Environment:
    """One Jinja environment per folder and mode, so each template compiles once."""
    folders = [str(override)] if override else []
    loader = jinja2.FileSystemLoader([*folders, str(PACKAGE_TEMPLATES)])
    environment = jinja2.Environment(loader=loader, autoescape=html,
                                     undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                     finalize=None if html else markdown_text)
    environment.filters["inline"] = inline_html
    environment.filters["blocks"] = markdown_blocks
    environment.filters["file_name"] = safe_file_name
    return add_group_helpers(environment)


def template_name(design: TrialDesign, group: str, templates: GuidanceTemplates) -> str:
    """`<group in snake_case>.md.j2` if it exists, else the control or treatment template."""
    specific = re.sub(r"[^a-z0-9]+", "_", group.lower()).strip("_") + ".md.j2"
    folders = [f for f in (templates.override, PACKAGE_TEMPLATES) if f is not None]
    if any((folder / specific).is_file() for folder in folders):
        return specific
    return "control.md.j2" if group == design.control_arm else "treatment.md.j2"


def render_group_guidance(design: TrialDesign, group: str,
                          templates: GuidanceTemplates) -> Markup:
    """The guidance text (Markdown, user text HTML-escaped) a group's staff receive."""
    text = templates.render(
        template_name(design, group, templates), group=group, trial=design.trial.name,
        programme=design.delivery.programme,
        windows=group_windows(design, group), control=group == design.control_arm,
        you_are="Your PDU is" if design.trial.unit == "pdu" else "You are").strip() + "\n"
    return Markup(text)  # user text in it is escaped by markdown_text


def markdown_text(value: object) -> object:
    """Every value a Markdown template prints: HTML and link brackets escaped as entities, so
    names can never become markup in a Markdown viewer (Markup, e.g. rendered guidance, is
    already escaped and passes as it is)."""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    text = html.escape(value, quote=False)
    return text.replace("[", "&#91;").replace("]", "&#93;")


def inline_html(text: str) -> Markup:
    """Escape text (Markdown entities decoded first), then turn **bold** into <strong>."""
    escaped = str(escape(html.unescape(str(text))))
    return Markup(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped))


def markdown_blocks(text: str) -> list[dict]:
    """The small Markdown subset of the guidance: headings, paragraphs and bullet lists."""
    blocks: list[dict] = []
    for chunk in re.split(r"\n\s*\n", text.strip()):
        lines = [line.strip() for line in chunk.splitlines() if line.strip()]
        if lines and lines[0].startswith("#"):
            level = len(lines[0]) - len(lines[0].lstrip("#"))
            blocks.append({"kind": "heading", "level": min(level + 1, 6),
                           "text": lines[0].lstrip("#").strip()})
            lines = lines[1:]
        bullets = [line[2:] for line in lines if line.startswith(("- ", "* "))]
        prose = [line for line in lines if not line.startswith(("- ", "* "))]
        if prose:
            blocks.append({"kind": "paragraph", "text": " ".join(prose)})
        if bullets:
            blocks.append({"kind": "list", "items": bullets})
    return blocks


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
        courses = [{"window": w, "people": sorted((p for p in people if p["course"] == w.course),
                                                  key=lambda p: (p["pod"] or "", p["name"]))}
                   for w in windows]
        offered = {w.course for w in windows}
        no_course = Counter(p["grade"] for p in people if p["course"] not in offered)
        groups.append({"name": group, "staff": len(people), "courses": courses,
                       "no_course": dict(sorted(no_course.items())),
                       "guidance": guidance.get(group, ""), "in_trial": group != NOT_IN_TRIAL})
    return {"pdu_code": first["pdu_code"], "pdu_name": first["pdu_name"],
            "region": first["region"], "staff": len(members), "groups": groups}


def plan_guidance(design: TrialDesign, staff: pd.DataFrame, events: pd.DataFrame | None,
                  templates: GuidanceTemplates) -> GuidancePlan:
    """Render group guidance, assess contamination and render every PDU briefing."""
    groups = [a.name for a in design.arms if a.name in set(staff["group"])] or \
        [a.name for a in design.arms]
    guidance = {g: render_group_guidance(design, g, templates) for g in groups}
    report = assess(design, staff, events)
    risk = report.by_pdu.set_index("pdu_code")
    files: dict[str, str] = {}
    pdus = []
    records = staff.fillna("").sort_values("pdu_code", kind="stable").to_dict("records")
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
    if not record or not path.is_file():
        return staff
    roster = read_table(path)
    if "secondary_pdu_code" not in roster.columns:
        return staff
    return staff.merge(roster[["staff_id", "secondary_pdu_code"]], on="staff_id", how="left")
