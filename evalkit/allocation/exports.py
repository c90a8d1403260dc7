"""Files regenerated from the register: CSV and XLSX tables, balance and the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from evalkit.allocation.about import workbook_about
from evalkit.allocation.balance import balance_table
from evalkit.io.files import write_csv, write_text
from evalkit.io.xlsx import write_workbook
from evalkit.register import Register

XLSX_ROW_LIMIT = 200_000  # beyond this a workbook is slow to write and to open: CSV only


def staff_group_counts(staff_allocation: pd.DataFrame) -> pd.Series:
    """Staff per group."""
    return staff_allocation.groupby("group").size()


def balance_from_register(register: Register, allocation: pd.DataFrame | None = None,
                          staff: pd.DataFrame | None = None,
                          units: pd.DataFrame | None = None) -> pd.DataFrame:
    """Balance table of the sealed allocation, recomputed from the register.

    Frames just written to the register may be passed in instead of being read back.
    """
    design, manifest = register.design, register.manifest
    allocation = register.table("allocation") if allocation is None else allocation
    staff = register.table("staff_allocation") if staff is None else staff
    covariates = manifest["balance_covariates"]
    columns = ["unit_id", *covariates]
    units = register.table("units", columns) if units is None else units[columns]
    merged = _with_covariates(allocation[["unit_id", "group"]], units, covariates)
    counts = staff_group_counts(staff) if len(staff) else None
    return balance_table(merged, covariates, [a.name for a in design.arms], design.control_arm,
                         counts)


def _with_covariates(allocation: pd.DataFrame, units: pd.DataFrame,
                     covariates: list[str]) -> pd.DataFrame:
    """allocation left-joined to the units' covariates; no join when the rows already align."""
    aligned = (len(allocation) == len(units) and not {"unit_id", "group"} & set(covariates)
               and np.array_equal(allocation["unit_id"].to_numpy(), units["unit_id"].to_numpy()))
    if not aligned:
        return allocation.merge(units, on="unit_id", how="left")
    merged = allocation.reset_index(drop=True)
    for column in covariates:
        merged[column] = units[column].to_numpy()
    return merged


def table_csvs(directory: Path, allocation: pd.DataFrame,
               staff: pd.DataFrame) -> dict[str, Path]:
    """Write allocation.csv and staff_allocation.csv (the two large exports)."""
    return {"allocation": write_csv(Path(directory) / "allocation.csv", allocation),
            "staff_allocation": write_csv(Path(directory) / "staff_allocation.csv", staff)}


def export_allocation(register: Register, directory: Path,
                      stored: dict[str, pd.DataFrame] | None = None,
                      written: dict[str, Path] | None = None) -> dict[str, Path]:
    """Write allocation.csv, staff_allocation.csv, allocation.xlsx, balance.csv, manifest.json.

    `stored` may pass the very frames just written to the register ("allocation",
    "staff_allocation", "units"; saves reading a large register back); the files are
    byte-identical either way (tested). `written`: what `table_csvs` already wrote from them.
    """
    directory = Path(directory)
    stored = stored or {}
    allocation = stored.get("allocation")
    allocation = register.table("allocation") if allocation is None else allocation
    staff = stored.get("staff_allocation")
    staff = register.table("staff_allocation") if staff is None else staff
    balance = balance_from_register(register, allocation, staff, stored.get("units"))
    paths = {
        **(written or table_csvs(directory, allocation, staff)),
        "balance": write_csv(directory / "balance.csv", balance),
        "manifest": write_text(directory / "manifest.json",
                               json.dumps(register.manifest, indent=2, sort_keys=True) + "\n"),
    }
    if max(len(allocation), len(staff)) <= XLSX_ROW_LIMIT:
        paths["xlsx"] = write_workbook(
            directory / "allocation.xlsx",
            {"allocation": allocation, "staff": staff, "balance": balance},
            about=workbook_about(register, "the sealed allocation: units, staff, balance"))
    register.append_event("exported", detail={"files": sorted(p.name for p in paths.values())})
    return paths
