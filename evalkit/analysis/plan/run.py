"""Run the pre-specified plan on a sealed run: compute, write the files, log the event."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from evalkit.allocation.about import workbook_about
from evalkit.analysis.plan.compute import compute_plan
from evalkit.analysis.plan.mdes import mdes_moments
from evalkit.analysis.plan.outputs import write_plan_outputs
from evalkit.analysis.plan.result import PlanResult
from evalkit.register import Register


def run_plan(register_dir: Path, outcomes_path: Path, out: Path | None = None,
             plan_file: Path | None = None,
             on_progress: Callable[[int], None] | None = None) -> PlanResult:
    """Compute the plan, write results.json/xlsx and report.html, record an `analysed` event."""
    register = Register.open(register_dir)
    result = compute_plan(register, outcomes_path, plan_file, on_progress, alongside=lambda:
                          importlib.import_module("evalkit.analysis.plan.plots"))
    primary = next((m.result.outcome for m in result.models
                    if m.role.outcome_role == "primary"), None)
    if primary is not None:
        result.mdes = mdes_moments(Path(register_dir), result.iccs, result.attrition, primary)
    out = Path(out) if out is not None else Path(register_dir) / "analysis"
    about = workbook_about(register, "results of the pre-specified analysis plan")
    result.files = write_plan_outputs(result, out, outcomes_path, about)
    register.append_event("analysed", detail={
        "outcomes_file": str(outcomes_path), "files": sorted(p.name for p in result.files.values()),
        "deviations": len(result.deviations),
    })
    return result
