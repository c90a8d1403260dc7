"""Benchmark: `monitor` on a 200,000-row synthetic export against the national example.

Target: the whole job (read, compare, write CSV/XLSX/HTML, store compliance) under 5 s.
Peer: reading the same CSV with plain `pandas.read_csv` (the floor for any approach).

Run: .venv/bin/python bench/monitor.py
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path

import pandas as pd

from evalkit.allocation.assign import run_assign
from evalkit.examples.bookings import make_example_bookings
from evalkit.examples.roster import write_example
from evalkit.monitoring.bookings import monitor_bookings, read_bookings
from evalkit.monitoring.report import run_monitor, write_monitoring
from evalkit.register import Register

ROWS = 200_000
AS_OF = dt.date(2023, 12, 31)
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "seeds2.toml"


def big_export(register: Register, rows: int) -> pd.DataFrame:
    """Synthetic exports for successive seeds, stacked until `rows` rows."""
    parts, total, seed = [], 0, 0
    while total < rows:
        part = make_example_bookings(register.design, register.table("staff_allocation"), seed)
        parts.append(part)
        total += len(part)
        seed += 1
    return pd.concat(parts, ignore_index=True).head(rows)


def timed(function, *args):
    start = time.perf_counter()
    value = function(*args)
    return value, time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        files = write_example(folder / "example")
        run = run_assign(CONFIG, out=folder / "run", pdus=files["pdus"],
                         staff=files["staff"]).directory
        register = Register.open(run)
        export_path = folder / "export.csv"
        big_export(register, ROWS).to_csv(export_path, index=False)
        staff = register.table("staff_allocation")

        _, pandas_read = timed(pd.read_csv, export_path)
        bookings, read = timed(read_bookings, export_path)
        monitoring, compare = timed(monitor_bookings, register.design, staff, bookings, AS_OF)
        _, write = timed(write_monitoring, folder / "out", monitoring)
        _, whole = timed(run_monitor, run, export_path, None, AS_OF)

    print(f"monitor: {ROWS:,} export rows, {len(staff):,} staff (national example)")
    print(f"{'step':<44}{'seconds':>10}")
    for label, seconds in [
        ("peer: pandas.read_csv (no validation)", pandas_read),
        ("read_bookings (validate statuses, dates)", read),
        ("monitor_bookings (compare)", compare),
        ("write_monitoring (CSV, XLSX, HTML + chart)", write),
        ("run_monitor: whole job (+ register)", whole),
    ]:
        print(f"{label:<44}{seconds:>10.2f}")
    verdict = "met" if whole < 5 else "MISSED"
    print(f"target < 5 s for the whole job: {verdict}")


if __name__ == "__main__":
    main()
