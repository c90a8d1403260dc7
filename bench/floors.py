"""Floors for the benchmarks: the plain-pandas cost of the same input and output work.

Each floor is a whole process, run beside the evalkit command it is the floor of:
  assign:  read the PDU and staff rosters, write allocation.csv and staff_allocation.csv with the
           same columns and rows (groups by a numpy coin, no validation, register or checks).
  monitor: read the bookings export and the staff allocation, join them, write the joined CSV.
  register: read the staff allocation table from register.sqlite, write it as one CSV (the
           floor of windows, guidance and publish).
  import:  `import pandas` (what every command pays before doing anything).

Run: .venv/bin/python bench/floors.py assign PDUS STAFF OUT_DIR
     .venv/bin/python bench/floors.py monitor BOOKINGS STAFF_ALLOCATION OUT_DIR
     .venv/bin/python bench/floors.py register REGISTER_SQLITE OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path


def assign_floor(pdus_path: str, staff_path: str, out: str) -> None:
    """pandas read of the rosters and pandas write of the same two CSVs."""
    import numpy as np
    import pandas as pd

    pdus = pd.read_csv(pdus_path, dtype=str, keep_default_na=False)
    staff = pd.read_csv(staff_path, dtype=str, keep_default_na=False)
    staff = staff.merge(pdus[["pdu_code", "pdu_name", "region"]], on="pdu_code", how="left")
    arms = np.array(["Treatment", "Control"], dtype=object)
    staff["group"] = arms[np.random.default_rng(1).integers(0, 2, len(staff))]
    for column in ("name", "email", "pod", "line_manager_id", "office"):
        if column not in staff:
            staff[column] = ""
    staff["course"] = "none"
    Path(out).mkdir(parents=True, exist_ok=True)
    allocation = pd.DataFrame({"unit_id": staff["staff_id"], "name": staff["name"],
                               "region": staff["region"], "pdu_code": staff["pdu_code"],
                               "group": staff["group"], "assignment": "random",
                               "p_treatment": 0.5, "p_control": 0.5})
    allocation.to_csv(Path(out) / "allocation.csv", index=False)
    columns = ["staff_id", "name", "email", "grade", "pdu_code", "pdu_name", "region", "pod",
               "line_manager_id", "office", "group", "course"]
    staff[columns].to_csv(Path(out) / "staff_allocation.csv", index=False)


def monitor_floor(bookings_path: str, staff_path: str, out: str) -> None:
    """pandas read_csv of the export and the staff allocation, a join on staff ID, one CSV."""
    import pandas as pd

    bookings = pd.read_csv(bookings_path, dtype=str, keep_default_na=False)
    staff = pd.read_csv(staff_path, dtype=str, keep_default_na=False)
    joined = bookings.merge(staff, on="staff_id", how="left", suffixes=("", "_staff"))
    Path(out).mkdir(parents=True, exist_ok=True)
    joined.to_csv(Path(out) / "monitoring.csv", index=False)


def register_floor(register_path: str, out: str) -> None:
    """Read the staff allocation table from the register (SQLite) and write it as one CSV."""
    import sqlite3

    import pandas as pd

    with sqlite3.connect(register_path) as connection:
        staff = pd.read_sql("SELECT * FROM staff_allocation", connection)
    Path(out).mkdir(parents=True, exist_ok=True)
    staff.to_csv(Path(out) / "staff.csv", index=False)


if __name__ == "__main__":
    kind, *arguments = sys.argv[1:]
    if kind == "assign":
        assign_floor(*arguments)
    elif kind == "monitor":
        monitor_floor(*arguments)
    elif kind == "register":
        register_floor(*arguments)
    elif kind == "import":
        import pandas  # noqa: F401
    else:
        raise SystemExit(f"unknown floor {kind!r}; expected assign, monitor, register or import")
