"""Register integrity for `verify`: triggers, the event hash chain, the seal, recorded files
and the seal receipt. Each check returns plain sentences saying exactly what differs."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import ValidationError

from evalkit.errors import InputError
from evalkit.io.runfolder import pending
from evalkit.register import (
    EXPECTED_TRIGGERS,
    ColumnTap,
    Register,
    event_chain,
    sha256_bytes_of,
)
from evalkit.trial.design import TrialDesign

_ROOT_LINE = re.compile(r"register root hash:\s*([0-9a-fA-F]{64})")


def trigger_differences(register: Register) -> list[str]:
    """Every protective trigger must be present and unchanged."""
    found = dict(register.query("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"))
    differences = []
    for name, sql in EXPECTED_TRIGGERS.items():
        if name not in found:
            differences.append(f"schema: trigger {name} is missing (dropped): the register "
                               "no longer refuses changes it should refuse")
        elif " ".join(found[name].split()) != " ".join(sql.split()):
            differences.append(f"schema: trigger {name} was altered")
    return differences


def chain_differences(register: Register) -> list[str]:
    """Recompute the event chain: an edited, inserted or deleted event breaks it."""
    columns = [row[1] for row in register.query("PRAGMA table_info(events)")]
    if "chain" not in columns:  # made by an evalkit before chains: nothing to check
        return []
    rows = register.query("SELECT id, time, kind, reason, detail, chain FROM events ORDER BY id")
    # events an older evalkit logged before chains existed (never in a chained register)
    differences, previous, legacy = [], "", bool(rows) and '"sealed"' not in rows[0][4]
    for expected_id, (event_id, time, kind, reason, detail, chain) in enumerate(rows, start=1):
        legacy = legacy and chain == ""
        if legacy:
            continue
        if event_id != expected_id:
            differences.append(f"events: event {expected_id} is missing (deleted); the log "
                               f"jumps to event {event_id}")
            return differences
        if event_chain(previous, event_id, time, kind, reason, detail) != chain:
            differences.append(f"events: event {event_id} ({kind} at {time}) does not match its "
                               "hash: it, or the chain before it, was edited")
            return differences
        previous = chain
    sequence = register.query("SELECT seq FROM sqlite_sequence WHERE name = 'events'")
    last = rows[-1][0] if rows else 0
    if sequence and sequence[0][0] > last:
        gone = f"{last + 1}" if sequence[0][0] == last + 1 else f"{last + 1}..{sequence[0][0]}"
        differences.append(f"events: event(s) {gone} were deleted from the end of the log")
    return differences


def seal_differences(register: Register,
                     table_digests: dict[str, tuple[list[str], bytes]] | None = None,
                     taps: tuple[ColumnTap, ...] = ()) -> list[str]:
    """The sealed contents must still have the digest recorded when they were sealed (and,
    given `table_digests`, each sealed table's digest as read, see `sealed_digest`; `taps`
    see their tables' cells as they are read)."""
    rows = register.query("SELECT kind, detail FROM events ORDER BY id LIMIT 1")
    if not rows or rows[0][0] != "created":
        return ["events: the first event is not `created` (the seal event is gone)"]
    detail = json.loads(rows[0][1])
    if "sealed" not in detail:
        return []
    meta_keys, seal_format = detail.get("sealed_meta", ["design", "manifest"]), \
        detail.get("seal_format", 1)
    if register.sealed_digest(meta_keys, seal_format, table_digests, taps) == detail["sealed"]:
        return []
    # a difference is confirmed by the plain read of every cell, so that no shortcut of the
    # fast read can ever report a change that is not there
    if seal_format != 1 and register.sealed_digest(meta_keys, seal_format, table_digests,
                                                   cell_by_cell=True) == detail["sealed"]:
        return []
    return ["seal: the sealed contents (stored design, manifest, units or allocation) were "
            "changed after sealing"]


def stored_design_differences(register: Register, config_design: TrialDesign) -> list[str]:
    """Stored design vs manifest vs design file, seed included."""
    manifest, differences = register.manifest, []
    try:
        stored = TrialDesign.model_validate(register.meta("design"))
    except ValidationError as error:
        return [f"stored design: no longer a valid design (edited?): "
                f"{error.errors()[0].get('msg', error)}"]
    stored_json, file_json = stored.model_dump(mode="json"), config_design.model_dump(mode="json")
    changed = sorted(k for k in set(stored_json) | set(file_json)
                     if stored_json.get(k) != file_json.get(k))
    if changed:
        differences.append("stored design: section(s) " + ", ".join(f"[{k}]" for k in changed)
                           + " differ from the design file")
    if stored.digest() != manifest["design_sha256"]:
        differences.append("stored design: differs from the design the allocation was made "
                           "with (manifest design_sha256); `windows` and `publish` read it")
    for source, seed in (("stored design", stored.trial.seed),
                         ("design file", config_design.trial.seed)):
        if seed != manifest["seed"]:
            differences.append(f"seed: the manifest says {manifest['seed']}, the {source} "
                               f"says {seed}")
    return differences


def artefact_differences(register: Register, directory: Path) -> tuple[list[str], list[str]]:
    """Recorded files: deleted or changed since evalkit wrote them (notes while pending)."""
    found = []
    for record in register.artefacts().itertuples(index=False):
        path = Path(directory) / record.path
        if not path.is_file():
            found.append(f"{record.path}: deleted (evalkit wrote it at event {record.event_id})")
        elif sha256_bytes_of(path) != record.sha256:
            found.append(f"{record.path}: changed since evalkit wrote it at event "
                         f"{record.event_id} (SHA-256 differs)")
    marker = pending(directory)
    if marker is not None and found:
        return [], [f"{marker.get('command', 'a command')} was interrupted before it had "
                    f"rewritten its files; run `evalkit refresh {directory}`: " + "; ".join(found)]
    return found, []


def read_receipt(path: Path) -> str:
    """The root hash written on a seal receipt."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise InputError(f"cannot read the receipt: {error.strerror}", file=path) from None
    match = _ROOT_LINE.search(text)
    if match is None:
        raise InputError("no 'register root hash: <64 hex digits>' line: not a seal receipt",
                         file=path)
    return match.group(1).lower()


def receipt_differences(register: Register, root_hash: str | None) -> list[str]:
    """The register must be the one whose root hash the receipt records."""
    if root_hash is None:
        return []
    actual = register.root_hash()
    if actual == root_hash.strip().lower():
        return []
    return [f"receipt: the register's root hash is {actual}, the receipt says {root_hash}: "
            "this folder is not the allocation sealed then (re-sealed or altered)"]
