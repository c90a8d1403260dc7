"""Write a plan's results: results.json, results.xlsx and the self-contained report.html."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from evalkit.analysis.plan.report import render_report
from evalkit.analysis.plan.result import PlanResult
from evalkit.analysis.run import jsonable
from evalkit.io.files import sha256_file, write_text
from evalkit.io.xlsx import write_workbook, write_xlsx
from evalkit.register import now_utc


def results_document(result: PlanResult, outcomes_path: Path, generated: str) -> dict[str, Any]:
    """The JSON-ready record of everything the plan produced."""
    return jsonable({
        "generated": generated,
        "design": result.design_summary,
        "outcomes_file": {"path": str(outcomes_path), "sha256": sha256_file(outcomes_path)},
        "models": [{**m.role.as_dict(), **m.result.to_dict()} for m in result.models],
        "holm": {"family": "secondary outcomes, primary model, randomised contrasts",
                 "adjusted_p": result.holm},
        "cace": None if result.cace is None else result.cace.to_dict(),
        "effect_sizes": _records(result.effect_sizes),
        "iccs": _records(result.iccs),
        "attrition": _records(result.attrition),
        "consort": _records(result.consort),
        "balance": _records(result.balance),
        "deviations": result.deviations,
        "notes": result.notes,
        "mdes": result.mdes,
    })


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [] if frame is None or frame.empty else frame.to_dict("records")


def workbook_sheets(result: PlanResult) -> dict[str, pd.DataFrame]:
    """Sheets of results.xlsx: contrasts, effect sizes, ICCs, attrition, CONSORT and more."""
    contrasts = result.contrasts
    if result.cace is not None:
        cace = result.cace.to_frame().assign(outcome_role="primary", analysis_role="cace")
        contrasts = pd.concat([contrasts, cace], ignore_index=True)
    return {
        "contrasts": contrasts, "effect_sizes": result.effect_sizes, "iccs": result.iccs,
        "attrition": result.attrition, "consort": result.consort, "balance": result.balance,
        "deviations": pd.DataFrame(result.deviations,
                                   columns=["outcome", "model", "status", "detail"]),
    }


def write_plan_outputs(result: PlanResult, out: Path, outcomes_path: Path,
                       about: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write the three result files atomically into `out`; return their paths. With `about`
    (what the workbook comes from) results.xlsx is a workbook for people: an About sheet,
    readable headers, rounded numbers."""
    out = Path(out)
    generated = now_utc()
    document = results_document(result, Path(outcomes_path), generated)
    html = render_report(result, generated)
    return {
        "json": write_text(out / "results.json", json.dumps(document, indent=2) + "\n"),
        "xlsx": (write_xlsx(out / "results.xlsx", workbook_sheets(result)) if about is None
                 else write_workbook(out / "results.xlsx", workbook_sheets(result), about=about)),
        "html": write_text(out / "report.html", html),
    }
