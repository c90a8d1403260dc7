"""A tiny synthetic trial (12 PDUs in 2 regions, 3 staff each) and a subprocess runner, for the
kill, concurrency and tamper tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DESIGN = """
[trial]
name = "Reliability test"
seed = 777
unit = "pdu"
strata = ["region"]

[inputs]
pdus = "pdus.csv"
staff = "staff.csv"

[[arms]]
name = "Early Treatment"
ratio = 1

[[arms]]
name = "Control"
ratio = 1
control = true

[[courses]]
name = "Practitioners"
grades = ["PO", "PSO"]
windows = { "Early Treatment" = ["2022-06-01", "2022-09-30"], \
"Control" = ["2023-04-01", "2023-07-31"] }
"""


def make_trial(folder: Path) -> Path:
    """Write design.toml, pdus.csv and staff.csv; return the design path."""
    folder.mkdir(parents=True, exist_ok=True)
    pdus = ["pdu_code,pdu_name,region"]
    staff = ["staff_id,name,email,grade,pdu_code,pod,line_manager_id,office"]
    for index in range(12):
        code = f"P{index:02d}"
        pdus.append(f"{code},PDU number {index},{'North' if index < 6 else 'South'}")
        for person in range(3):
            sid = f"S{index:02d}{person}"
            staff.append(f"{sid},Person {sid},{sid.lower()}@example.org,"
                         f"{'PO' if person else 'PSO'},{code},,,")
    (folder / "pdus.csv").write_text("\n".join(pdus) + "\n", encoding="utf-8")
    (folder / "staff.csv").write_text("\n".join(staff) + "\n", encoding="utf-8")
    (folder / "joiners.csv").write_text(
        "staff_id,name,grade,pdu_code\nN001,New One,PO,P01\nN002,New Two,PSO,P07\n",
        encoding="utf-8")
    design = folder / "design.toml"
    design.write_text(DESIGN, encoding="utf-8")
    return design


def evalkit(*args: str, env: dict | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the real `evalkit` command line in a subprocess."""
    return subprocess.run([sys.executable, "-m", "evalkit", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "EVALKIT_LOCK_WAIT": "20", **(env or {})})


def popen(*args: str, env: dict | None = None) -> subprocess.Popen:
    """Start `evalkit` without waiting."""
    return subprocess.Popen([sys.executable, "-m", "evalkit", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "EVALKIT_LOCK_WAIT": "20", **(env or {})})
