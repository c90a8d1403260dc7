"""A small staff-level design over two regions of the shipped example, for delivery tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from evalkit.allocation.assign import run_assign

REGIONS = ("Wales", "Kent, Surrey and Sussex")

STAFF_LEVEL_DESIGN = """
[trial]
name = "Staff-level SEEDS2 pilot"
seed = 7
unit = "staff"
strata = ["region"]

[inputs]
pdus = "pdus.csv"
staff = "staff.csv"

[[arms]]
name = "Treatment"
ratio = 1

[[arms]]
name = "Control"
ratio = 1
control = true

[[courses]]
name = "SEEDS2 for Managers"
grades = ["SPO"]
windows = { "Treatment" = ["2022-06-01", "2022-09-30"], "Control" = ["2023-04-01", "2023-07-31"] }

[[courses]]
name = "SEEDS2 for Practitioners"
grades = ["PO", "PSO", "PQiP"]
windows = { "Treatment" = ["2022-06-01", "2022-09-30"], "Control" = ["2023-04-01", "2023-07-31"] }

[delivery]
templates = "templates"
"""


def staff_level_run(example_files: dict[str, Path], folder: Path) -> Path:
    """Write the two-region roster and design into `folder`, allocate staff, return the run."""
    folder.mkdir(parents=True, exist_ok=True)
    pdus = pd.read_csv(example_files["pdus"], dtype=str, keep_default_na=False)
    staff = pd.read_csv(example_files["staff"], dtype=str, keep_default_na=False)
    pdus = pdus[pdus["region"].isin(REGIONS)]
    staff = staff[staff["pdu_code"].isin(pdus["pdu_code"])]
    pdus.to_csv(folder / "pdus.csv", index=False)
    staff.to_csv(folder / "staff.csv", index=False)
    (folder / "templates").mkdir(exist_ok=True)
    design = folder / "design.toml"
    design.write_text(STAFF_LEVEL_DESIGN, encoding="utf-8")
    return run_assign(design, out=folder / "run", key_file=folder / "joiner.key").directory
