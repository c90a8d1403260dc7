"""`index.html`: the run folder's front door.

The trial at a glance (units and staff per group, balance, capacity, contamination,
monitoring and, once analysed, the primary result and MDES), then every file in the folder
with a one-line description, when it was written, the register event it reflects and a
relative link. It reads the other stages' outputs as files (never importing later stages),
so it can be rebuilt after any command, and it links only to files that exist.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from markupsafe import Markup

import evalkit
from evalkit.io.files import write_text
from evalkit.io.html import add_group_helpers, package_environment
from evalkit.register import NOT_IN_TRIAL, Register, now_utc

INDEX_FILE = "index.html"
INDEX_MARKER = '<meta name="generator" content="evalkit run folder index">'
# Events after which files built from the staff table may be out of date.
STAFF_CHANGES = ("enrolled", "transferred")


@dataclass(frozen=True)
class Artefact:
    """A file the toolkit writes into a run folder, and what it is for."""

    path: str
    title: str
    description: str
    refresh: str = ""  # the command that rebuilds it ('' = written once)
    uses_staff: bool = False  # built from the staff table (stale after enrol/transfer)


CATALOGUE = (
    Artefact("certificate.html", "Allocation certificate",
             "One printable page: seed, algorithm, input fingerprints, counts per stratum "
             "and the latest verification.", "evalkit certificate RUN"),
    Artefact("allocation.xlsx", "Allocation workbook",
             "Every unit's group and probabilities, every staff member, balance.",
             "evalkit enrol / transfer", True),
    Artefact("allocation.csv", "Allocation (CSV)",
             "One row per randomised unit: group, how it was assigned, probabilities."),
    Artefact("staff_allocation.csv", "Staff allocation (CSV)",
             "One row per staff member: PDU, group and course.", "evalkit enrol / transfer",
             True),
    Artefact("balance.csv", "Balance (CSV)",
             "Group means and standardised differences of the balance covariates."),
    Artefact("manifest.json", "Manifest",
             "Seed, algorithm, design and input hashes: everything needed to reproduce."),
    Artefact("receipt.txt", "Seal receipt",
             "The register's root hash at sealing. Keep a copy outside this folder."),
    Artefact("register.sqlite", "Register",
             "The sealed allocation and the append-only event log (the source of truth)."),
    Artefact("booking_windows.xlsx", "Booking windows workbook",
             "Each person's course and booking window, per PDU summary, capacity.",
             "evalkit windows RUN", True),
    Artefact("booking_windows.csv", "Booking windows (CSV)",
             "The mail-merge list: each person's course, window and instruction.",
             "evalkit windows RUN", True),
    Artefact("booking_windows_by_pdu.csv", "Booking windows by PDU (CSV)",
             "Staff per course and the window for each PDU and group.", "evalkit windows RUN",
             True),
    Artefact("capacity.csv", "Course capacity (CSV)",
             "Session places against demand per course, group and region.",
             "evalkit windows RUN", True),
    Artefact("weekly_share.csv", "Weekly share away (CSV)",
             "Share of each PDU's staff away on training in an average week.",
             "evalkit windows RUN", True),
    Artefact("calendars", "Calendars",
             "One .ics per group and course: window dates, sessions and a reminder.",
             "evalkit windows RUN"),
    Artefact("guidance.html", "Guidance and contamination risk",
             "What each group is told, and where groups could mix.", "evalkit guidance RUN",
             True),
    Artefact("briefings", "PDU briefings",
             "One briefing per PDU for its Head of PDU.", "evalkit guidance RUN", True),
    Artefact("contamination.csv", "Contamination findings (CSV)",
             "Each place where groups could mix, with its severity.", "evalkit guidance RUN",
             True),
    Artefact("contamination_by_pdu.csv", "Contamination by PDU (CSV)",
             "Findings counted per PDU.", "evalkit guidance RUN", True),
    Artefact("contamination_by_region.csv", "Contamination by region (CSV)",
             "Findings counted per region.", "evalkit guidance RUN", True),
    Artefact("site/index.html", "Staff lookup page",
             "The self-contained page where staff find their group and window.",
             "evalkit publish RUN", True),
    Artefact("lookup_codes.csv", "Lookup codes (mail merge)",
             "Each person's personal lookup code. Keep it private.", "evalkit publish RUN", True),
    Artefact("monitoring.html", "Monitoring",
             "Bookings and completions against the allocation; who to contact.",
             "evalkit monitor RUN --bookings FILE", True),
    Artefact("monitoring.xlsx", "Monitoring workbook",
             "Summary, the lists to act on, and everyone's status.",
             "evalkit monitor RUN --bookings FILE", True),
    Artefact("monitoring.csv", "Monitoring (CSV)", "One row per person: booking status.",
             "evalkit monitor RUN --bookings FILE", True),
    Artefact("power.html", "Power at randomisation",
             "Minimum detectable effect sizes for the design as randomised."),
    Artefact("power.json", "Power (JSON)", "The MDES calculation, machine-readable."),
    Artefact("analysis/report.html", "Outcome report",
             "The pre-specified analysis: summary, effects, balance, attrition, CONSORT.",
             "evalkit analyse --register RUN --outcomes FILE"),
    Artefact("analysis/results.xlsx", "Outcome results workbook",
             "Every contrast, effect size and ICC as tables.",
             "evalkit analyse --register RUN --outcomes FILE"),
    Artefact("analysis/results.json", "Outcome results (JSON)",
             "The analysis results, machine-readable.",
             "evalkit analyse --register RUN --outcomes FILE"),
    Artefact("events.xlsx", "Event log workbook", "Who did what, when and why.",
             "evalkit log RUN"),
    Artefact("events.csv", "Event log (CSV)", "The register's event log as a table.",
             "evalkit log RUN"),
)
_HIDDEN = {INDEX_FILE}


def _read_csv(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False) if path.exists() else None
    except (OSError, ValueError, pd.errors.ParserError):
        return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    except (OSError, ValueError):
        return None


def _number(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return None if pd.isna(value) else value


def group_counts(register: Register) -> list[dict[str, Any]]:
    """Units and staff per group, in the design's order."""
    design = register.design
    names = [arm.name for arm in design.arms]
    units = register.group_sizes("allocation", names)
    staff = register.group_sizes("staff_allocation", [*names, NOT_IN_TRIAL])
    rows = [{"name": arm.name, "units": int(units.get(arm.name, 0)),
             "staff": int(staff.get(arm.name, 0)), "fixed": bool(arm.fixed)}
            for arm in design.arms]
    if staff.get(NOT_IN_TRIAL, 0):
        rows.append({"name": NOT_IN_TRIAL, "units": 0, "staff": int(staff[NOT_IN_TRIAL]),
                     "fixed": False})
    return rows


def balance_headline(directory: Path) -> list[dict[str, Any]]:
    """Per group: the largest absolute standardised difference against Control, and where."""
    balance = _read_csv(directory / "balance.csv")
    if balance is None or "group" not in balance.columns:
        return []
    smd = [c for c in balance.columns if c.startswith("smd_")]
    rows = []
    for record in balance.to_dict("records"):
        values = {c[4:].replace("_", " "): _number(record[c]) for c in smd}
        values = {k: abs(v) for k, v in values.items() if v is not None}
        if values:
            worst = max(values, key=values.get)
            size = values[worst]
            tag = "green" if size <= 0.1 else "yellow" if size <= 0.25 else "red"
            rows.append({"group": record["group"], "smd": round(size, 2), "covariate": worst,
                         "tag": tag})
    return rows


def capacity_headline(directory: Path) -> list[str]:
    """One line per course, group and region with more staff than session places."""
    capacity = _read_csv(directory / "capacity.csv")
    if capacity is None or "over_capacity" not in capacity.columns:
        return []
    over = capacity[capacity["over_capacity"].str.lower() == "true"]
    return [f"{r['course']}, {r['group']} ({r['region']}): {r['demand']} staff for "
            f"{r['places']} places, {r['shortfall']} short" for r in over.to_dict("records")]


def contamination_headline(directory: Path) -> dict[str, int] | None:
    """Contamination findings counted by severity, or None before `guidance` has run."""
    findings = _read_csv(directory / "contamination.csv")
    if findings is None:
        return None
    counts = findings["severity"].value_counts() if "severity" in findings else pd.Series()
    return {level: int(counts.get(level, 0)) for level in ("high", "medium", "low")} | {
        "total": len(findings)}


def monitoring_headline(directory: Path) -> list[tuple[str, int]] | None:
    """Staff per monitoring status, largest first, or None before `monitor` has run."""
    people = _read_csv(directory / "monitoring.csv")
    if people is None or "status" not in people.columns:
        return None
    return [(str(k), int(v)) for k, v in people["status"].value_counts().items()]


def _fmt(value: Any, digits: int = 2) -> str:
    number = _number(value)
    return "" if number is None else f"{number:.{digits}f}"


def primary_result(directory: Path) -> dict[str, Any] | None:
    """The primary outcome's contrasts from analysis/results.json, or None before analysis."""
    results = _read_json(directory / "analysis" / "results.json")
    if not isinstance(results, dict):
        return None
    models = [m for m in results.get("models", [])
              if m.get("outcome_role") == "primary" and m.get("analysis_role") == "primary"]
    if not models:
        return None
    model = models[0]
    sizes = {(e.get("arm"), e.get("versus")): e for e in results.get("effect_sizes", [])
             if e.get("outcome") == model.get("outcome") and e.get("model") == model.get("model")}
    contrasts = []
    for c in model.get("contrasts", []):
        size = sizes.get((c.get("arm"), c.get("versus")), {})
        p = _number(c.get("p_value"))
        contrasts.append({
            "label": f"{c.get('arm')} vs {c.get('versus')}", "randomised": c.get("randomised"),
            "estimate": _fmt(c.get("estimate")), "ci": f"{_fmt(c.get('ci_low'))} to "
                                                      f"{_fmt(c.get('ci_high'))}",
            "p": "" if p is None else ("< 0.001" if p < 0.001 else f"{p:.3f}"),
            "effect_size": _fmt(size.get("effect_size")), "measure": size.get("measure", "")})
    return {"outcome": str(model.get("outcome", "")).replace("_", " "),
            "model": model.get("model", ""), "contrasts": contrasts,
            "generated": results.get("generated", "")}


def mdes_headline(directory: Path) -> list[dict[str, str]]:
    """MDES per contrast as designed, from power.json (empty when there is none)."""
    power = _read_json(directory / "power.json")
    if not isinstance(power, dict):
        return []
    return [{"contrast": str(c.get("contrast", "")), "mdes": _fmt(c.get("mdes")),
             "randomised": bool(c.get("randomised"))}
            for c in power.get("contrasts", [])
            if c.get("level", "as designed") == "as designed" and _number(c.get("mdes"))]


@dataclass(frozen=True)
class _Event:
    id: int
    kind: str
    at: Any  # pd.Timestamp (UTC) or NaT


def _event_times(events: pd.DataFrame) -> list[_Event]:
    """The event log oldest first, each event's time parsed (NaT when it is not a time)."""
    times = pd.to_datetime(events["time"], utc=True, errors="coerce")
    return [_Event(*row) for row in zip(events["id"].tolist(), events["kind"].tolist(),
                                        list(times), strict=True)]


def _recorded_events(register: Register) -> dict[str, int]:
    """Path -> the event id the register recorded when evalkit wrote it (folders: newest)."""
    artefacts = getattr(register, "artefacts", None)
    table = artefacts() if callable(artefacts) else pd.DataFrame()
    recorded: dict[str, int] = {}
    for path, event_id in zip(table.get("path", []), table.get("event_id", []), strict=True):
        for key in {str(path), str(path).split("/")[0]}:
            recorded[key] = max(recorded.get(key, 0), int(event_id))
    return recorded


def _freshness(path: Path, spec: Artefact | None, events: list[_Event],
               recorded: int | None, fresh_since: float | None = None) -> dict[str, Any]:
    """When a file was written, the event it reflects, and whether it may be stale.

    The event is the newest one for files the running command wrote (modified since
    `fresh_since`), else the one the register recorded when evalkit wrote the file (its
    artefact record), else the newest event at or before the file's mtime.
    """
    written = pd.Timestamp(path.stat().st_mtime, unit="s", tz="UTC").ceil("s")
    if fresh_since is not None and path.stat().st_mtime >= fresh_since:
        reflected = events[-1] if events else None  # just written: the newest event
    elif recorded:
        reflected = next((e for e in reversed(events) if e.id <= recorded), None)
    else:  # not recorded (an older register): the newest event by the file's time
        reflected = next((e for e in reversed(events) if e.at <= written), None)
    reflects = f"#{reflected.id} {reflected.kind}" if reflected else ""
    newest = int(reflected.id) if reflected else 0
    later = next((e for e in events if e.id > newest and e.kind in STAFF_CHANGES), None)
    stale = bool(spec is not None and spec.uses_staff and later)
    return {"written": readable_time(written.isoformat()), "reflects": reflects,
            "stale": stale, "stale_after": f"#{later.id} {later.kind}" if stale else ""}


def _candidates(directory: Path) -> list[Path]:
    """Files and generated folders of a run folder (one level down into plain folders)."""
    folders = {a.path for a in CATALOGUE if "." not in a.path}
    found = []
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith(".") or entry.name in _HIDDEN:
            continue
        if entry.is_dir() and entry.name not in folders:
            found += [p for p in sorted(entry.iterdir()) if p.is_file()
                      and not p.name.startswith(".")]
        else:
            found.append(entry)
    return found


def artefacts(directory: Path, register: Register, fresh_since: float | None = None,
              events: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """Every file in the run folder, catalogued ones first in data-flow order (`events`:
    the register's event log, if already read)."""
    directory = Path(directory)
    events = _event_times(register.events() if events is None else events)
    recorded = _recorded_events(register)
    by_path = {a.path: a for a in CATALOGUE}
    order = {a.path: i for i, a in enumerate(CATALOGUE)}
    rows = []
    for path in _candidates(directory):
        relative = path.relative_to(directory).as_posix()
        spec = by_path.get(relative)
        link = relative + ("/" if path.is_dir() else "")
        files = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
        description = spec.description if spec else "Another file in this run folder."
        if path.is_dir():
            description += f" ({len(files)} files)"
        rows.append({"path": relative, "link": link, "title": spec.title if spec else relative,
                     "description": description, "refresh": spec.refresh if spec else "",
                     "size": _size(path), "order": order.get(relative, len(order)),
                     **_freshness(path, spec, events, recorded.get(relative), fresh_since)})
    return sorted(rows, key=lambda r: (r["order"], r["path"]))


def _size(path: Path) -> str:
    if path.is_dir():
        return ""
    size = path.stat().st_size
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def index_context(directory: Path, fresh_since: float | None = None) -> dict[str, Any]:
    """Everything the front door shows, read from the register and the files that exist."""
    directory = Path(directory)
    register = Register.open(directory)
    manifest, design = register.manifest, register.design
    events = register.events()
    last = events.iloc[-1] if len(events) else None
    return {
        "trial": design.trial.name, "unit": design.trial.unit, "seed": manifest.get("seed"),
        "sealed": manifest.get("created_at", ""), "strata": ", ".join(design.trial.strata),
        "groups": group_counts(register), "balance": balance_headline(directory),
        "capacity": capacity_headline(directory),
        "contamination": contamination_headline(directory),
        "monitoring": monitoring_headline(directory), "primary": primary_result(directory),
        "mdes": mdes_headline(directory),
        "files": artefacts(directory, register, fresh_since, events),
        "last_event": (f"#{last['id']} {last['kind']}, {readable_time(last['time'])}"
                       if last is not None
                       else ""), "generated": now_utc(), "version": evalkit.__version__,
        "has": {p: (directory / p).exists() for p in (
            "guidance.html", "monitoring.html", "analysis/report.html", "certificate.html",
            "power.html", "site/index.html", "booking_windows.xlsx", "events.xlsx")},
    }


def readable_time(text: Any) -> str:
    """'2026-12-01T23:14:29+00:00' -> '1 December 2026, 23:14 UTC' (text kept if not a time)."""
    try:
        when = pd.Timestamp(str(text))
    except ValueError:
        return str(text)
    if pd.isna(when):
        return str(text)
    when = when.tz_convert("UTC") if when.tzinfo else when
    return f"{when.day} {when:%B %Y, %H:%M} UTC"


def audit_environment():
    """The audit pages' Jinja environment: group tags and readable times."""
    environment = add_group_helpers(package_environment("evalkit.audit", "templates"))
    environment.filters["when"] = readable_time
    return environment


def render_index(context: dict[str, Any]) -> str:
    """The front door page (self-contained HTML)."""
    environment = audit_environment()
    return environment.get_template("index.html.j2").render(marker=Markup(INDEX_MARKER),
                                                            **context)


def write_index(directory: Path, fresh_since: float | None = None) -> Path:
    """Write (or refresh) index.html in a sealed run folder.

    `fresh_since` (a POSIX time): files modified since then were written by the command that
    just ran, so they reflect the register's newest event.
    """
    return write_text(Path(directory) / INDEX_FILE,
                      render_index(index_context(directory, fresh_since)))

