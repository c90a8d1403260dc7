"""Pinned digests of assign's outputs: speed work must not change a single byte.

The digests were computed by the code before the allocation stage was optimised (issue 13),
by running `python tests/test_output_digests.py`; a change here means results changed.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalkit.allocation.assign import run_assign
from evalkit.examples.roster import write_example

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT / "tests"))
from helpers import write_trial  # noqa: E402

SEEDS2_CONFIG = PROJECT_ROOT / "configs" / "seeds2.toml"
FILES = ("allocation.csv", "staff_allocation.csv", "balance.csv")
# Fields of manifest.json that name this run (paths, time, versions), not the allocation.
RUN_FIELDS = ("created_at", "config", "inputs", "environment", "tool")

STAFF_DESIGN = """
[trial]
name = "Staff-level digest"
seed = 7
unit = "staff"
strata = ["region", "pdu_code"]

[[arms]]
name = "Treatment"
ratio = 2

[[arms]]
name = "Control"
ratio = 1
control = true
"""

PINNED = {
    "national": {
        "allocation.csv": "9b05e17c6cf81ff3fa99deac9e36f775398ee9a916403b4eb0842047c6d7d383",
        "staff_allocation.csv": "a603c0aa30cb389129c0337ae4d9f2570a3f26077a017e0159d6978d715494c8",
        "balance.csv": "d97688c482bea7a2233cee10471da60dcde1d915b2d68c8040616379acce02f8",
        "manifest": "9b74dde854b11f5ace83ae2fcb638f31a11b15d41b025a91d13a23389640527a"},
    "rerandomised": {
        "allocation.csv": "eb80cd20cf54fdd690d8293a061b938372d780a8157f6ebc2ca5aa41c5126bda",
        "staff_allocation.csv": "a40a01408b5e86da691afb283bb13843ab8292d1d2245d123ff1a5717502f4af",
        "balance.csv": "98bcb77c14d808017ecc55e7aaa47609051992af0616098cf056a96dabcdd536",
        "manifest": "c26ce4adc0613441b958441e40a77071ada69a44de28d8ff322d0dae7ace0126"},
    "staff_50k": {
        "allocation.csv": "643c523744c2b250c742a01eacfe30dc73a68ae0c32ff0e98d61480d7676d8c8",
        "staff_allocation.csv": "ed4efc9e7dccfde5026564497d4cd3bd6f986d732ccf22459930d1c05a9d7ca5",
        "balance.csv": "f5f3f03c163c48e562630fd2f2527e88733e3928ca8ece8649c11dc9e28b968b",
        "manifest": "2fede39c0fc3023f8f478c3e0968040fa02b048870f8dd51aed91722d3a77485"},
}


def synthetic_staff(pdus: pd.DataFrame, total: int) -> pd.DataFrame:
    """A staff roster of `total` people over the example's PDUs, with formula-like names."""
    rng = np.random.Generator(np.random.PCG64(11))
    codes = pdus["pdu_code"].to_numpy()[rng.integers(0, len(pdus), total)]
    grades = np.array(["PO", "PSO", "PQiP", "CA", "SPO"])[rng.integers(0, 5, total)]
    prefixes = np.array(["", "", "", "=", "-", "+", "@"])[rng.integers(0, 7, total)]
    order = rng.permutation(total)
    return pd.DataFrame({"staff_id": [f"S{i:06d}" for i in order], "grade": grades,
                         "pdu_code": codes,
                         "name": [f"{p}Person {i}" for p, i in zip(prefixes, order, strict=True)],
                         "start_date": [f"20{10 + i % 12:02d}-0{1 + i % 9}-15" for i in order]})


def output_digests(directory: Path) -> dict[str, str]:
    """SHA-256 of each export, and of the manifest without its run-specific fields."""
    digests = {name: hashlib.sha256((directory / name).read_bytes()).hexdigest()
               for name in FILES}
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    kept = {k: v for k, v in manifest.items() if k not in RUN_FIELDS}
    digests["manifest"] = hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()
    return digests


def _joiner_key(folder: Path) -> dict[str, Path]:
    """A joiner key outside the run folder, where assign takes one (staff-level designs)."""
    if "key_file" in inspect.signature(run_assign).parameters:
        return {"key_file": folder / "joiner.key"}
    return {}


def run_case(case: str, folder: Path) -> dict[str, str]:
    """Run one pinned case into `folder` and return its digests."""
    if case == "national":
        example = write_example(folder / "example")
        run_assign(SEEDS2_CONFIG, out=folder / "run", pdus=example["pdus"],
                   staff=example["staff"])
    elif case == "staff_50k":
        example = write_example(folder / "example")
        pdus = pd.read_csv(example["pdus"], dtype=str, keep_default_na=False)
        synthetic_staff(pdus, 50_000).to_csv(folder / "staff.csv", index=False)
        (folder / "design.toml").write_text(STAFF_DESIGN)
        run_assign(folder / "design.toml", out=folder / "run", pdus=example["pdus"],
                   staff=folder / "staff.csv", key_file=folder / "joiner.key")
    else:
        design = write_trial(folder, extra_trial="", extra=(
            "[randomisation]\nmethod = \"rerandomise\"\n"
            "balance_covariates = [\"headcount\", \"caseload_per_practitioner\"]\n"
            "max_abs_smd = 0.25\nmax_draws = 5000\nprobability_draws = 2000\n"))
        run_assign(design, out=folder / "run")
    return output_digests(folder / "run")


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(PINNED))
def test_outputs_match_the_pinned_digests(case: str, tmp_path: Path) -> None:
    assert run_case(case, tmp_path) == PINNED[case]


if __name__ == "__main__":
    import tempfile

    for name in sorted(PINNED):
        with tempfile.TemporaryDirectory() as scratch:
            print(f"    {name!r}: {run_case(name, Path(scratch))!r},")
