"""The `power` job: from numbers or from a design and roster to rows, curves and (optionally)
simulation results, ready for the table on screen, `power.json` and the HTML page."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.allocation.allocate import build_units
from evalkit.errors import InputError
from evalkit.power.analytic import (
    MODEL_NAMES,
    Arms,
    Assumptions,
    Model,
    PowerResult,
    analyse,
    clusters_needed,
    numbers_arms,
)
from evalkit.power.design_inputs import (
    cluster_table,
    contrast_assumptions,
    contrast_power,
    design_contrasts,
    load_design_inputs,
)
from evalkit.power.simulate import ANALYSES, Weighting, build_spec, run_simulation, summarise
from evalkit.trial.design import TrialDesign

CURVE_POINTS = 41


@dataclass
class PowerReport:
    """Everything `evalkit power` shows and writes."""

    source: dict[str, Any]
    assumptions: Assumptions
    rows: list[dict[str, Any]]
    curves: dict[str, dict[str, Any]] = field(default_factory=dict)
    simulation: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (the content of power.json)."""
        return {"source": self.source, "assumptions": asdict(self.assumptions),
                "contrasts": self.rows, "curves": self.curves, "simulation": self.simulation,
                "notes": self.notes}


@dataclass(frozen=True)
class NumbersRequest:
    """PowerUp!-style numbers: J clusters (per block) of n staff in K blocks, share P."""

    clusters: float
    cluster_size: float
    blocks: int | None = None
    treated_share: float = 0.5
    unit: str = "pdu"


def _row(label: str, level: str, randomised: bool, arms: Arms, result: PowerResult,
         size_cv: float) -> dict[str, Any]:
    return {"contrast": label, "level": level, "randomised": randomised,
            "clusters_arm": round(float(sum(arms.treated)), 3),
            "clusters_control": round(float(sum(arms.control)), 3),
            "blocks": len(arms.treated), "cluster_size": round(arms.cluster_size, 3),
            "size_cv": round(size_cv, 4), **result.as_dict()}


def power_from_numbers(request: NumbersRequest, assumptions: Assumptions,
                       effect: float | None = None, solve_clusters: bool = False) -> PowerReport:
    """The model the numbers describe, beside the other unit of randomisation."""
    cluster_model: Model = "cra2" if not request.blocks else "bcra3f2"
    models: list[Model] = [cluster_model, "bira2f1"]
    if request.unit == "staff":
        models.reverse()
    blocks = request.blocks or 1
    rows, specs = [], []
    for index, model in enumerate(models):
        arms = numbers_arms(model, request.clusters, request.cluster_size, blocks,
                            request.treated_share)
        if solve_clusters:
            if effect is None:
                raise InputError("--solve-clusters needs --effect (the effect to detect)")
            result = clusters_needed(model, effect, assumptions, request.cluster_size, blocks,
                                     request.treated_share)
            arms = numbers_arms(model, result.clusters_needed, request.cluster_size, blocks,
                                request.treated_share)
        else:
            result = analyse(model, arms, assumptions, effect)
        level = "as designed" if index == 0 else "alternative"
        rows.append(_row("treated vs control", level, True, arms, result, assumptions.size_cv))
        specs.append((model, arms, assumptions))
    source = {"mode": "numbers", **asdict(request)}
    return PowerReport(source, assumptions, rows, curves(specs[:1], ["treated vs control"],
                                                          effect))


def power_from_design(design_path: Path, assumptions: Assumptions, pdus: Path | None = None,
                      staff: Path | None = None, effect: float | None = None) -> PowerReport:
    """The real design at protocol: expected PDUs per stratum and arm, real sizes."""
    design, roster = load_design_inputs(design_path, pdus, staff)
    table = cluster_table(design, roster)
    return report_for_table(design, table, assumptions, effect,
                            {"mode": "design", "design": str(Path(design_path).resolve()),
                             "moment": "protocol", "unit": design.trial.unit})


def report_for_table(design: TrialDesign, table, assumptions: Assumptions,
                     effect: float | None, source: dict[str, Any]) -> PowerReport:
    """Rows and curves for a cluster table (expected at protocol, drawn at randomisation)."""
    contrasts = design_contrasts(design, table)
    results, notes = contrast_power(contrasts, assumptions, effect)
    rows = [_row(f"{c.arm} vs {c.control}", c.level, c.randomised, c.arms, r, c.size_cv)
            for c, r in results]
    designed = [(c.model, c.arms, contrast_assumptions(assumptions, c, contrasts))
                for c, _ in results if c.level == "as designed"]
    labels = [f"{c.arm} vs {c.control}" for c, _ in results if c.level == "as designed"]
    source = {**source, "pdus_in_trial": int(len(table)),
              "staff_in_trial": int(table["size"].sum())}
    return PowerReport(source, assumptions, rows, curves(designed, labels, effect), notes=notes)


def curves(specs: list[tuple[Model, Arms, Assumptions]], labels: list[str],
           effect: float | None) -> dict[str, dict[str, Any]]:
    """Analytic power against effect size and against ICC (at `effect`), one line each."""
    by_effect, by_icc, icc_effect = {}, {}, {}
    for (model, arms, assumptions), label in zip(specs, labels, strict=True):
        base = analyse(model, arms, assumptions)
        target = effect if effect is not None else base.mdes
        effects = np.linspace(0, 2.5 * max(base.mdes, target), CURVE_POINTS)
        by_effect[label] = [[float(x), analyse(model, arms, assumptions, float(x)).power or 0.0]
                            for x in effects]
        top = max(0.3, 2 * assumptions.icc)
        iccs = np.linspace(0, min(top, 0.95), CURVE_POINTS)
        by_icc[label] = [[float(x), analyse(model, arms, replace(assumptions, icc=float(x)),
                                            target).power or 0.0] for x in iccs]
        icc_effect[label] = float(target)
    return {"effect": by_effect, "icc": by_icc, "icc_effect": icc_effect}


def model_name(model: str) -> str:
    """Human name of an analytic model."""
    return MODEL_NAMES.get(model, model)


ANALYSIS_NAMES = {
    "cr2": lambda weighting: (
        "CR2 OLS on staff, PDU clusters, stratum fixed effects, Bell-McCaffrey df"
        if weighting == "staff" else "CR2 OLS on PDU means, stratum fixed effects, "
        "Bell-McCaffrey df"),
    "mixed": lambda _: "random intercept per PDU, REML, Satterthwaite df",
}


def simulated_analyses(design: TrialDesign) -> tuple[str, ...]:
    """The design's continuous-outcome models that the simulation runs (mixed, cr2), in order."""
    chosen = tuple(m for m in design.analysis.models.continuous if m in ANALYSES)
    return chosen or ("cr2",)


@dataclass(frozen=True)
class SimulationRequest:
    """How to simulate: replicates, true effect (default: the analytic MDES), weighting."""

    replicates: int = 1000
    effect: float | None = None
    weighting: Weighting = "staff"
    workers: int = 2
    seed: int | None = None
    analyses: tuple[str, ...] = ()  # default: the design's continuous models simulation has


def simulate_design(design_path: Path, assumptions: Assumptions, request: SimulationRequest,
                    pdus: Path | None = None, staff: Path | None = None,
                    on_progress: Callable[[int], None] | None = None) -> PowerReport:
    """The protocol report plus a simulation of the exact design at the same assumptions."""
    design, roster = load_design_inputs(design_path, pdus, staff)
    table = cluster_table(design, roster)
    source = {"mode": "design", "design": str(Path(design_path).resolve()),
              "moment": "protocol", "unit": design.trial.unit}
    first = report_for_table(design, table, assumptions, request.effect, source)
    randomised = [r for r in first.rows if r["randomised"] and r["level"] == "as designed"]
    effect = request.effect if request.effect is not None else randomised[0]["mdes"]
    report = report_for_table(design, table, assumptions, effect, source)
    sizes = roster.staff.groupby("pdu_code").size()
    analyses = request.analyses or simulated_analyses(design)
    spec = build_spec(design, build_units(design, roster), sizes, assumptions, effect,
                      request.weighting, request.seed, analyses)
    started = time.perf_counter()
    draws = run_simulation(spec, request.replicates, request.workers, on_progress)
    seconds = time.perf_counter() - started
    analytic = {r["contrast"]: r["power"] for r in report.rows if r["level"] == "as designed"}
    rows = [{**row, "analytic_power": analytic.get(row["contrast"])}
            for analysis in analyses for row in summarise(spec, draws[analysis], effect, analysis)]
    report.simulation = {
        "replicates": request.replicates, "effect": effect, "icc": assumptions.icc,
        "weighting": request.weighting, "seed": spec.seed, "workers": request.workers,
        "seconds": round(seconds, 3),
        "analyses": list(analyses),
        "analysis": "; ".join(ANALYSIS_NAMES[a](request.weighting) for a in analyses),
        "contrasts": rows}
    return report
