"""Analysis survives real turnover: after a cross-group transfer and a joiner, `analyse
--register` runs by intention to treat (arm names with spaces included) and reports both."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from reliability_helpers import DESIGN, make_trial
from typer.testing import CliRunner

from evalkit.allocation.assign import run_assign
from evalkit.cli import app

runner = CliRunner()
PLAN = """
[analysis]
models = { continuous = ["cr2"] }

[[analysis.outcomes]]
name = "score"
type = "continuous"
primary = true
"""


def test_analyse_after_a_cross_group_transfer_counts_people_as_allocated(tmp_path):
    design = make_trial(tmp_path)
    design.write_text(DESIGN + PLAN, encoding="utf-8")
    run = run_assign(design, out=tmp_path / "run").directory
    groups = pd.read_csv(run / "allocation.csv").set_index("unit_id")["group"]
    mover = "S001"  # in P00
    other = groups[groups != groups["P00"]].index[0]
    moved = runner.invoke(app, ["transfer", str(run), "--staff-id", mover, "--to-pdu", other])
    assert moved.exit_code == 0, moved.output
    joined = runner.invoke(app, ["enrol", str(run), "--staff", str(tmp_path / "joiners.csv")])
    assert joined.exit_code == 0, joined.output
    staff = pd.read_csv(run / "staff_allocation.csv")
    scores = np.random.default_rng(5).normal(size=len(staff)).round(3)
    pd.DataFrame({"staff_id": staff["staff_id"], "score": scores}).to_csv(
        tmp_path / "outcomes.csv", index=False)
    result = runner.invoke(app, ["analyse", "--register", str(run), "--outcomes",
                                 str(tmp_path / "outcomes.csv"), "--out", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    assert "Early Treatment" in set(groups)  # an arm name with a space
    report = (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    assert "1 staff transferred PDU after allocation" in report
    assert "2 new starter(s) enrolled after sealing" in report
    results = json.loads((tmp_path / "rep" / "results.json").read_text("utf-8"))
    expected = {g: 18 + sum(groups[p] == g for p in ("P01", "P07")) for g in set(groups)}
    counted = {row["arm"]: row["individuals_allocated"] for row in results["consort"]}
    assert counted == expected  # the mover still counts in P00's group
    assert all(row["clusters_allocated"] == 6 for row in results["consort"])
    assert results["models"][0]["n_clusters"] == 12
