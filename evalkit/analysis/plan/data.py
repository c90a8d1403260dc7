"""The analysis table of a sealed run: every allocated staff member joined to their outcomes.

Rows come from the register (`staff_allocation`, staff in a trial group only), so staff
without outcomes stay in as missing values (attrition is counted against the allocation).
Columns added: `stratum` (the design's strata, from the sealed `allocation` table),
outcomes and covariates from the outcomes file, numeric unit covariates from the register
`units` table, and `_compliance` (register table `compliance` written by `evalkit monitor`,
else the file's `completed`): completed in the group's window or, for Control, completed
before its own window (which opens after the outcome period: only early completion counts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evalkit.allocation.allocate import AcceptanceRule
from evalkit.analysis.run import blanks_to_missing, require_columns, to_numeric_column
from evalkit.errors import InputError, suggestion
from evalkit.io.files import read_table
from evalkit.register import Register
from evalkit.trial.analysis_plan import AnalysisSection
from evalkit.turnover.events import transfer_log

ARM, CLUSTER, STRATUM, COMPLIANCE = "group", "pdu_code", "stratum", "_compliance"
POD = "pod"   # the staff table's team column (three-level model)
STAFF = "staff_id"   # the unit of randomisation inference in staff-level designs
TRUE_TEXT = {"true": 1.0, "yes": 1.0, "1": 1.0, "false": 0.0, "no": 0.0, "0": 0.0}


@dataclass
class PlanData:
    """Analysis frames (staff and PDU level) and what the design says about the units."""

    staff: pd.DataFrame
    pdu: pd.DataFrame
    control: str
    non_randomised: list[str]
    fixed_clusters: list[str]
    allocated_clusters: pd.Series          # unit_id -> group (PDU designs)
    compliance_source: str | None
    notes: list[str] = field(default_factory=list)
    unit: str = "pdu"                       # the design's unit of allocation: pdu or staff


def load_plan_data(register: Register, outcomes_path: Path,
                   plan: AnalysisSection | None = None) -> PlanData:
    """Join the outcomes file to the register's allocation; validate the plan's columns."""
    design = register.design
    plan = plan or design.analysis
    outcomes = blanks_to_missing(read_table(outcomes_path))
    allocation = register.table("allocation")
    trial_groups = [arm.name for arm in design.arms]
    staff = register.table("staff_allocation")
    staff = staff[staff[ARM].isin(trial_groups)].reset_index(drop=True)
    notes: list[str] = []
    staff = as_allocated(register, staff, notes)
    unit_key = "pdu_code" if design.trial.unit == "pdu" else "staff_id"
    strata = [c for c in design.trial.strata if c in allocation.columns]
    stratum = (allocation.set_index("unit_id")[strata].astype(str).agg(" | ".join, axis=1)
               if strata else pd.Series("all", index=allocation["unit_id"]))
    staff[STRATUM] = staff[unit_key].map(stratum)
    staff = _join_outcomes(staff, outcomes, outcomes_path, plan, "staff", notes)
    pdu = _pdu_frame(allocation, stratum)
    if design.trial.unit == "pdu":
        pdu = _join_outcomes(pdu, outcomes, outcomes_path, plan, "pdu", notes)
    staff, pdu = _join_unit_covariates(register, staff, pdu, unit_key)
    _check_covariates(plan, staff, pdu, outcomes_path)
    staff, source = _add_compliance(register, staff, outcomes, outcomes_path)
    fixed = allocation.loc[allocation["assignment"] == "fixed", "unit_id"].astype(str).tolist()
    return PlanData(
        staff=staff, pdu=pdu, control=design.control_arm,
        non_randomised=[arm.name for arm in design.arms if arm.ratio == 0],
        fixed_clusters=fixed if design.trial.unit == "pdu" else [],
        allocated_clusters=allocation.set_index("unit_id")["group"].astype(str)
        if design.trial.unit == "pdu" else None,
        compliance_source=source, notes=notes, unit=design.trial.unit,
    )


def as_allocated(register: Register, staff: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """Intention to treat: everyone counts in the PDU they were allocated in (before any
    transfer) with their allocated group; transfers and joiners are noted as deviations."""
    moves = transfer_log(register)
    if len(moves):
        first = moves.drop_duplicates("staff_id", keep="first").set_index("staff_id")["from_pdu"]
        moved = staff["staff_id"].isin(first.index)
        staff = staff.copy()
        staff.loc[moved, "pdu_code"] = staff.loc[moved, "staff_id"].map(first)
        notes.append(f"deviation: {int(moved.sum())} staff transferred PDU after allocation; "
                     "analysed in the PDU and group they were allocated in (intention to treat)")
    joiners = register.table("joiners") if register.has_table("joiners") else None
    if joiners is not None and len(joiners):
        notes.append(f"deviation: {len(joiners)} new starter(s) enrolled after sealing; "
                     "analysed in the group they were given on joining")
    return staff


def _pdu_frame(allocation: pd.DataFrame, stratum: pd.Series) -> pd.DataFrame:
    """One row per allocated unit with its group and stratum (for PDU-level outcomes)."""
    return pd.DataFrame({CLUSTER: allocation["unit_id"].astype(str).to_numpy(),
                         ARM: allocation["group"].astype(str).to_numpy(),
                         STRATUM: stratum.reindex(allocation["unit_id"]).to_numpy()})


def _join_outcomes(frame: pd.DataFrame, outcomes: pd.DataFrame, path: Path,
                   plan: AnalysisSection, level: str, notes: list[str]) -> pd.DataFrame:
    """Left-join the outcome columns of one level on staff_id (staff) or pdu_code (pdu)."""
    names = [o.name for o in plan.outcomes if o.level == level]
    if not names:
        return frame
    key = "staff_id" if level == "staff" else "pdu_code"
    require_columns(outcomes, [key, *names], file=path)
    duplicated = outcomes[key].duplicated() & outcomes[key].notna()
    if duplicated.any():
        position = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise InputError(f"{key} {outcomes[key].iloc[position]!r} appears twice", file=path,
                         row=position + 2, column=key)
    own = [c for c in outcomes.columns if c != key and c not in frame.columns]
    values = outcomes[[key, *own]].copy()
    for column in names + [c for o in plan.outcomes for c in o.covariates if c in own]:
        values[column] = to_numeric_column(values[column], column, path)
    unmatched = int((~values[key].isin(frame[key])).sum())
    if unmatched:
        notes.append(f"{unmatched} row(s) of {path.name} have a {key} not allocated to a trial "
                     "group in the register; they are not analysed")
    return frame.merge(values, on=key, how="left", validate="one_to_one")


def _join_unit_covariates(register: Register, staff: pd.DataFrame, pdu: pd.DataFrame,
                          unit_key: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Numeric unit covariates (e.g. baseline_engagement) usable as model covariates."""
    units = register.table("units")
    numeric = [c for c in units.columns if pd.api.types.is_numeric_dtype(units[c])
               and c not in staff.columns and not c.startswith("p_")]
    table = units.set_index("unit_id")[numeric]
    staff = staff.join(table, on=unit_key)
    if unit_key == "pdu_code":
        pdu = pdu.join(table, on=CLUSTER)
    return staff, pdu


def _check_covariates(plan: AnalysisSection, staff: pd.DataFrame, pdu: pd.DataFrame,
                      path: Path) -> None:
    for outcome in plan.outcomes:
        frame = staff if outcome.level == "staff" else pdu
        for covariate in outcome.covariates:
            if covariate not in frame.columns:
                raise InputError(
                    f"covariate {covariate!r} of outcome {outcome.name!r} is neither in the "
                    "outcomes file nor a numeric unit column of the register."
                    + suggestion(covariate, map(str, frame.columns)), file=path)


def _add_compliance(register: Register, staff: pd.DataFrame, outcomes: pd.DataFrame,
                    path: Path) -> tuple[pd.DataFrame, str | None]:
    """`_compliance` from the register's compliance table, else the file's `completed`."""
    if register.has_table("compliance"):
        table = register.table("compliance")
        if {"staff_id", "completed_in_window"} <= set(table.columns):
            values = table.drop_duplicates("staff_id").set_index("staff_id")
            received = _as_indicator(values["completed_in_window"])
            source = "register table 'compliance' (completed_in_window"
            if "completed_before_window" in values.columns:
                # Control's own window opens after the outcome period: only an early
                # completion (contamination) means a Control member received the programme.
                early = _as_indicator(values["completed_before_window"])
                staff_control = staff.set_index("staff_id")[ARM] == register.design.control_arm
                control_ids = staff_control.index[staff_control.to_numpy()]
                received.loc[received.index.isin(control_ids)] = early
                source += "; Control: completed_before_window"
            staff[COMPLIANCE] = staff["staff_id"].map(received)
            return staff, source + ")"
    if "completed" in outcomes.columns and "staff_id" in outcomes.columns:
        values = outcomes.drop_duplicates("staff_id").set_index("staff_id")["completed"]
        staff[COMPLIANCE] = staff["staff_id"].map(_as_indicator(values, path))
        return staff, f"column 'completed' of {path.name}"
    return staff, None


def _as_indicator(values: pd.Series, path: Path | None = None) -> pd.Series:
    """0/1 from numbers or true/false/yes/no text."""
    text = values.astype("string").str.strip().str.lower()
    mapped = text.map(TRUE_TEXT)
    numeric = pd.to_numeric(values, errors="coerce")
    result = mapped.astype(float).fillna(numeric)
    bad = result.isna() & values.notna()
    if bad.any():
        raise InputError(f"expected 0/1 or true/false, found {values[bad].iloc[0]!r}",
                         file=path, column="completed")
    return result


def acceptance_rule(register: Register) -> Callable[[pd.Series], bool] | None:
    """The design's re-randomisation rule on (unit -> arm), or None for complete randomisation.

    Reuses allocation.AcceptanceRule so randomisation inference keeps exactly the
    allocations the design itself would have accepted.
    """
    design, manifest = register.design, register.manifest
    if manifest.get("method") != "rerandomise":
        return None
    units = register.table("units")
    allocation = register.table("allocation")
    sealed = allocation.set_index("unit_id")["group"].astype(str)
    fixed = sealed[allocation.set_index("unit_id")["assignment"] == "fixed"].to_dict()
    pool = units[~units["unit_id"].isin(fixed)]
    rule = AcceptanceRule(design, units, pool, fixed, list(manifest["balance_covariates"]))
    pool_ids = pd.Index(pool["unit_id"].astype(str))
    code_of = {name: code for code, name in enumerate(rule.arm_names)}
    sealed_codes = np.array([code_of[g] for g in sealed.reindex(pool_ids)], dtype=np.int8)
    cache: dict[str, Any] = {"index": None}

    def accept(candidate: pd.Series) -> bool:
        if cache["index"] is not candidate.index:  # RI passes the same index every call
            cache["index"] = candidate.index
            cache["positions"] = candidate.index.get_indexer(pool_ids)
        positions = cache["positions"]
        values = candidate.to_numpy()
        codes = sealed_codes.copy()
        found = np.flatnonzero(positions >= 0)
        codes[found] = [code_of[values[p]] for p in positions[found]]
        return bool(rule.scores(codes[None, :])[0] <= rule.limit)

    return accept
