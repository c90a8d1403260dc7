"""Benchmarks for the delivery stage (not tests): prints a table of wall-clock times.

Rows, on the national example (109 PDUs, ~18,750 staff), after one `assign` (not timed):
  1. `windows` (library: plan + write CSV, XLSX, calendars) and the whole CLI in a subprocess;
  2. `guidance` (library: guidance, 109 briefings x 2, contamination report) and its CLI;
  3. `publish` (library), when the module is present;
  4. the booking-windows workbook written by `fast_xlsx` against the obvious peer, openpyxl
     (write-only mode, the fastest it offers), in the same run.
Target: windows + guidance + publish under 5 s in all.

Run: .venv/bin/python bench/delivery.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evalkit.allocation.assign import run_assign  # noqa: E402
from evalkit.delivery.guidance import run_guidance  # noqa: E402
from evalkit.delivery.windows import run_windows  # noqa: E402
from evalkit.examples.roster import write_example  # noqa: E402
from evalkit.io.xlsx import write_xlsx  # noqa: E402

CLI = [sys.executable, "-c", "from evalkit.cli import app; app()"]


def timed(action: Callable[[], object], repeats: int = 3) -> float:
    """Best of `repeats` wall-clock runs, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def cli(*arguments: str) -> None:
    subprocess.run([*CLI, *arguments], check=True, capture_output=True)


def _hash_all_staff(run: Path) -> None:
    """What a staff-level page adds: one salted SHA-256 per staff member (~18,750)."""
    from evalkit.delivery.publish import staff_index
    from evalkit.register import Register

    register = Register.open(run)
    staff_index(register.design, register.table("staff_allocation"), "0" * 32)


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        paths = write_example(folder / "example")
        run = run_assign(ROOT / "configs" / "seeds2.toml", out=folder / "run",
                         pdus=paths["pdus"], staff=paths["staff"]).directory
        rows: list[tuple[str, float]] = []
        rows.append(("windows (library)", timed(lambda: run_windows(run))))
        rows.append(("windows (CLI, subprocess)", timed(lambda: cli("windows", str(run)), 1)))
        rows.append(("guidance (library)", timed(lambda: run_guidance(run))))
        rows.append(("guidance (CLI, subprocess)", timed(lambda: cli("guidance", str(run)), 1)))
        try:
            from evalkit.delivery.publish import publish
        except ImportError:
            publish = None
        if publish is not None:
            rows.append(("publish (library)", timed(lambda: publish(run))))
            rows.append(("publish (CLI, subprocess)", timed(lambda: cli("publish", str(run)), 1)))
            rows.append(("publish: hash every staff ID (staff-level extra)",
                         timed(lambda: _hash_all_staff(run))))
        total = sum(seconds for name, seconds in rows if "library" in name)
        plan, _ = run_windows(run)
        sheets = {"Booking windows": plan.rows, "By PDU": plan.by_pdu}
        rows.append(("workbook: fast_xlsx", timed(lambda: write_xlsx(folder / "a.xlsx",
                                                                         sheets))))
        rows.append(("workbook: openpyxl write-only (peer)",
                     timed(lambda: openpyxl_workbook(folder / "b.xlsx", sheets), 1)))
    width = max(len(name) for name, _ in rows)
    print(f"{'step':<{width}}  seconds")
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:7.2f}")
    verdict = "meets" if total < 5 else "MISSES"
    print(f"{'library total':<{width}}  {total:7.2f}  ({verdict} the 5 s target)")


def openpyxl_workbook(path: Path, sheets: dict) -> None:
    """The peer: the same sheets through openpyxl's streaming (write-only) workbook."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    for name, frame in sheets.items():
        sheet = workbook.create_sheet(name)
        sheet.append(list(frame.columns))
        for row in frame.itertuples(index=False):
            sheet.append([None if v is None or v != v else v for v in row])
    workbook.save(path)


if __name__ == "__main__":
    main()
