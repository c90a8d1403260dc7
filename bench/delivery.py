"""Benchmarks for the delivery stage (not tests): each figure beside its floor or peer.

On the national example (109 PDUs, ~18,750 staff), after one `assign` (not timed):
  1. `windows`, `guidance` and `publish`, whole CLI, each beside the floor measured in turn:
     read the staff allocation table from register.sqlite and write one CSV (bench/floors.py);
  2. the same three as library calls, and hashing every staff ID (the staff-level extra);
  3. the booking-windows workbook by evalkit's streaming writer beside openpyxl write-only.
Targets (issue 13): each CLI <= 1.5x the floor.

Run: .venv/bin/python bench/delivery.py [--repeats 3] [--no-hashing]
     .venv/bin/python bench/delivery.py --quick     (one run each: a smoke run)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from measure import Row, evalkit_cli, in_process, paired, print_table, run_process  # noqa: E402

FLOORS = str(ROOT / "bench" / "floors.py")
# evalkit (pandas) is imported only after the CLI rows: a child's peak memory counts from the
# size of the process it was forked from, so the CLI rows are run from a small process.
MAKE_EXAMPLE = ("import sys; from pathlib import Path; from evalkit.examples.roster import "
                "write_example; write_example(Path(sys.argv[1]))")


def _hash_all_staff(run: Path) -> None:
    """What a staff-level page adds: a lookup code and its hash per staff member (~18,750)."""
    from evalkit.delivery.publish import lookup_codes_for, staff_index
    from evalkit.register import Register

    register = Register.open(run)
    staff = register.table("staff_allocation")
    staff_index(register.design, staff, lookup_codes_for(staff["staff_id"]))


def cli_rows(run: Path, folder: Path, commands: list[str], repeats: int) -> list[Row]:
    """Each command's whole CLI beside the register floor, taken in turn."""
    rows = []
    for command in commands:
        ours, floor = paired(
            lambda i, command=command: [*evalkit_cli(), command, str(run)],
            lambda i: [sys.executable, FLOORS, "register", str(run / "register.sqlite"),
                       str(folder / "floor")], repeats)
        rows.append(Row(f"{command}, national, CLI", ours, "read register + write CSV", floor,
                        "<= 1.5x"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one run each")
    parser.add_argument("--no-hashing", action="store_true",
                        help="leave out the library publish rows (hashing every lookup code "
                             "takes minutes)")
    options = parser.parse_args()
    repeats = 1 if options.quick else options.repeats
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        run = folder / "run"
        run_process([sys.executable, "-c", MAKE_EXAMPLE, str(folder / "example")])
        run_process([*evalkit_cli(), "assign", str(ROOT / "configs" / "seeds2.toml"),
                     "--pdus", str(folder / "example" / "pdus.csv"),
                     "--staff", str(folder / "example" / "staff.csv"), "--out", str(run)])
        rows = cli_rows(run, folder, ["windows", "guidance", "publish"], repeats)
        rows += library_rows(run, repeats, slow=not (options.quick or options.no_hashing))
        from evalkit.delivery.windows import run_windows
        from evalkit.io.xlsx import write_xlsx

        plan, _ = run_windows(run)
        sheets = {"Booking windows": plan.rows, "By PDU": plan.by_pdu}
        ours = in_process(lambda: write_xlsx(folder / "a.xlsx", sheets), repeats)
        peer = in_process(lambda: openpyxl_workbook(folder / "b.xlsx", sheets), 1)
        rows.append(Row("windows workbook: evalkit writer", ours, "openpyxl write-only", peer))
    print_table(f"delivery benchmarks ({repeats} run(s) each, medians)", rows)


def library_rows(run: Path, repeats: int, slow: bool) -> list[Row]:
    """The same work as library calls in this process (publish and hashing only when `slow`)."""
    from evalkit.delivery.guidance import run_guidance
    from evalkit.delivery.publish import publish
    from evalkit.delivery.windows import run_windows

    library = [("windows (library)", lambda: run_windows(run)),
               ("guidance (library)", lambda: run_guidance(run))]
    if slow:
        library += [("publish (library)", lambda: publish(run)),
                    ("publish: hash every staff ID", lambda: _hash_all_staff(run))]
    return [Row(name, in_process(action, repeats)) for name, action in library]


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
