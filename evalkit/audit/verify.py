"""`verify`: recompute a sealed allocation from its manifest, design and inputs, and compare."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit.allocation.assign import (
    build_manifest,
    columns_digest,
    compute_assignment,
    staff_allocation,
    units_digest,
)
from evalkit.allocation.joiner_sequence import KEY_META
from evalkit.allocation.keys import key_fingerprint, read_key
from evalkit.audit.integrity import (
    artefact_differences,
    chain_differences,
    read_receipt,
    receipt_differences,
    seal_differences,
    stored_design_differences,
    trigger_differences,
)
from evalkit.audit.replay import turnover_differences_but_sequence
from evalkit.audit.sequence_check import (
    SequenceCheck,
    StoredStratumSizes,
    check_sequence_beside,
    sequence_report,
)
from evalkit.audit.stored_units import StoredUnitsDigest
from evalkit.io.files import sha256_file, source_file
from evalkit.io.parallel import in_worker, run_beside
from evalkit.io.runfolder import kill_point
from evalkit.register import REGISTER_FILE, ColumnTap, Register, frame_digest
from evalkit.trial.design import TrialDesign, load_design


@dataclass
class VerifyReport:
    """The outcome of a verification: match or the list of differences."""

    matches: bool
    summary: str
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _recorded_path(manifest: dict, key: str, override: Path | None) -> Path | None:
    if override is not None:
        return Path(override)
    record = manifest["inputs"].get(key)
    return Path(record["path"]) if record else None


def _input_notes(manifest: dict, pdus: Path | None, staff: Path | None) -> list[str]:
    notes = []
    for key, path in (("pdus", pdus), ("staff", staff)):
        record = manifest["inputs"].get(key)
        if record and path is not None and source_file(path).exists() \
                and sha256_file(path) != record["sha256"]:
            notes.append(f"{key} file {path} differs byte-for-byte from the one allocated "
                         "(reordered or re-saved?); the units are compared below")
    return notes


def compare_allocations(recorded: pd.DataFrame, recomputed: pd.DataFrame) -> list[str]:
    """Differences between two allocation tables (unit set, group, assignment, probabilities)."""
    if len(recorded) == len(recomputed) and \
            (recorded["unit_id"].to_numpy() == recomputed["unit_id"].to_numpy()).all():
        return _aligned_allocation_differences(recorded, recomputed)
    a = recorded.set_index("unit_id").sort_index()
    b = recomputed.set_index("unit_id").sort_index()
    differences = [f"unit {u} is in the register but not in the inputs"
                   for u in a.index.difference(b.index)]
    differences += [f"unit {u} is in the inputs but not in the register"
                    for u in b.index.difference(a.index)]
    common = a.index.intersection(b.index)
    for column in ["group", "assignment"]:
        changed = common[a.loc[common, column].astype(str) != b.loc[common, column].astype(str)]
        differences += [f"unit {u}: {column} {a.at[u, column]!r} recorded, {b.at[u, column]!r} "
                        f"recomputed" for u in changed[:20]]
    return differences + _probability_differences(a.loc[common], b.loc[common])


def _aligned_allocation_differences(recorded: pd.DataFrame,
                                    recomputed: pd.DataFrame) -> list[str]:
    """`compare_allocations` when both tables list the same units in the same order (the
    register keeps the order they were allocated in): column arrays compared at once."""
    units, differences = recorded["unit_id"].to_numpy(), []
    for column in ["group", "assignment"]:
        have = recorded[column].astype(str).to_numpy()
        want = recomputed[column].astype(str).to_numpy()
        differences += [f"unit {units[at]}: {column} {recorded[column].iat[at]!r} recorded, "
                        f"{recomputed[column].iat[at]!r} recomputed"
                        for at in np.flatnonzero(have != want)[:20]]
    return differences + _probability_differences(recorded, recomputed)


def _probability_differences(recorded: pd.DataFrame, recomputed: pd.DataFrame) -> list[str]:
    """Probability columns (p_*) of two aligned allocation tables that do not agree."""
    return [f"probability column {column} differs"
            for column in recorded.columns if column.startswith("p_")
            and (column not in recomputed.columns or not np.allclose(
                recorded[column].astype(float), recomputed[column].astype(float)))]


MANIFEST_CHECKED = ("algorithm", "seed", "unit", "strata", "method", "draws_tried",
                    "balance_covariates", "design_sha256", "units_sha256", "counts", "totals")


def manifest_differences(stored: dict, recomputed: dict) -> list[str]:
    """Fields of the stored manifest that the recomputation does not reproduce."""
    return [f"manifest: {key} is {stored.get(key)!r} in the register, {recomputed.get(key)!r} "
            "recomputed from the design file and inputs"
            for key in MANIFEST_CHECKED if stored.get(key) != recomputed.get(key)]


def _joiner_key(register: Register, design: TrialDesign, key_file: Path | None,
                differences: list[str], notes: list[str]) -> bytes | None:
    """The joiner key when given and right; else a note or a difference, and None."""
    if design.trial.unit != "staff":
        return None
    if key_file is None:
        notes.append("joiners' groups were not checked against the concealed sequence: "
                     "pass --key-file (the joiner key) to prove them")
        return None
    key = read_key(key_file)
    if (register.meta(KEY_META) or {}).get("fingerprint") != key_fingerprint(key):
        differences.append(f"the key in {key_file} is not the one this run was sealed with")
        return None
    return key


@dataclass
class _Integrity:
    """What the integrity checks found (they need no recomputation, so they can run in a
    worker): differences and notes, each sealed table's digest as read (format 2), and the
    stored units checked against the manifest's digest over the manifest's columns."""

    differences: list[str]
    notes: list[str]
    table_digests: dict[str, tuple[list[str], bytes]]
    units_columns: list[str]
    units_differences: list[str]
    sequence: SequenceCheck | None = None


def _integrity(register: Register, directory: Path, root_hash: str | None,
               design_path: Path, key_file: Path | None) -> _Integrity:
    """Everything about the register and its files that needs no recomputation, and the
    joiner sequence's check (see `evalkit.audit.sequence_check`)."""
    kill_point("verify:integrity" + (" (worker)" if in_worker() else ""))
    digests: dict[str, tuple[list[str], bytes]] = {}
    manifest = register.manifest
    columns = ["unit_id", *manifest.get("strata", []), *manifest.get("balance_covariates", [])]
    units = StoredUnitsDigest(columns)  # from the seal's read: the stored units' digest ...
    strata = StoredStratumSizes(manifest.get("strata", []))  # ... and stratum sizes
    differences = trigger_differences(register) + chain_differences(register)
    differences += seal_differences(register, digests, (ColumnTap("units", units.feed),
                                                        ColumnTap("allocation", strata.feed)))
    differences += receipt_differences(register, root_hash)
    changed, notes = artefact_differences(register, directory)
    if not register.root_hash():
        notes.append("this register predates hash-chained events and file hashes: only the "
                     "allocation itself was recomputed")
    return _Integrity(differences + changed, notes, digests, columns, _stored_units_differences(
        register, columns, manifest["units_sha256"], units.hexdigest()),
        check_sequence_beside(register, design_path, key_file, strata.sizes()))


@dataclass
class _Recomputed:
    """The allocation recomputed from the design file and inputs, and the differences found
    so far, in report order; the comparisons with the stored units and allocation come
    between them (`_stored_comparisons`)."""

    before_units: list[str]
    before_allocation: list[str]
    slots: list[str]  # after the allocation: joiners' slots, then the sequence (not here)
    staff_table: list[str]  # and the stored staff table last
    notes: list[str]
    summary: str
    unit_columns: list[str]
    allocation: pd.DataFrame
    allocation_digest: bytes | None
    design: TrialDesign
    key: bytes | None


# From this many units, the integrity checks (which read every sealed cell and hash every
# file) run in a forked worker while this process recomputes the allocation (when a second
# core is free): the same report, sooner.
INTEGRITY_BESIDE_ROWS = int(os.environ.get("EVALKIT_TEST_BESIDE_ROWS", 100_000))  # tests: lower


def verify_allocation(directory: Path, config: Path | None = None, pdus: Path | None = None,
                      staff: Path | None = None, key_file: Path | None = None,
                      receipt: Path | None = None, root_hash: str | None = None) -> VerifyReport:
    """Recompute and compare; check the register, its files and (given) the seal receipt.

    Needs only read access; logs a `verified` event when the register is writable."""
    register = Register.open(directory, readonly=True)
    manifest = register.manifest
    expected_root = read_receipt(receipt) if receipt is not None else root_hash
    design_path = _design_path(manifest, config)

    def integrity() -> _Integrity:
        return _integrity(register, Path(directory), expected_root, design_path, key_file)

    def recomputation() -> _Recomputed:
        return _recomputation(register, config, pdus, staff, key_file)

    if register.row_count("allocation") < INTEGRITY_BESIDE_ROWS:
        checked, recomputed = integrity(), recomputation()
    else:
        checked, recomputed = run_beside(integrity, recomputation)
    units, allocation = _stored_comparisons(register, checked, recomputed)
    sequence = sequence_report(register, recomputed.design, recomputed.allocation,
                               recomputed.key, checked.sequence)
    differences = (checked.differences + recomputed.before_units + units
                   + recomputed.before_allocation + allocation + recomputed.slots + sequence
                   + recomputed.staff_table)
    notes = checked.notes + recomputed.notes
    matches = not differences
    summary = (f"{recomputed.summary} (design file) with {manifest['algorithm']}: "
               + ("identical allocation" if matches else f"{len(differences)} difference(s)"))
    notes.append(_log_verified(directory, matches, differences, expected_root is not None))
    return VerifyReport(matches, summary, differences, notes)


def _recomputation(register: Register, config: Path | None, pdus: Path | None,
                   staff: Path | None, key_file: Path | None) -> _Recomputed:
    """Recompute the allocation from the design file and inputs, and compare it and the
    turnover since with the register (all but the stored units and allocation)."""
    manifest = register.manifest
    design_path = _design_path(manifest, config)
    pdus_path = _recorded_path(manifest, "pdus", pdus)
    staff_path = _recorded_path(manifest, "staff", staff)
    differences: list[str] = []
    notes: list[str] = []
    config_design = load_design(design_path)
    if config_design.digest() != manifest["design_sha256"]:
        differences.append(f"the design in {design_path} is not the one the allocation used")
    differences += stored_design_differences(register, config_design)
    notes += _input_notes(manifest, pdus_path, staff_path)
    key = _joiner_key(register, config_design, key_file, differences, notes)
    design, roster, units, allocation = compute_assignment(design_path, pdus_path, staff_path)
    unit_columns = ["unit_id", *design.trial.strata, *allocation.covariates]
    if units_digest(units, unit_columns) != manifest["units_sha256"]:
        differences.append("the set of units (IDs, strata, covariates) has changed")
    manifest_changes = manifest_differences(manifest, build_manifest(
        design_path, design, roster, units, allocation))
    del units  # verify holds several tables of every unit: free each as soon as it is checked
    slots, staff_table = turnover_differences_but_sequence(
        register, design, allocation.table, staff_allocation(design, roster, allocation), key)
    return _Recomputed(differences, manifest_changes, slots, staff_table, notes,
                       f"{len(allocation.table)} units recomputed from seed "
                       f"{design.trial.seed}", unit_columns, allocation.table,
                       frame_digest(allocation.table), design, key)


def _design_path(manifest: dict, config: Path | None) -> Path:
    """The design file: the one given, else the one the manifest recorded."""
    return Path(config) if config is not None else Path(manifest["config"]["path"])


def _stored_comparisons(register: Register, checked: _Integrity,
                        recomputed: _Recomputed) -> tuple[list[str], list[str]]:
    """The stored units and allocation against the recomputation. Where the integrity pass
    already found the answer (the same units columns; the stored allocation's digest equal
    to the recomputed one's, so the same cells), nothing is read again."""
    if recomputed.unit_columns == checked.units_columns:
        units = checked.units_differences
    else:
        units = _stored_units_differences(register, recomputed.unit_columns,
                                          register.manifest["units_sha256"])
    stored = checked.table_digests.get("allocation")
    if stored is not None and recomputed.allocation_digest is not None and \
            stored == (list(map(str, recomputed.allocation.columns)),
                       recomputed.allocation_digest):
        return units, []
    return units, compare_allocations(_stored_allocation(register), recomputed.allocation)


def _stored_units_differences(register: Register, unit_columns: list[str],
                              recorded_digest: str, digest: str | None = None) -> list[str]:
    """The register's units must have the digest the manifest recorded (only those columns
    are read, and none when the seal's read already gave their `digest`)."""
    if digest is None:
        if not set(unit_columns) <= register.columns("units").keys():
            return []
        try:
            digest = _read_units_digest(register, unit_columns)
        except (TypeError, ValueError):  # cells no evalkit wrote (a blob, a mixed column)
            digest = None
    if digest == recorded_digest:
        return []
    return ["register: the stored units (IDs, strata, covariates) differ from those allocated"]


def _read_units_digest(register: Register, unit_columns: list[str]) -> str:
    """`units_digest` of the stored units, read through pandas as the manifest's was made."""
    ids = register.table("units", ["unit_id"])["unit_id"]
    if ids.is_monotonic_increasing:  # in ID order already: read and hash a column at a time
        return columns_digest((c, ids if c == "unit_id" else register.table("units", [c])[c])
                              for c in unit_columns)
    return units_digest(register.table("units", unit_columns), unit_columns)


def _stored_allocation(register: Register) -> pd.DataFrame:
    """The columns of the stored allocation that `compare_allocations` reads."""
    return register.table("allocation", [
        c for c in register.columns("allocation")
        if c in ("unit_id", "group", "assignment") or c.startswith("p_")])


def _log_verified(directory: Path, matches: bool, differences: list[str],
                  receipt_checked: bool) -> str:
    """Append the `verified` event when the register can be written; say which happened."""
    path = Path(directory) / REGISTER_FILE
    if not (os.access(path, os.W_OK) and os.access(directory, os.W_OK)):
        return "the run folder is read-only: the check was not logged in the register"
    Register.open(directory).append_event("verified", detail={
        "matches": matches, "differences": differences[:50], "receipt": receipt_checked})
    return "logged as a `verified` event in the register"
