"""Files regenerated from the register: CSV and XLSX tables, balance and the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from evalkit.balance import balance_table
from evalkit.files import write_csv, write_text, write_xlsx
from evalkit.register import Register


def staff_group_counts(staff_allocation: pd.DataFrame) -> pd.Series:
    return staff_allocation.groupby("group").size()


def balance_from_register(register: Register) -> pd.DataFrame:
    """Balance table of the sealed allocation, recomputed from the register."""
    design, manifest = register.design, register.manifest
    allocation = register.table("allocation")
    units = register.table("units")
    covariates = manifest["balance_covariates"]
    merged = allocation[["unit_id", "group"]].merge(units, on="unit_id", how="left")
    staff = register.table("staff_allocation")
    counts = staff_group_counts(staff) if len(staff) else None
    return balance_table(merged, covariates, [a.name for a in design.arms], design.control_arm,
                         counts)


def export_allocation(register: Register, directory: Path) -> dict[str, Path]:
    """Write allocation.csv, staff_allocation.csv, allocation.xlsx, balance.csv, manifest.json."""
    directory = Path(directory)
    allocation = register.table("allocation")
    staff = register.table("staff_allocation")
    balance = balance_from_register(register)
    paths = {
        "allocation": write_csv(directory / "allocation.csv", allocation),
        "staff_allocation": write_csv(directory / "staff_allocation.csv", staff),
        "balance": write_csv(directory / "balance.csv", balance),
        "xlsx": write_xlsx(directory / "allocation.xlsx",
                           {"allocation": allocation, "staff": staff, "balance": balance}),
        "manifest": write_text(directory / "manifest.json",
                               json.dumps(register.manifest, indent=2, sort_keys=True) + "\n"),
    }
    register.append_event("exported", detail={"files": sorted(p.name for p in paths.values())})
    return paths
