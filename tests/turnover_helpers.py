"""Small sealed runs (a few staff per PDU) shared by the turnover and monitoring tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from evalkit.allocation.assign import run_assign

STAFF_PER_PDU = 4
SEEDS2_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "seeds2.toml"
STAFF_DESIGN = """
[trial]
name = "Staff-level test"
seed = 4242
unit = "staff"
strata = ["region"]

[[arms]]
name = "Treatment"
ratio = 1

[[arms]]
name = "Control"
ratio = 1
control = true

[[courses]]
name = "SEEDS2 for Practitioners"
grades = ["PO", "PSO", "PQiP"]
windows = { "Treatment" = ["2022-06-01", "2022-09-30"], "Control" = ["2023-04-01", "2023-07-31"] }

[[courses]]
name = "SEEDS2 for Managers"
grades = ["SPO"]
windows = { "Treatment" = ["2022-06-01", "2022-09-30"], "Control" = ["2023-04-01", "2023-07-31"] }
"""


def few_staff(example_files: dict[str, Path], folder: Path, per_pdu: int) -> Path:
    """The first `per_pdu` staff of every PDU, plus everyone's line managers."""
    staff = pd.read_csv(example_files["staff"], dtype=str, keep_default_na=False)
    chosen = staff.groupby("pdu_code").head(per_pdu)
    managers = staff[staff["staff_id"].isin(chosen["line_manager_id"])]
    path = folder / "staff.csv"
    pd.concat([chosen, managers]).drop_duplicates("staff_id").to_csv(path, index=False)
    return path


@pytest.fixture(scope="session", name="staff_level_run")
def staff_level_run_fixture(tmp_path_factory, example_files) -> Path:
    """A sealed staff-level allocation of a few staff from every PDU (fast to verify)."""
    folder = tmp_path_factory.mktemp("staff_level")
    design = folder / "design.toml"
    design.write_text(STAFF_DESIGN, encoding="utf-8")
    staff = few_staff(example_files, folder, STAFF_PER_PDU)
    return run_assign(design, out=folder / "run", pdus=example_files["pdus"],
                      staff=staff, key_file=folder / "joiner.key").directory


@pytest.fixture(scope="session", name="small_pdu_run")
def small_pdu_run_fixture(tmp_path_factory, example_files) -> Path:
    """The SEEDS2 PDU-level design sealed on a few staff per PDU (fast exports)."""
    folder = tmp_path_factory.mktemp("small_pdu")
    staff = few_staff(example_files, folder, 12)
    return run_assign(SEEDS2_CONFIG, out=folder / "run", pdus=example_files["pdus"],
                      staff=staff).directory
