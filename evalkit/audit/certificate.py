"""`certificate`: the allocation certificate, one printable A4 page (`certificate.html`).

It states what an auditor needs to check the allocation independently: the trial, seed and
algorithm, the SHA-256 of the design and of each input, the seal receipt when the register
holds one, the counts per stratum and group, and the latest `verify` result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

import evalkit
from evalkit.audit.index_page import audit_environment, readable_time
from evalkit.audit.log import event_log
from evalkit.io.files import sha256_file, write_text
from evalkit.register import NOT_IN_TRIAL, Register, now_utc

CERTIFICATE_FILE = "certificate.html"


@dataclass
class VerifyStatus:
    """The latest `verified` event: when, by whom and with what result (or never verified)."""

    time: str = ""
    matches: bool | None = None
    differences: int = 0
    who: str = ""


@dataclass
class CertificateFacts:
    """Everything the certificate states, read from the register."""

    trial: str
    facts: list[tuple[str, str]]
    hashes: list[tuple[str, str]]
    receipt: list[tuple[str, str]]
    groups: list[str]
    strata: list[dict[str, Any]]
    totals: dict[str, int]
    staff_totals: dict[str, int]
    verify: VerifyStatus
    generated: str = field(default_factory=now_utc)


def _receipt(register: Register, directory: Path) -> list[tuple[str, str]]:
    """The seal receipt's root hash (the chain value of the `created` event), when kept."""
    root_hash = getattr(register, "root_hash", None)
    found = []
    if callable(root_hash) and (value := root_hash()):
        found.append(("Register root hash (on the seal receipt)", str(value)))
    sealed = _created_detail(register).get("sealed")
    if sealed:
        found.append(("Sealed contents digest", str(sealed)))
    if (Path(directory) / "receipt.txt").exists():
        found.append(("Seal receipt", "receipt.txt was written when the allocation was sealed; "
                                      "a copy kept outside the folder proves it with "
                                      "`evalkit verify RUN --receipt FILE`"))
    return found


def _created_detail(register: Register) -> dict[str, Any]:
    events = register.events()
    created = events[events["kind"] == "created"]
    if created.empty:
        return {}
    try:
        detail = json.loads(created.iloc[0]["detail"] or "{}")
    except json.JSONDecodeError:
        return {}
    return detail if isinstance(detail, dict) else {}


def _hashes(manifest: dict, directory: Path) -> list[tuple[str, str]]:
    rows = [("Design (validated)", manifest.get("design_sha256", "")),
            ("Design file", (manifest.get("config") or {}).get("sha256", ""))]
    for name, record in (manifest.get("inputs") or {}).items():
        if record:
            rows.append((f"Input: {name} ({Path(record['path']).name}, {record['rows']} rows)",
                         record["sha256"]))
    rows.append(("Units (IDs, strata, covariates)", manifest.get("units_sha256", "")))
    allocation_csv = directory / "allocation.csv"
    if allocation_csv.exists():
        rows.append(("allocation.csv as now on disk", sha256_file(allocation_csv)))
    return rows


def latest_verify(register: Register) -> VerifyStatus:
    """The result of the most recent `evalkit verify`, if any."""
    events = register.events()
    verified = events[events["kind"] == "verified"]
    if verified.empty:
        return VerifyStatus()
    row = verified.iloc[-1]
    detail = json.loads(row["detail"] or "{}")
    log = event_log(register).set_index("id")
    user, host = log.at[int(row["id"]), "user"], log.at[int(row["id"]), "host"]
    who = f"{user} on {host}" if user and host else user or host
    return VerifyStatus(str(row["time"]), bool(detail.get("matches")),
                        len(detail.get("differences") or []), who)


def certificate_facts(directory: Path) -> CertificateFacts:
    """Read the certificate's contents from the run folder's register."""
    register = Register.open(directory)
    manifest, design = register.manifest, register.design
    counts = manifest.get("counts") or {}
    groups = [arm.name for arm in design.arms]
    strata = [{"name": name, "counts": [int(row.get(g, 0)) for g in groups],
               "total": sum(int(v) for v in row.values())} for name, row in sorted(counts.items())]
    staff_totals = {g: n for g, n in register.group_sizes(
        "staff_allocation", [*groups, NOT_IN_TRIAL]).items() if g != NOT_IN_TRIAL}
    unit = "PDU" if design.trial.unit == "pdu" else design.trial.unit
    facts = [("Trial", design.trial.name), ("Unit randomised", unit),
             ("Strata", ", ".join(design.trial.strata) or "none"),
             ("Seed", str(manifest.get("seed"))), ("Algorithm", manifest.get("algorithm", "")),
             ("Method", manifest.get("method", "")),
             ("Sealed at", readable_time(manifest.get("created_at", ""))),
             ("Made with", manifest.get("tool", "")),
             ("Ratios", ", ".join(f"{a.name} {a.ratio}" + (" (fixed)" if a.fixed else "")
                                  for a in design.arms))]
    return CertificateFacts(design.trial.name, facts, _hashes(manifest, Path(directory)),
                            _receipt(register, directory), groups, strata,
                            {g: int((manifest.get("totals") or {}).get(g, 0)) for g in groups},
                            staff_totals, latest_verify(register))


def render_certificate(facts: CertificateFacts) -> str:
    """The certificate page (self-contained HTML, A4 print CSS)."""
    return audit_environment().get_template("certificate.html.j2").render(
        c=facts, version=evalkit.__version__)


def write_certificate(directory: Path) -> Path:
    """Write (or refresh) certificate.html in the run folder."""
    return write_text(Path(directory) / CERTIFICATE_FILE,
                      render_certificate(certificate_facts(directory)))


def strata_frame(facts: CertificateFacts) -> pd.DataFrame:
    """Counts per stratum and group as a frame (for printing in the terminal)."""
    rows = [{"stratum": s["name"], **dict(zip(facts.groups, s["counts"], strict=True)),
             "total": s["total"]} for s in facts.strata]
    return pd.DataFrame(rows, columns=["stratum", *facts.groups, "total"])
