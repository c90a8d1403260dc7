"""The self-contained HTML analysis report, rendered from templates/report.html.j2."""

from __future__ import annotations

import math
from typing import Any

import jinja2
import pandas as pd
from markupsafe import Markup

from evalkit.analysis.plan.labels import humanise, model_label, outcome_label
from evalkit.analysis.plan.mdes import sample_size_paragraph
from evalkit.analysis.plan.result import PlanResult
from evalkit.io.html import package_environment


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


def fmt_pct(value: Any) -> str:
    """A share as a percentage with one decimal: 0.1461 -> '14.6%'."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{100 * float(value):.1f}%"


def _environment() -> jinja2.Environment:
    return package_environment("evalkit.analysis.plan", "templates", filters={
        "num": fmt, "p": fmt_p, "pct": fmt_pct, "outcome_label": outcome_label,
        "model_label": model_label, "count": lambda n: f"{int(n):,}"})


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [] if frame is None or frame.empty else frame.to_dict("records")


def balance_rows(balance: pd.DataFrame, control: str) -> dict[str, Any]:
    """Balance as one row per covariate: each group's mean, and its SMD against control."""
    if balance is None or balance.empty or "group" not in balance:
        return {"groups": [], "rows": []}
    table = balance.set_index("group")
    covariates = [c[len("mean_"):] for c in table.columns if c.startswith("mean_")]
    groups = [{"name": g, "control": g == control} for g in table.index]
    rows = []
    for covariate in covariates:
        cells = []
        for group in groups:
            smd = table.at[group["name"], f"smd_{covariate}"] if not group["control"] else None
            cells.append({"mean": table.at[group["name"], f"mean_{covariate}"], "smd": smd})
        rows.append({"label": humanise(covariate), "cells": cells})
    return {"groups": groups, "rows": rows}


def _effect_size(effects: pd.DataFrame, outcome: str, model: str, arm: str) -> dict | None:
    if effects is None or effects.empty:
        return None
    match = effects[(effects["outcome"] == outcome) & (effects["model"] == model)
                    & (effects["arm"] == arm)]
    return None if match.empty else match.iloc[0].to_dict()


def _direction(low: float, high: float, null: float) -> str:
    if low > null:
        return "higher"
    if high < null:
        return "lower"
    return "unclear"


def headline(result: PlanResult) -> list[dict[str, Any]]:
    """The primary outcome's primary analysis in words, one entry per contrast with control."""
    entries = []
    for planned in result.models:
        if (planned.role.outcome_role, planned.role.analysis_role) != ("primary", "primary"):
            continue
        fit = planned.result
        for contrast in sorted(fit.contrasts, key=lambda c: not c.randomised):
            size = _effect_size(result.effect_sizes, fit.outcome, fit.model, contrast.arm)
            ratio = fit.model == "gee"
            scale = math.exp if ratio else float
            entries.append({
                "outcome": fit.outcome, "model": fit.model, "arm": contrast.arm,
                "versus": contrast.versus, "randomised": contrast.randomised,
                "estimate": scale(contrast.estimate), "ci_low": scale(contrast.ci_low),
                "ci_high": scale(contrast.ci_high), "p_value": contrast.p_value,
                "ratio": ratio, "family": fit.family, "size": size,
                "direction": _direction(contrast.ci_low, contrast.ci_high, 0.0)})
    return entries


def secondary_lines(result: PlanResult) -> list[dict[str, Any]]:
    """Each secondary outcome's primary analysis, randomised contrasts only, with Holm p."""
    lines = []
    for planned in result.models:
        if not planned.role.in_holm_family:
            continue
        fit = planned.result
        for contrast in fit.contrasts:
            if not contrast.randomised:
                continue
            key = f"{fit.outcome} | {fit.model} | {contrast.arm}"
            lines.append({"outcome": fit.outcome, "arm": contrast.arm,
                          "size": _effect_size(result.effect_sizes, fit.outcome, fit.model,
                                               contrast.arm),
                          "p_holm": result.holm.get(key),
                          "direction": _direction(contrast.ci_low, contrast.ci_high, 0.0)})
    return lines


def mdes_rows(mdes: dict | None) -> list[dict]:
    """One row per contrast: MDES for the allocation drawn and with the observed ICC."""
    if mdes is None:
        return []
    drawn = (mdes.get("at_randomisation") or {}).get("mdes", {})
    return [{"contrast": contrast, "randomisation": drawn.get(contrast), "analysis": value}
            for contrast, value in mdes["at_analysis"]["mdes"].items()]


def render_report(result: PlanResult, generated: str) -> str:
    """The whole report as one HTML string (inline CSS and SVG; no external resources)."""
    from evalkit.analysis.plan.plots import forest_plot, icc_plot  # matplotlib: only here

    models = [{"result": m.result, "role": m.role, "joint": m.result.joint_test or {}}
              for m in result.models]
    design = result.design_summary
    context = {
        "design": design, "generated": generated,
        "headline": headline(result), "secondary": secondary_lines(result),
        "consort": _records(result.consort),
        "balance": balance_rows(result.balance, design.get("control", "")),
        "attrition": _records(result.attrition), "models": models, "cace": result.cace,
        "iccs": _records(result.iccs), "effects": _records(result.effect_sizes),
        "holm": result.holm, "deviations": result.deviations, "notes": result.notes,
        "forest_svg": Markup(forest_plot(result.effect_sizes))
        if not result.effect_sizes.empty else "",
        "icc_svg": Markup(icc_plot(result.iccs)) if "icc" in result.iccs else "",
        "mdes": mdes_rows(result.mdes),
        "mdes_paragraph": "" if result.mdes is None else sample_size_paragraph(
            result.mdes, result.mdes["assumed"]["alpha"], result.mdes["assumed"]["power"]),
    }
    return _environment().get_template("report.html.j2").render(**context)
