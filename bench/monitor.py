"""Benchmark: `monitor` on a large synthetic export (default 200,000 rows) of the national example.

Rows (medians of --repeats runs, each beside its floor, taken in turn):
  1. `evalkit monitor` whole CLI vs the floor: pandas read_csv of the export and of
     staff_allocation.csv, a join on staff ID, one CSV written (bench/floors.py monitor).
     One process (the chart is SVG written from the arrays: no helper process, no
     matplotlib); the load average is printed beside the table.
  2. The library steps in process (the shared reader, read and validate, compare, write
     CSV/XLSX/HTML with the chart drawn in process) beside `pandas.read_csv` of the same export.
Target (issue 13): the whole CLI <= 1.5x the floor.

Run: .venv/bin/python bench/monitor.py [--rows 200000] [--repeats 3]
     .venv/bin/python bench/monitor.py --quick     (20,000 rows, one run: a smoke run)
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from measure import Row, evalkit_cli, in_process, paired, print_table  # noqa: E402

from evalkit.allocation.assign import run_assign  # noqa: E402
from evalkit.examples.bookings import make_example_bookings  # noqa: E402
from evalkit.examples.roster import write_example  # noqa: E402
from evalkit.io.files import read_table  # noqa: E402
from evalkit.monitoring.bookings import monitor_bookings, read_bookings  # noqa: E402
from evalkit.monitoring.report import write_monitoring  # noqa: E402
from evalkit.register import Register  # noqa: E402

AS_OF = dt.date(2023, 12, 31)
CONFIG = ROOT / "configs" / "seeds2.toml"
FLOORS = str(ROOT / "bench" / "floors.py")


def big_export(register: Register, rows: int) -> pd.DataFrame:
    """Synthetic exports for successive seeds, stacked until `rows` rows."""
    parts, total, seed = [], 0, 0
    staff = register.table("staff_allocation")
    while total < rows:
        part = make_example_bookings(register.design, staff, seed)
        parts.append(part)
        total += len(part)
        seed += 1
    return pd.concat(parts, ignore_index=True).head(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20,000 rows, one run")
    options = parser.parse_args()
    if options.quick:
        options.rows, options.repeats = 20_000, 1
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        files = write_example(folder / "example")
        run = run_assign(CONFIG, out=folder / "run", pdus=files["pdus"],
                         staff=files["staff"]).directory
        register = Register.open(run)
        export = folder / "export.csv"
        big_export(register, options.rows).to_csv(export, index=False)
        arguments = ["monitor", str(run), "--bookings", str(export), "--as-of",
                     AS_OF.isoformat()]
        floor_command = [sys.executable, FLOORS, "monitor", str(export),
                         str(run / "staff_allocation.csv"), str(folder / "floor")]
        cli, floor = paired(lambda i: [*evalkit_cli(), *arguments], lambda i: floor_command,
                            options.repeats)
        rows = [Row(f"monitor, {options.rows:,} export rows, CLI", cli,
                    "pandas read+join+write", floor, "<= 1.5x")]
        read_csv = in_process(lambda: pd.read_csv(export), options.repeats)
        staff = register.table("staff_allocation")
        bookings = read_bookings(export)
        monitoring = monitor_bookings(register.design, staff, bookings, AS_OF)
        for name, action in [
            ("  read_table (shared reader, evalkit/io)", lambda: read_table(export)),
            ("  read_bookings (read_table + validate)", lambda: read_bookings(export)),
            ("  monitor_bookings (compare)",
             lambda: monitor_bookings(register.design, staff, bookings, AS_OF)),
            ("  write_monitoring (CSV, XLSX, HTML)",
             lambda: write_monitoring(folder / "out", monitoring)),
        ]:
            rows.append(Row(name, in_process(action, options.repeats), "pandas.read_csv",
                            read_csv))
    print_table(f"monitor benchmarks ({options.repeats} run(s) each, medians)", rows)
    print(f"1-minute load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} "
          "cores (other processes share them: compare each row with its own floor)")


if __name__ == "__main__":
    main()
