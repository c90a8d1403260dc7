"""Benchmarks for the allocation stage (not tests): each figure beside its floor or peer.

Rows (whole processes, run in turn with their floor; medians of --repeats runs):
  1. `evalkit assign` on the national example, vs the pandas floor: read the same rosters and
     write allocation.csv and staff_allocation.csv with the same columns (bench/floors.py).
  2. `evalkit assign`, N synthetic staff (default 1,000,000; unit = "staff", strata region x
     PDU; the roster is generated here with numpy), vs the same floor on the same files.
  3. The allocation step alone, vs a naive numpy permutation per stratum (no exactness, no
     national coordination of leftovers).
  4. Re-randomisation: candidate draws on the national PDUs with balance scored, vs the naive
     loop (scaled from fewer draws, no scoring).
  5. Start-up: `evalkit --help` vs `python -c "import pandas"`.
  Also `evalkit verify` of the N-staff folder, vs the same floor.
Targets (issue 13): assign <= 2x the floor at 1M staff and < 1 GB; national <= 1.5x;
`--help` <= 1.3x `import pandas`.

Run: .venv/bin/python bench/assign.py [--staff 1000000] [--repeats 3]   (--staff 5000000: the
     5M row, about 10 minutes)
     .venv/bin/python bench/assign.py --quick     (20,000 staff, one run each: a smoke run)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from measure import Row, evalkit_cli, in_process, paired, print_table  # noqa: E402

from evalkit.allocation.allocate import (  # noqa: E402
    AcceptanceRule,
    allocate,
    build_units,
    fixed_assignments,
    stratum_codes,
)
from evalkit.allocation.randomise import RandomStream, StratifiedDesign  # noqa: E402
from evalkit.allocation.roster import load_roster  # noqa: E402
from evalkit.examples.roster import write_example  # noqa: E402
from evalkit.trial.design import load_design  # noqa: E402

FLOORS = str(ROOT / "bench" / "floors.py")
CONFIG = ROOT / "configs" / "seeds2.toml"
STAFF_DESIGN = """
[trial]
name = "Staff-level benchmark"
seed = 7
unit = "staff"
strata = ["region", "pdu_code"]

[[arms]]
name = "Treatment"
ratio = 1

[[arms]]
name = "Control"
ratio = 1
control = true
"""


def synthetic_staff(pdus: pd.DataFrame, total: int) -> pd.DataFrame:
    """`total` staff spread at random over the PDUs, with numpy (no Python loop)."""
    rng = np.random.Generator(np.random.PCG64(1))
    codes = pdus["pdu_code"].to_numpy()[rng.integers(0, len(pdus), total)]
    grades = np.array(["PO", "PSO", "PQiP", "CA", "SPO"])[rng.integers(0, 5, total)]
    ids = np.char.add("B", np.char.zfill(np.arange(total).astype(str), 7))
    return pd.DataFrame({"staff_id": ids, "grade": grades, "pdu_code": codes})


def naive_stratified(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The obvious peer: per stratum, permute and alternate arms (no exactness guarantees)."""
    arms = np.empty(len(codes), dtype=np.int8)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    bounds = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1], True])
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        members = order[start:end][rng.permutation(end - start)]
        arms[members] = np.arange(end - start) % 2
    return arms


def assign_args(design: Path, pdus: Path, staff: Path, out: Path) -> list[str]:
    """The CLI call, with a joiner key outside the run folder where assign takes one."""
    shutil.rmtree(out, ignore_errors=True)
    args = [*evalkit_cli(), "assign", str(design), "--pdus", str(pdus), "--staff", str(staff),
            "--out", str(out)]
    if _takes_key_file():
        key = out.with_name(out.name + ".key")
        key.unlink(missing_ok=True)
        args += ["--key-file", str(key)]
    return args


def _takes_key_file() -> bool:
    help_text = subprocess.run([*evalkit_cli(), "assign", "--help"], capture_output=True,
                               text=True).stdout
    return "--key-file" in help_text


def verify_args(out: Path) -> list[str]:
    """`evalkit verify` of the folder the last `assign` row sealed (with its joiner key)."""
    args = [*evalkit_cli(), "verify", str(out)]
    key = out.with_name(out.name + ".key")
    return args + ["--key-file", str(key)] if key.exists() else args


def floor_args(pdus: Path, staff: Path, out: Path) -> list[str]:
    """The pandas floor of the same reading and writing."""
    shutil.rmtree(out, ignore_errors=True)
    return [sys.executable, FLOORS, "assign", str(pdus), str(staff), str(out)]


def cli_rows(scratch: Path, example: dict, staff_count: int, repeats: int) -> list[Row]:
    """Rows 1 and 2: the whole CLI beside the pandas floor."""
    national, floor = paired(
        lambda i: assign_args(CONFIG, example["pdus"], example["staff"], scratch / "national"),
        lambda i: floor_args(example["pdus"], example["staff"], scratch / "floor"), repeats)
    rows = [Row("assign, national example, CLI", national, "pandas read + write", floor,
                "<= 1.5x")]
    staff_path = scratch / "big_staff.csv"
    synthetic_staff(pd.read_csv(example["pdus"]), staff_count).to_csv(staff_path, index=False)
    design = scratch / "staff_design.toml"
    design.write_text(STAFF_DESIGN)
    big, floor = paired(
        lambda i: assign_args(design, example["pdus"], staff_path, scratch / "big"),
        lambda i: floor_args(example["pdus"], staff_path, scratch / "floor"), repeats)
    rows.append(Row(f"assign, {staff_count:,} staff, region x PDU, CLI", big,
                    "pandas read + write", floor, "<= 2x, < 1 GB"))
    checked, floor = paired(
        lambda i: verify_args(scratch / "big"),
        lambda i: floor_args(example["pdus"], staff_path, scratch / "floor"), repeats)
    rows.append(Row(f"verify, {staff_count:,} staff, CLI", checked, "pandas read + write",
                    floor, "<= 2x, memory as assign"))
    rows.append(allocation_row(design, example["pdus"], staff_path, staff_count))
    return rows


def allocation_row(design_path: Path, pdus: Path, staff: Path, count: int) -> Row:
    """Row 3: the allocation step in process, beside the naive numpy peer."""
    design = load_design(design_path)
    units = build_units(design, load_roster(design, pdus, staff))
    ours = in_process(lambda: allocate(design, units))
    codes, _ = stratum_codes(units, design.trial.strata)
    peer = in_process(lambda: naive_stratified(codes, np.random.default_rng(1)))
    return Row(f"  allocation step only ({count:,} staff)", ours, "naive numpy shuffle", peer)


def rerandomisation_row(example: dict, draws: int) -> Row:
    """Row 4: scoring `draws` candidates, beside the naive loop (scaled, unscored)."""
    design = load_design(CONFIG)
    design = design.model_copy(update={"randomisation": design.randomisation.model_copy(update={
        "method": "rerandomise", "balance_covariates": ["headcount", "caseload_per_practitioner"],
        "max_abs_smd": 0.05, "max_draws": draws})})
    units = build_units(design, load_roster(design, example["pdus"], example["staff"]))
    fixed = fixed_assignments(design, units)
    codes, _ = stratum_codes(units, design.trial.strata)
    in_pool = ~units["unit_id"].isin(fixed).to_numpy()
    order = np.flatnonzero(in_pool)[np.argsort(codes[in_pool], kind="stable")]
    pool = units.iloc[order]
    sizes = np.bincount(codes[order])
    scheme = StratifiedDesign(sizes[sizes > 0].tolist(), [1, 1])
    rule = AcceptanceRule(design, units, pool, fixed, design.randomisation.balance_covariates)
    stream = RandomStream(design.trial.seed)

    def score_all() -> None:
        for _ in range(max(draws // 1000, 1)):
            rule.scores(scheme.draw(1000, stream))

    ours = in_process(score_all)
    peer_draws = max(draws // 20, 1)
    rng = np.random.default_rng(1)
    peer = in_process(lambda: [naive_stratified(codes[order], rng) for _ in range(peer_draws)])
    scale = draws / peer_draws
    scaled = type(peer)(peer.wall * scale, peer.cpu * scale, peer.peak_mb)
    return Row(f"re-randomisation, {draws:,} candidates scored", ours,
               f"naive loop x{scale:.0f}, unscored", scaled, "< 5 s")


def startup_row(repeats: int) -> Row:
    """Row 5: what every command pays before it does anything."""
    ours, floor = paired(lambda i: [*evalkit_cli(), "--help"],
                         lambda i: [sys.executable, "-c", "import pandas"], max(repeats, 5))
    return Row("evalkit --help", ours, "python -c 'import pandas'", floor, "<= 1.3x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--staff", type=int, default=1_000_000)
    parser.add_argument("--draws", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="20,000 staff, 2,000 draws, one run each (a smoke run)")
    options = parser.parse_args()
    if options.quick:
        options.staff, options.draws, options.repeats = 20_000, 2_000, 1
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        example = write_example(scratch / "example")
        rows = cli_rows(scratch, example, options.staff, options.repeats)
        rows.append(rerandomisation_row(example, options.draws))
        rows.append(startup_row(options.repeats))
    print_table(f"assign benchmarks ({options.repeats} run(s) each, medians)", rows)


if __name__ == "__main__":
    main()
