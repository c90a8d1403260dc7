"""Benchmark for the power stage (not a test): prints the analytic call beside simulation timings.

Rows, all on the national example (`configs/seeds2.toml`, 108 PDUs, about 18,600 staff):
  1. Analytic MDES of every contrast from the design and roster (the `--config` call).
  2. Simulation of the exact design, 1,000 replicates, CR2 on staff: one process and both
     cores (target < 60 s on 2 cores); then CR2 and the mixed model together on both cores.
     Each row shows the simulated power, type I error and their Monte Carlo SE.
  3. `evalkit power --config ... --simulate 1000`, the whole CLI in a subprocess.

Run: .venv/bin/python bench/power.py [--replicates 1000] [--icc 0.05]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evalkit.examples.roster import write_example  # noqa: E402
from evalkit.power.analytic import Assumptions  # noqa: E402
from evalkit.power.job import SimulationRequest, power_from_design, simulate_design  # noqa: E402

CONFIG = ROOT / "configs" / "seeds2.toml"


def _timed(call):
    start = time.perf_counter()
    value = call()
    return time.perf_counter() - start, value


def main() -> None:
    """Time the analytic call, the simulation on 1 and 2 processes, and the whole CLI."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--icc", type=float, default=0.05)
    options = parser.parse_args()
    assumptions = Assumptions(icc=options.icc, r2_cluster=0.3, covariates=1)
    with tempfile.TemporaryDirectory() as folder:
        example = write_example(Path(folder) / "example")
        pdus, staff = example["pdus"], example["staff"]
        seconds, analytic = _timed(lambda: power_from_design(CONFIG, assumptions, pdus, staff))
        primary = next(r for r in analytic.rows if r["randomised"])
        rows = [("analytic MDES, every contrast (--config)", seconds,
                 f"{primary['contrast']}: MDES {primary['mdes']:.3f}, df {primary['df']:g}")]
        for analyses, workers in ((("cr2",), 1), (("cr2",), 2), (("mixed", "cr2"), 2)):
            request = SimulationRequest(replicates=options.replicates, workers=workers,
                                        analyses=analyses)
            seconds, report = _timed(lambda r=request: simulate_design(
                CONFIG, assumptions, r, pdus, staff))
            notes = [f"{c['analysis']}: power {c['power']:.3f} ({c['power_mc_se']:.3f}) vs "
                     f"analytic {c['analytic_power']:.3f}, type I {c['type_i_error']:.3f} "
                     f"({c['type_i_mc_se']:.3f})" for c in report.simulation["contrasts"]
                     if c["contrast"] == primary["contrast"]]
            rows.append((f"simulation, {options.replicates:,} replicates, "
                         f"{' + '.join(analyses)}, {workers} process(es)", seconds,
                         "; ".join(notes) + ("; target < 60 s" if analyses == ("cr2",) else "")))
        command = [sys.executable, "-m", "evalkit", "power", "--config", str(CONFIG),
                   "--pdus", str(pdus), "--staff", str(staff), "--icc", str(options.icc),
                   "--r2-cluster", "0.3", "--covariates", "1",
                   "--simulate", str(options.replicates), "--out", str(Path(folder) / "out")]
        seconds, _ = _timed(lambda: subprocess.run(command, check=True, capture_output=True))
        rows.append((f"evalkit power --simulate {options.replicates}, whole CLI", seconds, ""))
    width = max(len(r[0]) for r in rows)
    print(f"{'case':<{width}}  {'seconds':>8}  result / target")
    for name, seconds, note in rows:
        print(f"{name:<{width}}  {seconds:8.2f}  {note}")


if __name__ == "__main__":
    main()
