"""What a workbook comes from: the facts for its `About` sheet, read from the register."""

from __future__ import annotations

from typing import Any

import evalkit
from evalkit.io.files import sha256_file
from evalkit.register import Register, now_utc


def latest_event(register: Register) -> dict[str, Any] | None:
    """The newest entry of the event log as a dict (id, time, kind), or None."""
    events = register.events()
    if events.empty:
        return None
    row = events.iloc[-1]
    return {"id": int(row["id"]), "time": str(row["time"]), "kind": str(row["kind"])}


def workbook_about(register: Register, contents: str = "") -> dict[str, Any]:
    """Trial, seed, generated at, register hash and event, evalkit version (About sheet)."""
    manifest = register.manifest
    design = register.design
    event = latest_event(register)
    about: dict[str, Any] = {"Trial": design.trial.name}
    if contents:
        about["Contents"] = contents
    about.update({
        "Seed": manifest.get("seed"),
        "Algorithm": manifest.get("algorithm", ""),
        "Allocation sealed at": manifest.get("created_at", ""),
        "Generated at": now_utc(),
        "Register SHA-256": sha256_file(register.path),
        "Register event reflected": (f"#{event['id']} {event['kind']} at {event['time']}"
                                     if event else "none"),
        "Evalkit version": evalkit.__version__,
    })
    return about
