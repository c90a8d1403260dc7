"""The real design as power sees it: PDUs per stratum and arm, their sizes, the contrasts.

One row per PDU in the trial (after exclusions) with its stratum, its staff count and its
share in each arm: 1 or 0 for fixed units and drawn allocations, the ratio share r_a / R
for units still to be randomised (the expected design at protocol). For staff-level designs
the shares are the PDU's staff in each arm.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit.allocation.allocate import build_units, fixed_assignments, stratum_keys
from evalkit.allocation.assign import input_paths
from evalkit.allocation.roster import Roster, load_roster
from evalkit.errors import InputError
from evalkit.power.analytic import Arms, Assumptions, Model, PowerResult, analyse
from evalkit.register import Register
from evalkit.trial.design import TrialDesign, load_design


@dataclass(frozen=True)
class DesignContrast:
    """One arm against control, with the clusters of both arms per block."""

    arm: str
    control: str
    randomised: bool
    model: Model
    arms: Arms
    size_cv: float
    level: str  # "as designed" or "alternative" (the other unit of randomisation)


def cluster_table(design: TrialDesign, roster: Roster,
                  allocation: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per PDU in the trial: pdu_code, stratum, size, fixed and a share per arm."""
    units = build_units(design, roster)
    arms = [arm.name for arm in design.arms]
    groups = _unit_shares(design, units, allocation)
    groups["fixed"] = units["unit_id"].isin(fixed_assignments(design, units)).to_numpy()
    if design.trial.unit == "pdu":
        table = units[["unit_id"]].rename(columns={"unit_id": "pdu_code"}).assign(
            stratum=stratum_keys(units, design.trial.strata).to_numpy())
        table = pd.concat([table.reset_index(drop=True), groups.reset_index(drop=True)], axis=1)
        sizes = roster.staff.groupby("pdu_code").size()
        table["size"] = table["pdu_code"].map(sizes).fillna(0).astype(float)
        return table[["pdu_code", "stratum", "size", "fixed", *arms]]
    staff = pd.concat([units[["pdu_code"]].reset_index(drop=True),
                       groups.reset_index(drop=True)], axis=1)
    staff["stratum"] = stratum_keys(units, design.trial.strata).to_numpy()
    table = staff.groupby("pdu_code", sort=True).agg(
        stratum=("stratum", "first"), size=("pdu_code", "size"),
        fixed=("fixed", "all"), **{arm: (arm, "sum") for arm in arms}).reset_index()
    for arm in arms:
        table[arm] = table[arm] / table["size"]
    table["size"] = table["size"].astype(float)
    return table[["pdu_code", "stratum", "size", "fixed", *arms]]


def register_cluster_table(register: Register) -> pd.DataFrame:
    """The cluster table of a sealed allocation, from the register alone (what was drawn)."""
    design = register.design
    allocation = register.table("allocation")
    staff = register.table("staff_allocation", ["staff_id", "pdu_code", "group"])
    arms = [arm.name for arm in design.arms]
    frame = allocation.assign(stratum=stratum_keys(allocation, design.trial.strata).to_numpy(),
                              fixed=allocation["assignment"] == "fixed")
    for arm in arms:
        frame[arm] = (frame["group"] == arm).astype(float)
    if design.trial.unit == "pdu":
        sizes = staff[staff["pdu_code"].isin(frame["unit_id"])].groupby("pdu_code").size()
        frame = frame.rename(columns={"unit_id": "pdu_code"})
        frame["size"] = frame["pdu_code"].map(sizes).fillna(0).astype(float)
        return frame[["pdu_code", "stratum", "size", "fixed", *arms]]
    frame["pdu_code"] = frame["unit_id"].map(staff.set_index("staff_id")["pdu_code"])
    table = frame.groupby("pdu_code", sort=True).agg(
        stratum=("stratum", "first"), size=("pdu_code", "size"), fixed=("fixed", "all"),
        **{arm: (arm, "sum") for arm in arms}).reset_index()
    for arm in arms:
        table[arm] = table[arm] / table["size"]
    table["size"] = table["size"].astype(float)
    return table[["pdu_code", "stratum", "size", "fixed", *arms]]


def _unit_shares(design: TrialDesign, units: pd.DataFrame,
                 allocation: pd.DataFrame | None) -> pd.DataFrame:
    """Each unit's share in each arm: drawn (0/1) or expected (fixed 0/1, ratio share)."""
    arms = [arm.name for arm in design.arms]
    if allocation is not None:
        drawn = units["unit_id"].map(allocation.set_index("unit_id")["group"])
        return pd.DataFrame({arm: (drawn == arm).astype(float).to_numpy() for arm in arms})
    fixed = units["unit_id"].map(fixed_assignments(design, units))
    total = sum(arm.ratio for arm in design.arms)
    shares = {}
    for arm in design.arms:
        expected = np.where(fixed.isna(), arm.ratio / total, 0.0)
        shares[arm.name] = np.where(fixed == arm.name, 1.0, expected)
    return pd.DataFrame(shares)


def design_contrasts(design: TrialDesign, table: pd.DataFrame) -> list[DesignContrast]:
    """Each arm vs control, as designed and under the other unit of randomisation."""
    control = design.control_arm
    randomised = {arm.name for arm in design.randomised_arms}
    contrasts = []
    present = [a.name for a in design.arms if a.name != control and table[a.name].sum() > 0]
    for arm in present:
        is_random = arm in randomised
        cluster_model: Model = "bcra3f2" if design.trial.strata else "cra2"
        levels = [("pdu", cluster_model), ("staff", "bira2f1")]
        if design.trial.unit == "staff":
            levels.reverse()
        for index, (unit, model) in enumerate(levels):
            if index == 1 and not is_random:
                continue  # a purposive arm has no randomised alternative
            level = "as designed" if index == 0 else "alternative"
            if unit == "pdu":
                built = _cluster_arms(table, arm, control)
            elif design.trial.unit == "pdu":
                built = _staff_arms(_as_if_staff_randomised(design, table), arm, control)
            else:
                built = _staff_arms(_by_stratum(table, arms_of(design)), arm, control)
            contrasts.append(DesignContrast(arm, control, is_random, model, built[0],
                                            built[1], level))
    return contrasts


def _cluster_arms(table: pd.DataFrame, arm: str, control: str) -> tuple[Arms, float]:
    """PDUs of the two arms per stratum; strata missing either arm do not inform the contrast."""
    by_stratum = table.groupby("stratum", sort=True)[[arm, control]].sum()
    by_stratum = by_stratum[(by_stratum[arm] > 0) & (by_stratum[control] > 0)]
    in_blocks = table[table["stratum"].isin(by_stratum.index)]
    involved = in_blocks[(in_blocks[arm] + in_blocks[control]) > 0]
    sizes = involved["size"].to_numpy(float)
    if len(sizes) == 0 or sizes.mean() == 0:
        raise InputError(f"no staff in the PDUs of {arm!r} and {control!r}; power needs the "
                         "staff roster (set [inputs] staff or pass --staff)")
    arms = Arms(tuple(by_stratum[arm]), tuple(by_stratum[control]), float(sizes.mean()),
                tuple(f"stratum {s!r}" for s in by_stratum.index))
    return arms, float(sizes.std() / sizes.mean())


def _staff_arms(table: pd.DataFrame, arm: str, control: str) -> tuple[Arms, float]:
    """Staff of the two arms per block (rows of `table`); blocks missing an arm are left out."""
    treated, untreated = table["size"] * table[arm], table["size"] * table[control]
    kept = (treated > 0) & (untreated > 0)
    arms = Arms(tuple(treated[kept]), tuple(untreated[kept]), 1.0,
                tuple(f"block {c!r}" for c in table.loc[kept, "pdu_code"]))
    return arms, 0.0


def arms_of(design: TrialDesign) -> list[str]:
    """Arm names in design order."""
    return [arm.name for arm in design.arms]


def _by_stratum(table: pd.DataFrame, arms: list[str]) -> pd.DataFrame:
    """A staff-level design's blocks are its strata: staff of each arm summed per stratum."""
    staff = table[arms].multiply(table["size"], axis=0).assign(size=table["size"],
                                                               stratum=table["stratum"])
    grouped = staff.groupby("stratum", sort=True).sum().reset_index()
    shares = grouped[arms].divide(grouped["size"], axis=0)
    return pd.concat([grouped[["stratum", "size"]], shares], axis=1).rename(
        columns={"stratum": "pdu_code"})


def _as_if_staff_randomised(design: TrialDesign, table: pd.DataFrame) -> pd.DataFrame:
    """A PDU design's alternative: the randomised PDUs' staff split by ratio within each PDU."""
    total = sum(arm.ratio for arm in design.arms)
    alternative = table[~table["fixed"]].copy()
    for arm in design.arms:
        alternative[arm.name] = arm.ratio / total
    return alternative


def load_design_inputs(design_path: Path, pdus: Path | None = None,
                       staff: Path | None = None) -> tuple[TrialDesign, Roster]:
    """The design and its roster, from the design's [inputs] or the given files."""
    design = load_design(design_path)
    pdus_path, staff_path = input_paths(design_path, design, pdus, staff)
    return design, load_roster(design, pdus_path, staff_path)


def contrast_assumptions(assumptions: Assumptions, contrast: DesignContrast,
                         contrasts: list[DesignContrast]) -> Assumptions:
    """The contrast's own size CV, and the family size: at least one per arm vs control."""
    arm_count = len({c.arm for c in contrasts})
    return replace(assumptions, size_cv=contrast.size_cv,
                   contrasts=max(assumptions.contrasts, arm_count))


def contrast_power(contrasts: list[DesignContrast], assumptions: Assumptions,
                   effect: float | None = None
                   ) -> tuple[list[tuple[DesignContrast, PowerResult]], list[str]]:
    """The analytic answer for every contrast, and notes on purposive ones too small to test.

    A randomised contrast that cannot be computed (e.g. a stratum with one PDU) is an error.
    """
    results, notes = [], []
    for contrast in contrasts:
        own = contrast_assumptions(assumptions, contrast, contrasts)
        try:
            results.append((contrast, analyse(contrast.model, contrast.arms, own, effect)))
        except InputError as error:
            if contrast.randomised:
                raise
            notes.append(f"{contrast.arm} vs {contrast.control} (purposive) not computed: "
                         f"{error}")
    return results, notes
