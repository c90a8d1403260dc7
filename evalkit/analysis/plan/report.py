"""The self-contained HTML analysis report, rendered from templates/report.html.j2."""

from __future__ import annotations

import math
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from evalkit.analysis.plan.plots import consort_figure, forest_plot, icc_plot
from evalkit.analysis.plan.result import PlanResult


def fmt(value: Any, digits: int = 3) -> str:
    """Numbers for people: fixed decimals, small p-values as '<0.001', missing as '-'."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def fmt_p(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value) and value < 0.001:
        return "<0.001"
    return fmt(value)


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("evalkit.analysis.plan", "templates"), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    environment.filters["num"] = fmt
    environment.filters["p"] = fmt_p
    return environment


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [] if frame is None or frame.empty else frame.to_dict("records")


def render_report(result: PlanResult, generated: str) -> str:
    """The whole report as one HTML string (inline CSS and SVG; no external resources)."""
    models = [{"result": m.result, "role": m.role, "joint": m.result.joint_test or {}}
              for m in result.models]
    context = {
        "design": result.design_summary,
        "generated": generated,
        "consort": _records(result.consort),
        "balance": _records(result.balance),
        "balance_columns": list(result.balance.columns),
        "attrition": _records(result.attrition),
        "models": models,
        "cace": result.cace,
        "iccs": _records(result.iccs),
        "effects": _records(result.effect_sizes),
        "holm": result.holm,
        "deviations": result.deviations,
        "notes": result.notes,
        "forest_svg": Markup(forest_plot(result.effect_sizes))
        if not result.effect_sizes.empty else "",
        "consort_svg": Markup(consort_figure(result.consort)) if len(result.consort) else "",
        "icc_svg": Markup(icc_plot(result.iccs)) if "icc" in result.iccs else "",
    }
    return _environment().get_template("report.html.j2").render(**context)
