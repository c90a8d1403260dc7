"""The audit trail people read: `evalkit log` and the allocation certificate, after a few events."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from typer.testing import CliRunner

from evalkit.audit.log import event_log
from evalkit.cli import app
from evalkit.register import Register

sys.path.insert(0, str(Path(__file__).parent))
from helpers import write_trial  # noqa: E402

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("audit")
    design = write_trial(folder)
    out = folder / "run"
    invoke("assign", design, "--out", out)
    invoke("verify", out)
    pd.DataFrame({"staff_id": ["NEW1"], "grade": ["PO"], "pdu_code": ["P101"]}).to_csv(
        folder / "new.csv", index=False)
    enrolled = invoke("enrol", out, "--staff", folder / "new.csv", "--reason", "joined in May")
    assert "NEW1 (" in enrolled.output and "window closed" in enrolled.output  # late joiner
    invoke("transfer", out, "--staff-id", "NEW1", "--to-pdu", "P202", "--reason", "moved")
    return out


def test_log_shows_every_event_and_writes_csv_and_xlsx(run: Path) -> None:
    result = invoke("log", run)
    assert "Event log" in result.output and "joined in May" in result.output
    events = pd.read_csv(run / "events.csv", dtype=str, keep_default_na=False)
    kinds = events["kind"].tolist()
    assert kinds[:3] == ["created", "exported", "verified"]
    assert {"enrolled", "transferred"} <= set(kinds)
    assert len(events) == len(Register.open(run).events())
    moved = events[events["kind"] == "transferred"].iloc[0]
    assert "NEW1" in moved["what_changed"] and "P202" in moved["what_changed"]
    assert moved["reason"] == "moved"
    assert list(events.columns) == ["id", "time", "user", "host", "command", "kind",
                                    "what_changed", "reason"]
    book = openpyxl.load_workbook(run / "events.xlsx")
    assert book.sheetnames == ["About", "Events"]
    headers = [c.value for c in book["Events"][1]]
    assert "What changed" in headers and "Reason" in headers
    assert book["Events"].max_row == len(events) + 1


def test_who_ran_it_is_read_from_the_event_detail(tmp_path: Path, run: Path) -> None:
    copy = tmp_path / "register.sqlite"
    copy.write_bytes((run / "register.sqlite").read_bytes())
    register = Register(copy)
    register.append_event("note", "checked", {"who": {"user": "asha", "host": "pc-17",
                                                      "command": "evalkit verify run"}})
    last = event_log(register).iloc[-1]
    assert [last["user"], last["host"], last["command"]] == ["asha", "pc-17",
                                                             "evalkit verify run"]
    assert last["reason"] == "checked"


def test_certificate_states_seed_hashes_counts_and_the_latest_verify(run: Path) -> None:
    invoke("certificate", run)
    html = (run / "certificate.html").read_text()
    manifest = json.loads((run / "manifest.json").read_text())
    assert str(manifest["seed"]) in html and manifest["algorithm"] in html
    assert manifest["design_sha256"] in html and manifest["inputs"]["staff"]["sha256"] in html
    assert "Verified" in html and "@page" in html and "size: A4" in html
    for stratum, counts in manifest["counts"].items():
        row = re.search(rf"<th scope=\"row\">{re.escape(stratum)}</th>(.*?)</tr>", html).group(1)
        assert [int(n) for n in re.findall(r">(\d+)<", row)][:-1] == [
            counts.get(arm, 0) for arm in ("Early Adopter", "Treatment", "Control")]


def test_a_failed_verify_is_on_the_certificate(tmp_path: Path) -> None:
    design = write_trial(tmp_path)
    out = tmp_path / "run"
    invoke("assign", design, "--out", out)
    staff = pd.read_csv(tmp_path / "staff.csv")
    staff.loc[0, "pdu_code"] = "P201"
    staff.to_csv(tmp_path / "staff.csv", index=False)
    pdus = pd.read_csv(tmp_path / "pdus.csv")
    pdus.loc[3, "headcount"] = 999
    pdus.to_csv(tmp_path / "pdus.csv", index=False)
    result = runner.invoke(app, ["verify", str(out)])
    assert result.exit_code == 1
    html = (out / "certificate.html").read_text()
    assert "Verification failed" in html and "Verified</strong>" not in html
