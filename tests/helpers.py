"""Small rosters and designs written into a temporary folder for tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SMALL_DESIGN = """
[trial]
name = "Small trial"
seed = 42
unit = "{unit}"
strata = {strata}
{extra_trial}

[inputs]
pdus = "pdus.csv"
staff = "staff.csv"

[[arms]]
name = "Early Adopter"
fixed = {fixed}
ratio = 0

[[arms]]
name = "Treatment"
ratio = {treatment_ratio}

[[arms]]
name = "Control"
ratio = 1
control = true

[[courses]]
name = "SEEDS2 for Practitioners"
grades = ["PO", "PSO", "PQiP"]
windows."Early Adopter" = ["2022-03-01", "2022-05-31"]
windows.Treatment = ["2022-06-01", "2022-09-30"]
windows.Control = ["2023-04-01", "2023-07-31"]
{extra}
"""


def small_pdus(n_regions: int = 3, per_region: int = 5) -> pd.DataFrame:
    rows = []
    for r in range(n_regions):
        for p in range(per_region):
            rows.append({"pdu_code": f"P{r}{p:02d}", "pdu_name": f"Town {r}-{p}",
                         "region": f"Region {r}", "headcount": 20 + 3 * p + r,
                         "caseload_per_practitioner": 30.0 + p * 1.5 - r})
    return pd.DataFrame(rows)


def small_staff(pdus: pd.DataFrame, per_pdu: int = 4) -> pd.DataFrame:
    grades = ["PO", "PSO", "SPO", "CA"]
    rows = []
    for code in pdus["pdu_code"]:
        for i in range(per_pdu):
            rows.append({"staff_id": f"{code}-S{i}", "name": f"Person {code} {i}",
                         "email": f"p.{code.lower()}.{i}@justice.gov.uk",
                         "grade": grades[i % len(grades)], "pdu_code": code,
                         "start_date": f"20{10 + i:02d}-01-01"})
    return pd.DataFrame(rows)


def write_trial(folder: Path, *, unit: str = "pdu", strata: str = '["region"]',
                fixed: str = '["Town 0-0"]', treatment_ratio: int = 1, extra: str = "",
                extra_trial: str = "", pdus: pd.DataFrame | None = None,
                staff: pd.DataFrame | None = None) -> Path:
    """Write pdus.csv, staff.csv and design.toml into `folder`; return the design path."""
    folder.mkdir(parents=True, exist_ok=True)
    pdus = small_pdus() if pdus is None else pdus
    staff = small_staff(pdus) if staff is None else staff
    pdus.to_csv(folder / "pdus.csv", index=False)
    staff.to_csv(folder / "staff.csv", index=False)
    design = folder / "design.toml"
    design.write_text(SMALL_DESIGN.format(unit=unit, strata=strata, fixed=fixed,
                                          treatment_ratio=treatment_ratio, extra=extra,
                                          extra_trial=extra_trial))
    return design
