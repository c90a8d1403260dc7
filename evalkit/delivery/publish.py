"""`publish`: one self-contained HTML page where staff look up their group and booking window.

The page needs no server and no network (inline CSS and JS), so it can live on a shared drive.
It lists PDUs per course and region. For a staff-level design it also answers "which group am
I in?" from salted SHA-256 hashes of staff IDs: no staff ID or name is ever written in it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from evalkit.io.files import write_text
from evalkit.register import NOT_IN_TRIAL, Register
from evalkit.trial.design import NO_COURSE, TrialDesign

DEFAULT_SITE = "site"
PAGE_NAME = "index.html"
TEMPLATE_PACKAGE = "evalkit.delivery"
TEMPLATE_FOLDER = "templates/publish"


@dataclass
class PublishResult:
    """Where the page went and what it holds."""

    path: Path
    pdus: int
    staff_entries: int
    size_bytes: int


def normalise_staff_id(staff_id: str) -> str:
    """The form hashed on both sides: no whitespace, upper case ('ab 12 ' -> 'AB12')."""
    return re.sub(r"\s+", "", str(staff_id)).upper()


def hash_staff_id(salt: str, staff_id: str) -> str:
    """Hex SHA-256 of salt + normalised ID (UTF-8): what the page's JavaScript recomputes."""
    return hashlib.sha256((salt + normalise_staff_id(staff_id)).encode("utf-8")).hexdigest()


def output_file(directory: Path, out: Path | None) -> Path:
    """`--out` names a folder (index.html inside) or an .html file; default DIR/site."""
    if out is None:
        return Path(directory) / DEFAULT_SITE / PAGE_NAME
    out = Path(out)
    return out if out.suffix.lower() in {".html", ".htm"} else out / PAGE_NAME


def format_date(iso: str) -> str:
    """'2022-03-01' -> '1 March 2022' (GOV.UK style)."""
    day = dt.date.fromisoformat(iso)
    return f"{day.day} {day:%B %Y}"


def pdu_groups(design: TrialDesign, allocation: pd.DataFrame, staff: pd.DataFrame) -> pd.DataFrame:
    """One row per PDU: code, name, region and group (staff-level: '' when its staff are in)."""
    pdus = staff[["pdu_code", "pdu_name", "region"]].drop_duplicates("pdu_code")
    if design.trial.unit == "pdu":
        groups = allocation.set_index("unit_id")["group"]
        listed = allocation.rename(columns={"unit_id": "pdu_code", "name": "pdu_name"})
        listed = listed[["pdu_code", "pdu_name", "region"]]
        pdus = pd.concat([listed, pdus[~pdus["pdu_code"].isin(groups.index)]])
        pdus["group"] = pdus["pdu_code"].map(groups).fillna(NOT_IN_TRIAL)
    else:
        in_trial = set(staff.loc[staff["group"] != NOT_IN_TRIAL, "pdu_code"])
        pdus = pdus.assign(group=["" if code in in_trial else NOT_IN_TRIAL
                                  for code in pdus["pdu_code"]])
    return pdus.sort_values(["region", "pdu_name"], kind="stable").reset_index(drop=True)


def _window(design: TrialDesign, course: str, group: str) -> dict[str, str] | None:
    start, end = design.window_iso(course, group)
    if not start:
        return None
    return {"group": group, "start": start, "end": end,
            "start_text": format_date(start), "end_text": format_date(end)}


def course_sections(design: TrialDesign, pdus: pd.DataFrame) -> list[dict[str, Any]]:
    """Per course: its windows, counts per group, and PDU rows grouped by region."""
    sections = []
    for course in design.courses:
        windows = [w for arm in design.arms if (w := _window(design, course.name, arm.name))]
        regions = []
        for region, members in pdus.groupby("region", sort=True):
            rows = [{"code": row.pdu_code, "name": row.pdu_name, "group": row.group,
                     "window": _window(design, course.name, row.group) if row.group else None,
                     "search": _search_text(row.pdu_name, row.pdu_code)}
                    for row in members.itertuples(index=False)]
            regions.append({"name": region, "rows": rows})
        counts = pdus["group"].value_counts()
        sections.append({"name": course.name, "grades": course.grades, "windows": windows,
                         "regions": regions,
                         "counts": [(arm.name, int(counts.get(arm.name, 0))) for arm in design.arms
                                    if counts.get(arm.name, 0)]})
    return sections


def _search_text(name: str, code: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", f"{name} {code}".lower()).strip()


def staff_index(design: TrialDesign, staff: pd.DataFrame, salt: str) -> dict[str, Any]:
    """Salted ID hashes -> index into distinct (group, course, window) outcomes; nothing else."""
    outcomes: list[list[str]] = []
    positions: dict[tuple[str, ...], int] = {}
    hashes: dict[str, int] = {}
    for staff_id, group, course in zip(staff["staff_id"], staff["group"], staff["course"],
                                       strict=True):
        course_name = "" if course == NO_COURSE else course
        start, end = design.window_iso(course_name, group)
        outcome = (group, course_name, format_date(start) if start else "",
                   format_date(end) if end else "")
        if outcome not in positions:
            positions[outcome] = len(outcomes)
            outcomes.append(list(outcome))
        hashes[hash_staff_id(salt, staff_id)] = positions[outcome]
    return {"salt": salt, "outcomes": outcomes, "hashes": hashes,
            "not_in_trial": NOT_IN_TRIAL}


def group_descriptions(design: TrialDesign) -> list[dict[str, str]]:
    """Plain-English meaning of each group, for the page's introduction."""
    described = []
    for arm in design.arms:
        if arm.control:
            text = ("carries on working as now and takes the course later, after the "
                    "evaluation's outcome period. Please do not open the SEEDS2 resources early.")
        elif arm.ratio == 0:
            text = "chosen on purpose to take the course first."
        else:
            text = "takes the course during the evaluation."
        described.append({"name": arm.name, "slug": _slug(arm.name), "text": text})
    return described


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader(TEMPLATE_PACKAGE, TEMPLATE_FOLDER),
        autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    environment.filters["slug"] = _slug
    return environment


def _asset(name: str) -> Markup:
    """A CSS or JS file from the template folder, inlined verbatim (it is our own code)."""
    path = resources.files(TEMPLATE_PACKAGE).joinpath(TEMPLATE_FOLDER, name)
    return Markup(path.read_text(encoding="utf-8"))


def render_page(design: TrialDesign, allocation: pd.DataFrame, staff: pd.DataFrame,
                salt: str | None = None, published_at: str | None = None) -> str:
    """The whole page as one HTML string (a fresh random salt unless one is given)."""
    staff_level = design.trial.unit == "staff"
    pdus = pdu_groups(design, allocation, staff)
    index = staff_index(design, staff, salt or secrets.token_hex(16)) if staff_level else None
    return _environment().get_template("page.html.j2").render(
        trial=design.trial.name, staff_level=staff_level, groups=group_descriptions(design),
        courses=course_sections(design, pdus), pdu_count=len(pdus), staff_index=index,
        not_in_trial=NOT_IN_TRIAL, published_at=published_at or dt.date.today().isoformat(),
        published_text=format_date(published_at or dt.date.today().isoformat()),
        css=_asset("page.css"), script=_asset("page.js"))


def publish(directory: Path, out: Path | None = None) -> PublishResult:
    """Write the lookup page for the allocation in `directory` and log a `published` event."""
    register = Register.open(directory)
    design = register.design
    staff = register.table("staff_allocation")
    html = render_page(design, register.table("allocation"), staff)
    target = write_text(output_file(directory, out), html)
    entries = len(staff) if design.trial.unit == "staff" else 0
    pdus = len(pdu_groups(design, register.table("allocation"), staff))
    register.append_event("published", detail={"path": str(target.resolve()), "pdus": pdus,
                                               "staff_entries": entries,
                                               "unit": design.trial.unit})
    return PublishResult(target, pdus, entries, target.stat().st_size)
