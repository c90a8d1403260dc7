"""The `assign` job: roster -> sealed allocation in a register, plus its exports.

Everything is computed and validated before anything is written; the whole run folder (register,
exports, seal receipt) is built in a hidden staging folder beside it and renamed into place, so a
failure or a kill leaves no folder or a complete sealed one, never a partial one.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import evalkit
from evalkit.allocation.allocate import (
    Allocation,
    ProgressCallback,
    allocate,
    build_units,
    stratum_codes,
)
from evalkit.allocation.exports import export_allocation, table_csvs
from evalkit.allocation.joiner_sequence import joiner_meta, joiner_tables, missing_key
from evalkit.allocation.keys import load_or_create_key
from evalkit.allocation.roster import Roster, load_roster
from evalkit.errors import InputError, SealedError
from evalkit.io.files import sha256_file, write_text
from evalkit.io.parallel import in_worker, run_beside
from evalkit.io.runfolder import clean_dead_staging, kill_point, staging_prefix
from evalkit.register import (
    NOT_IN_TRIAL,
    PERSONAL_COLUMNS,
    RECEIPT_FILE,
    REGISTER_FILE,
    STAFF_COLUMNS,
    Register,
    is_sealed,
    now_utc,
    sha256_bytes_of,
    write_side_table,
)
from evalkit.trial.design import TrialDesign, load_design


@dataclass
class AssignResult:
    """What `assign` produced: the allocation, staff groups, manifest and file paths."""

    allocation: Allocation
    staff_allocation: pd.DataFrame
    manifest: dict[str, Any]
    directory: Path
    files: dict[str, Path]
    key_file: Path | None = None  # staff-level designs: the joiner key (outside the folder)
    key_created: bool = False


def input_paths(design_path: Path, design: TrialDesign, pdus: Path | None,
                staff: Path | None) -> tuple[Path | None, Path | None]:
    """Input files: command-line flags win, else [inputs] relative to the design file."""
    base = Path(design_path).parent

    def pick(flag: Path | None, configured: str | None) -> Path | None:
        if flag is not None:
            return Path(flag)
        return (base / configured) if configured else None

    return pick(pdus, design.inputs.pdus), pick(staff, design.inputs.staff)


def default_output(design: TrialDesign) -> Path:
    """outputs/<trial name as a slug>, used when --out is not given."""
    slug = "".join(c if c.isalnum() else "-" for c in design.trial.name.lower()).strip("-")
    return Path("outputs") / "-".join(filter(None, slug.split("-")))


def staff_allocation(design: TrialDesign, roster: Roster, allocation: Allocation) -> pd.DataFrame:
    """One row per staff member: their group (own, or their PDU's) and course by grade."""
    staff = _with_pdu_details(roster)
    table = allocation.table
    key = staff["staff_id"] if design.trial.unit == "staff" else staff["pdu_code"]
    if len(key) == len(table) and np.array_equal(key.to_numpy(), table["unit_id"].to_numpy()):
        staff["group"] = table["group"].to_numpy()  # one unit per row, in roster order
    else:
        staff["group"] = key.map(table.set_index("unit_id")["group"]).fillna(NOT_IN_TRIAL)
    courses = {g: design.course_name_for_grade(g) for g in staff["grade"].unique()}
    staff["course"] = staff["grade"].map(courses)
    staff = staff[STAFF_COLUMNS]
    if not staff["staff_id"].is_monotonic_increasing:
        staff = staff.sort_values("staff_id", kind="stable")
    return staff.reset_index(drop=True)


def _with_pdu_details(roster: Roster) -> pd.DataFrame:
    """The staff roster with each row's PDU name and region (a left join on pdu_code; every
    code is a known PDU, checked when the roster was read)."""
    details = roster.pdus[["pdu_code", "pdu_name", "region"]]
    if {"pdu_name", "region"} & set(roster.staff.columns) or \
            not details["pdu_code"].is_unique:
        return roster.staff.merge(details, on="pdu_code", how="left")
    codes = pd.Index(details["pdu_code"]).get_indexer(roster.staff["pdu_code"])
    if (codes < 0).any():
        return roster.staff.merge(details, on="pdu_code", how="left")
    return roster.staff.assign(**{  # object columns, as the join makes them
        column: pd.Series(details[column].to_numpy(dtype=object)[codes],
                          index=roster.staff.index, dtype=object)
        for column in ("pdu_name", "region")})


def units_digest(units: pd.DataFrame, columns: list[str]) -> str:
    """SHA-256 of the set of units in ID order, so reordering rows does not change it.

    Numbers are hashed as little-endian float64 and text as NUL-separated UTF-8, column by
    column, which is exact and the same on every machine.
    """
    canonical = units[columns]
    if not canonical["unit_id"].is_monotonic_increasing:
        canonical = canonical.sort_values("unit_id", kind="stable")
    return columns_digest((column, canonical[column]) for column in columns)


def columns_digest(columns: Iterable[tuple[str, pd.Series]]) -> str:
    """`units_digest` of columns already in unit-ID order, fed one at a time (so a caller
    can read each column only when it is hashed)."""
    digest = hashlib.sha256()
    for column, values in columns:
        digest.update(column.encode() + b"\x01")
        if pd.api.types.is_numeric_dtype(values):
            digest.update(values.to_numpy(dtype="<f8").tobytes())
        else:
            digest.update("\x00".join(values.astype(str).tolist()).encode())
    return digest.hexdigest()


def _file_record(path: Path | None, rows: int) -> dict[str, Any] | None:
    if path is None:
        return None
    return {"path": str(Path(path).resolve()), "sha256": sha256_file(path), "rows": rows}


def build_manifest(design_path: Path, design: TrialDesign, roster: Roster, units: pd.DataFrame,
                   allocation: Allocation) -> dict[str, Any]:
    """Everything needed to reproduce and audit the allocation."""
    table = allocation.table
    unit_columns = ["unit_id", *design.trial.strata, *allocation.covariates]
    return {
        "tool": f"evalkit {evalkit.__version__}",
        "algorithm": allocation.algorithm,
        "seed": design.trial.seed,
        "unit": design.trial.unit,
        "strata": design.trial.strata,
        "method": allocation.method,
        "draws_tried": allocation.draws_tried,
        "accepted_balance": allocation.accepted_balance,
        "probabilities": {"method": allocation.probability_method,
                          "draws": allocation.probability_draws,
                          "max_monte_carlo_se": allocation.probability_mc_se},
        "balance_covariates": allocation.covariates,
        "design_sha256": design.digest(),
        "config": {"path": str(Path(design_path).resolve()), "sha256": sha256_file(design_path)},
        "inputs": {"pdus": _file_record(roster.pdus_path, len(roster.pdus)),
                   "staff": _file_record(roster.staff_path, len(roster.staff))},
        "units_sha256": units_digest(units, unit_columns),
        **_counts_and_totals(table, design.trial.strata),
        "created_at": now_utc(),
        "environment": {"python": platform.python_version(), "numpy": np.__version__,
                        "pandas": pd.__version__},
    }


def stratum_group_counts(table: pd.DataFrame, strata: list[str]) -> dict[str, dict[str, int]]:
    """Units per stratum and group, every group under every stratum (0 where none), both in
    sorted order: counted on integer codes, not on a text key per unit."""
    return _counts_and_totals(table, strata)["counts"]


def _counts_and_totals(table: pd.DataFrame, strata: list[str]) -> dict[str, dict]:
    """The manifest's `counts` (see `stratum_group_counts`) and `totals` (units per group,
    in sorted order), from one count on integer codes."""
    codes, keys = stratum_codes(table, strata)
    group_codes, groups = pd.factorize(table["group"], sort=True)
    counts = np.bincount(codes * len(groups) + group_codes,
                         minlength=len(keys) * len(groups)).reshape(len(keys), len(groups))
    names = [str(group) for group in groups]
    return {"counts": {key: {name: int(n) for name, n in zip(names, row, strict=True)}
                       for key, row in zip(keys, counts, strict=True)},
            "totals": {name: int(n) for name, n in zip(names, counts.sum(axis=0),
                                                       strict=True)}}


def compute_assignment(design_path: Path, pdus: Path | None = None, staff: Path | None = None,
                       on_progress: ProgressCallback | None = None):
    """Load, validate and allocate without writing anything."""
    design = load_design(design_path)
    pdus_path, staff_path = input_paths(design_path, design, pdus, staff)
    roster = load_roster(design, pdus_path, staff_path)
    units = build_units(design, roster)
    allocation = allocate(design, units, on_progress)
    return design, roster, units, allocation


def run_assign(design_path: Path, out: Path | None = None, pdus: Path | None = None,
               staff: Path | None = None,
               on_progress: ProgressCallback | None = None,
               key_file: Path | None = None) -> AssignResult:
    """Allocate and seal: refuse if `out` already holds a sealed allocation.

    Staff-level designs need `key_file`: the secret behind the concealed joiner sequence,
    read if it exists, else created (mode 0600); it must lie outside `out`.
    """
    design = load_design(design_path)
    directory = Path(out) if out is not None else default_output(design)
    if directory.exists() and not directory.is_dir():
        raise InputError("--out is an existing file, not a folder; choose a new folder",
                         file=directory)
    if is_sealed(directory):
        raise SealedError(f"{directory} already holds a sealed allocation "
                          f"({REGISTER_FILE}); choose another --out folder")
    design, roster, units, allocation = compute_assignment(design_path, pdus, staff, on_progress)
    staff_table = staff_allocation(design, roster, allocation)
    key, created = None, False
    if design.trial.unit == "staff":
        if key_file is None:
            raise missing_key("assign")
        key, created = load_or_create_key(Path(key_file), directory)
    files, manifest = _write_outputs(
        directory, design, units, allocation, staff_table,
        lambda: build_manifest(design_path, design, roster, units, allocation), key)
    return AssignResult(allocation, staff_table, manifest, directory, files,
                        Path(key_file) if key is not None else None, created)


def register_units(design: TrialDesign, units: pd.DataFrame) -> pd.DataFrame:
    """The unit table as the register keeps it: for staff-level designs, without the personal
    details staff_allocation already holds (IDs, strata and covariates are what later stages
    and audits need)."""
    if design.trial.unit != "staff":
        return units
    return units.drop(columns=[c for c in PERSONAL_COLUMNS if c in units.columns])


def seal_receipt(manifest: dict[str, Any], design: TrialDesign, root_hash: str) -> str:
    """The short text to keep outside the run folder: proves later which seal this was."""
    totals = ", ".join(f"{g} {n}" for g, n in manifest["totals"].items())
    return (f"evalkit seal receipt\n"
            f"trial: {design.trial.name}\n"
            f"sealed at: {manifest['created_at']}\n"
            f"seed: {manifest['seed']}\n"
            f"units per group: {totals}\n"
            f"register root hash: {root_hash}\n\n"
            "Keep this receipt OUTSIDE the run folder (email it to the trial team, file it).\n"
            "Later, `evalkit verify RUN --receipt receipt.txt` proves the folder is this seal.\n")


# From this many staff or units, a second process writes the staff table (into a side
# file that the register then copies in) and the two large CSVs, while this one computes the
# joiner sequence and seals the register (when a second core is free): the same files, sooner.
BESIDE_ROWS = int(os.environ.get("EVALKIT_TEST_BESIDE_ROWS", 100_000))  # tests set it lower
SIDE_FILE = "staff_allocation.side.sqlite"


def _register_and_csvs(staging: Path,
                       sealed: Callable[[], tuple[dict[str, pd.DataFrame], dict[str, Any]]],
                       allocation: pd.DataFrame, staff: pd.DataFrame
                       ) -> tuple[dict[str, Path] | None, dict[str, str], Register]:
    """Seal the register from the (tables, meta) `sealed()` makes, plus the staff table; for
    large runs, with the staff table and `table_csvs` written beside it by a forked worker
    (which touches no database of this process's, and also hashes the CSVs it wrote: file
    name -> SHA-256). Small runs leave the CSVs to `export_allocation`."""
    path = staging / REGISTER_FILE
    if max(len(allocation), len(staff)) < BESIDE_ROWS:
        tables, meta = sealed()
        return None, {}, Register.create(path, {**tables, "staff_allocation": staff}, meta)

    def beside() -> tuple[dict[str, Path], dict[str, str]]:
        write_side_table(staging / SIDE_FILE, "staff_allocation", staff)
        kill_point("assign:beside" + (" (worker)" if in_worker() else ""))
        written = table_csvs(staging, allocation, staff)
        return written, {path.name: sha256_bytes_of(path) for path in written.values()}

    def seal() -> Register:
        kill_point("assign:sealing")
        tables, meta = sealed()
        return Register.create(path, tables, meta, copied_later=("staff_allocation",))

    (written, digests), register = run_beside(beside, seal)
    register.copy_table(staging / SIDE_FILE, "staff_allocation")
    return written, digests, register


def _write_outputs(directory: Path, design: TrialDesign, units: pd.DataFrame,
                   allocation: Allocation, staff_table: pd.DataFrame,
                   make_manifest: Callable[[], dict[str, Any]], key: bytes | None = None
                   ) -> tuple[dict[str, Path], dict[str, Any]]:
    """Build the whole run folder in staging, then move it into place (register last); the
    manifest is made while a worker writes the large files. (files, manifest)"""
    directory.parent.mkdir(parents=True, exist_ok=True)
    clean_dead_staging(directory.parent)
    staging = Path(tempfile.mkdtemp(prefix=staging_prefix(directory), dir=directory.parent))
    try:
        stored_units = register_units(design, units)
        written, digests, register = _register_and_csvs(staging, lambda: (
            {"units": stored_units, "allocation": allocation.table,
             **joiner_tables(design, allocation.table, key)},
            {"design": design.model_dump(mode="json"), "manifest": make_manifest(),
             **joiner_meta(design, key)}), allocation.table, staff_table)
        manifest = register.manifest  # as sealed
        kill_point("assign:registered")
        files = export_allocation(register, staging, written=written, stored={
            "allocation": allocation.table, "staff_allocation": staff_table,
            "units": stored_units})
        files["receipt"] = write_text(staging / RECEIPT_FILE,
                                      seal_receipt(manifest, design, register.root_hash()))
        register.record_artefacts(staging, list(files.values()), digests)
        kill_point("assign:staged")
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700: colleagues must read it
        _move_into_place(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = {key: directory / path.name for key, path in files.items()}
    files["register"] = directory / REGISTER_FILE
    return files, manifest


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _move_into_place(staging: Path, directory: Path) -> None:
    """Rename the staging folder to `directory`; into an existing folder, the register last
    and never over another register, so a sealed folder is always complete."""
    try:
        os.rename(staging, directory)  # absent or empty: one atomic step
        return
    except OSError:
        if not directory.is_dir():
            raise
    if is_sealed(directory):
        raise SealedError(f"{directory} was sealed by another `assign` meanwhile; "
                          "choose another --out folder")
    for path in sorted(staging.iterdir()):
        if path.name != REGISTER_FILE:
            os.replace(path, directory / path.name)
    kill_point("assign:moved-exports")
    try:
        os.link(staging / REGISTER_FILE, directory / REGISTER_FILE)  # fails if one is there
    except FileExistsError:
        raise SealedError(f"{directory} was sealed by another `assign` meanwhile; "
                          "choose another --out folder") from None
