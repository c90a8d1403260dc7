"""`publish`: one self-contained HTML page where staff look up their group and booking window.

The page needs no server and no network (inline CSS and JS), so it can live on a shared drive.
It lists PDUs per course and region. For a staff-level design it also answers "which group am
I in?" for a personal lookup code (40 random bits, e.g. K7QX-29MD, mail-merged from
`lookup_codes.csv`): the page holds only slow salted hashes (PBKDF2-SHA256) of the codes, and
no staff ID, name or email.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from evalkit.allocation.keys import new_lookup_codes, normalise_lookup_code
from evalkit.io.files import write_csv, write_text
from evalkit.io.html import package_environment
from evalkit.io.runfolder import relative_to_folder
from evalkit.register import NOT_IN_TRIAL, Register
from evalkit.trial.design import NO_COURSE, TrialDesign

DEFAULT_SITE = "site"
PAGE_NAME = "index.html"
TEMPLATE_PACKAGE = "evalkit.delivery"
TEMPLATE_FOLDER = "templates/publish"
CODES_TABLE = "lookup_codes"
CODES_FILE = "lookup_codes.csv"
HASH_META = "lookup_hash"
DIGEST_BYTES = 16
SALT_BYTES = 16
# PBKDF2 rounds per lookup: 45-65 ms in headless Chromium here (under 0.5 s even on a machine
# seven times slower); hashing a national staff-level roster (18,752 people) once costs about
# 13 minutes on 2 cores. See README, "Lookup page".
DEFAULT_ITERATIONS = 200_000
# The staff_allocation columns the page and the mail merge read (PDU-level: the PDU list only).
PDU_COLUMNS = ["pdu_code", "pdu_name", "region"]
STAFF_COLUMNS = ["staff_id", "name", "email", *PDU_COLUMNS, "group", "course"]


@dataclass
class PublishResult:
    """Where the page went and what it holds."""

    path: Path
    pdus: int
    staff_entries: int
    size_bytes: int
    codes_file: Path | None = None
    new_codes: int = 0


@dataclass
class LookupCodes:
    """Everyone's personal lookup code with its page hash, and that hash's parameters."""

    salt: bytes
    iterations: int
    table: pd.DataFrame  # staff_id, code ('K7QX-29MD'), digest (hex PBKDF2)


def lookup_digest(code: str, salt: bytes, iterations: int) -> str:
    """Hex PBKDF2-HMAC-SHA256 of the normalised code: what the page's WebCrypto recomputes."""
    normalised = normalise_lookup_code(code)
    if normalised is None:
        raise ValueError(f"not a lookup code: {code!r}")
    return hashlib.pbkdf2_hmac("sha256", normalised.encode("ascii"), salt, iterations,
                               DIGEST_BYTES).hex()


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


def hash_codes(codes: list[str], salt: bytes, iterations: int,
                on_progress: Callable[[int], None] | None = None) -> list[str]:
    """`lookup_digest` of many codes, on every core (hashlib releases the GIL); calls
    `on_progress(n)` as each code is hashed, so a long first publish shows a progress bar."""
    digest = partial(lookup_digest, salt=salt, iterations=iterations)
    results = []
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for value in pool.map(digest, codes, chunksize=16):
            results.append(value)
            if on_progress is not None:
                on_progress(1)
    return results


def lookup_codes_for(staff_ids: pd.Series, previous: LookupCodes | None = None,
                     iterations: int = DEFAULT_ITERATIONS,
                     on_progress: Callable[[int], None] | None = None) -> LookupCodes:
    """Keep everyone's code (and hash, unless the rounds changed); fresh codes for the rest."""
    salt = previous.salt if previous else secrets.token_bytes(SALT_BYTES)
    table = previous.table if previous else pd.DataFrame(columns=["staff_id", "code", "digest"])
    known = set(table["staff_id"])
    new_ids = [staff_id for staff_id in dict.fromkeys(staff_ids) if staff_id not in known]
    taken = {normalise_lookup_code(code) for code in table["code"]}
    fresh = pd.DataFrame({"staff_id": new_ids, "code": new_lookup_codes(len(new_ids), taken),
                          "digest": ""})
    table = pd.concat([table, fresh], ignore_index=True).astype(str)
    stale = (table["digest"] == "") if previous and previous.iterations == iterations \
        else pd.Series(True, index=table.index)
    table.loc[stale, "digest"] = hash_codes(list(table.loc[stale, "code"]), salt, iterations,
                                               on_progress)
    return LookupCodes(salt, iterations, table.reset_index(drop=True))


def staff_index(design: TrialDesign, staff: pd.DataFrame, codes: LookupCodes) -> dict[str, Any]:
    """Code hashes -> index into distinct (group, course, window) outcomes; nothing else."""
    outcomes: list[list[str]] = []
    positions: dict[tuple[str, ...], int] = {}
    hashes: dict[str, int] = {}
    digests = codes.table.set_index("staff_id")["digest"]
    for staff_id, group, course in zip(staff["staff_id"], staff["group"], staff["course"],
                                       strict=True):
        course_name = "" if course == NO_COURSE else course
        start, end = design.window_iso(course_name, group)
        outcome = (group, course_name, format_date(start) if start else "",
                   format_date(end) if end else "")
        if outcome not in positions:
            positions[outcome] = len(outcomes)
            outcomes.append(list(outcome))
        hashes[digests[staff_id]] = positions[outcome]
    return {"salt": codes.salt.hex(), "iterations": codes.iterations,
            "bits": 8 * DIGEST_BYTES, "outcomes": outcomes,
            "hashes": dict(sorted(hashes.items())), "not_in_trial": NOT_IN_TRIAL}


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
    return package_environment(TEMPLATE_PACKAGE, TEMPLATE_FOLDER)


def _asset(name: str) -> Markup:
    """A CSS or JS file from the template folder, inlined verbatim (it is our own code)."""
    path = resources.files(TEMPLATE_PACKAGE).joinpath(TEMPLATE_FOLDER, name)
    return Markup(path.read_text(encoding="utf-8"))


def render_page(design: TrialDesign, allocation: pd.DataFrame, staff: pd.DataFrame,
                codes: LookupCodes | None = None, published_at: str | None = None,
                pdus: pd.DataFrame | None = None) -> str:
    """The whole page as one HTML string (staff-level designs need everyone's lookup code;
    `pdus`: `pdu_groups` of the same tables, if already made)."""
    staff_level = design.trial.unit == "staff"
    if staff_level and codes is None:
        raise ValueError("a staff-level page needs the staff's lookup codes")
    pdus = pdu_groups(design, allocation, staff) if pdus is None else pdus
    index = staff_index(design, staff, codes) if staff_level else None
    return _environment().get_template("page.html.j2").render(
        trial=design.trial.name, staff_level=staff_level, groups=group_descriptions(design),
        courses=course_sections(design, pdus), pdu_count=len(pdus), staff_index=index,
        not_in_trial=NOT_IN_TRIAL, published_at=published_at or dt.date.today().isoformat(),
        published_text=format_date(published_at or dt.date.today().isoformat()),
        css=_asset("page.css"), script=_asset("page.js"))


def stored_lookup_codes(register: Register) -> LookupCodes | None:
    """The codes and hash parameters kept in the register, if any were made."""
    parameters = register.meta(HASH_META)
    if parameters is None or not register.has_table(CODES_TABLE):
        return None
    table = register.table(CODES_TABLE).fillna("").astype(str)
    return LookupCodes(bytes.fromhex(parameters["salt"]), int(parameters["iterations"]), table)


def _store_lookup_codes(register: Register, codes: LookupCodes) -> None:
    register.replace_table(CODES_TABLE, codes.table)
    register.set_meta(HASH_META, {"algorithm": "PBKDF2-HMAC-SHA256", "salt": codes.salt.hex(),
                                  "iterations": codes.iterations, "bytes": DIGEST_BYTES})


def mail_merge_codes(staff: pd.DataFrame, codes: LookupCodes) -> pd.DataFrame:
    """lookup_codes.csv: staff_id, name, email and code, for mail-merging to each person."""
    merged = staff[["staff_id", "name", "email"]].merge(codes.table[["staff_id", "code"]],
                                                        on="staff_id", how="left")
    return merged.fillna("")


def publish(directory: Path, out: Path | None = None, iterations: int | None = None,
            on_progress: Callable[[int], None] | None = None) -> PublishResult:
    """Write the lookup page for the allocation in `directory` and log a `published` event.

    Staff-level designs: everyone gets a lookup code once (kept in the register, written to
    DIR/lookup_codes.csv for the mail merge); `iterations` defaults to the stored rounds.
    """
    register = Register.open(directory)
    design = register.design
    staff = register.table("staff_allocation", STAFF_COLUMNS if design.trial.unit == "staff"
                           else PDU_COLUMNS)
    allocation = register.table("allocation")
    codes, codes_file, new_codes = None, None, 0
    if design.trial.unit == "staff":
        previous = stored_lookup_codes(register)
        rounds = iterations or (previous.iterations if previous else DEFAULT_ITERATIONS)
        codes = lookup_codes_for(staff["staff_id"], previous, rounds, on_progress)
        new_codes = len(codes.table) - (len(previous.table) if previous else 0)
        _store_lookup_codes(register, codes)
        codes_file = write_csv(Path(directory) / CODES_FILE, mail_merge_codes(staff, codes))
    listed = pdu_groups(design, allocation, staff)
    target = write_text(output_file(directory, out),
                        render_page(design, allocation, staff, codes, pdus=listed))
    entries = len(staff) if design.trial.unit == "staff" else 0
    pdus = len(listed)
    register.append_event("published", detail={"path": relative_to_folder(target, directory),
                                               "pdus": pdus,
                                               "staff_entries": entries,
                                               "unit": design.trial.unit})
    return PublishResult(target, pdus, entries, target.stat().st_size, codes_file, new_codes)
