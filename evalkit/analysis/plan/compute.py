"""Run the design's pre-specified analysis plan on a sealed run plus an outcomes file.

For each outcome, each planned model (the first is the outcome's primary analysis), then
effect sizes (EEF g / Cox index / rate ratio), ICCs, WWC attrition, CONSORT flow, CACE for
the primary outcome, and Holm adjustment across the secondary outcomes' randomised
contrasts (primary-model only). Anything planned that could not be run is a deviation.
The result type lives in `result`, writing the files in `outputs`, the whole run in `run`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from evalkit.allocation.exports import balance_from_register
from evalkit.analysis.attrition import attrition_summary, consort_flow
from evalkit.analysis.data import AnalysisColumns, AnalysisInputError
from evalkit.analysis.effect_sizes import (
    COX_SCALE,
    eef_effect_size,
    hedges_g_clustered,
    icc_estimate,
    searle_icc_interval,
)
from evalkit.analysis.iv import fit_cace
from evalkit.analysis.moderators import fit_moderator
from evalkit.analysis.multiplicity import holm_adjust
from evalkit.analysis.plan.data import (
    ARM,
    CLUSTER,
    COMPLIANCE,
    POD,
    STAFF,
    STRATUM,
    PlanData,
    acceptance_rule,
    load_plan_data,
)
from evalkit.analysis.plan.result import PlannedModel, PlanResult, ResultRole
from evalkit.analysis.results import Contrast, ModelResult
from evalkit.analysis.run import AnalyseSpec, analyse_frame
from evalkit.errors import ConfigError, EvalkitError
from evalkit.io.files import sha256_file
from evalkit.io.parallel import IdleWatch, run_in_order, usable_cores
from evalkit.register import Register
from evalkit.trial.analysis_plan import AnalysisSection, OutcomeSpec
from evalkit.trial.design import load_design


def compute_plan(register: Register, outcomes_path: Path, plan_file: Path | None = None,
                 on_progress: Callable[[int], None] | None = None,
                 alongside: Callable[[], object] | None = None) -> PlanResult:
    """Fit every planned model and summary; no files written.

    The plan is the sealed design's [analysis] section, or that of `plan_file` (a design
    TOML) when the plan was written after the allocation was sealed; that is noted.
    `alongside()` runs in this process while workers fit the models (e.g. run_plan's import
    of the report's plotting library).
    """
    watch = IdleWatch()   # fork the outcomes only if a core sat idle while the data loaded
    design = register.design
    plan = design.analysis if plan_file is None else load_design(plan_file).analysis
    if not plan.outcomes:
        raise ConfigError(f"{plan_file or 'the sealed design'} has no [[analysis.outcomes]]: "
                          "pre-specify the outcomes in an [analysis] section (pass the design "
                          "file with --plan if it was written after the allocation)")
    data = load_plan_data(register, Path(outcomes_path), plan)
    accept = acceptance_rule(register)
    notes = list(data.notes)
    if plan_file is not None:
        notes.append(f"analysis plan read from {plan_file} (sha256 "
                     f"{sha256_file(Path(plan_file))[:12]}), not from the sealed design")
    batches = outcome_batches(plan, min(usable_cores(), len(plan.outcomes)))
    fitted, summary = run_in_order(
        lambda batch: [_outcome_models(data, plan, plan.outcomes[index], design.trial.seed,
                                       accept, design.trial.unit) for index in batches[batch]],
        len(batches), meanwhile=lambda: _summaries(register, data, plan, alongside), watch=watch,
        on_done=None if on_progress is None else lambda batch: on_progress(
            sum(len(plan.models_for(plan.outcomes[index])) for index in batches[batch])))
    by_outcome = dict(zip([i for batch in batches for i in batch],
                          [found for batch in fitted for found in batch], strict=True))
    fitted = [by_outcome[index] for index in range(len(plan.outcomes))]
    models = [planned for outcome_models, _ in fitted for planned in outcome_models]
    deviations = [found for _, outcome_deviations in fitted for found in outcome_deviations]
    deviations += summary.pop("deviations")
    if data.non_randomised:
        notes.append(f"{', '.join(data.non_randomised)} was allocated on purpose "
                     "(non-randomised): its contrasts are observational and are left out of "
                     "randomisation inference and of the Holm family")
    if accept is not None:
        notes.append("randomisation inference keeps only permutations that pass the design's "
                     "re-randomisation balance rule")
    holm = _holm(models)
    return PlanResult(
        models=models, contrasts=_contrast_table(models, holm),
        effect_sizes=_effect_sizes(models, summary["iccs"], data, plan.alpha),
        deviations=deviations, notes=notes, holm=holm, **summary,
    )


def outcome_batches(plan: AnalysisSection, workers: int) -> list[list[int]]:
    """The plan's outcomes (by position) in batches for `workers` processes: outcomes with
    the same models together (a worker then imports and warms up each estimator once, e.g.
    statsmodels for the GEEs), the largest batches split until every worker has one."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for index, outcome in enumerate(plan.outcomes):
        groups.setdefault(tuple(plan.models_for(outcome)), []).append(index)
    batches = list(groups.values())
    while len(batches) < workers and any(len(batch) > 1 for batch in batches):
        largest = max(range(len(batches)), key=lambda i: len(batches[i]))
        batch = batches.pop(largest)
        middle = (len(batch) + 1) // 2
        batches[largest:largest] = [batch[:middle], batch[middle:]]
    return batches


def _outcome_models(data: PlanData, plan: AnalysisSection, outcome: OutcomeSpec, seed: int,
                    accept, unit: str) -> tuple[list[PlannedModel], list[dict[str, str]]]:
    """One outcome's planned models in plan order (the first is its primary analysis), then
    its moderators, with the deviations they recorded: independent of the other outcomes."""
    deviations: list[dict[str, str]] = []
    models: list[PlannedModel] = []
    for position, model in enumerate(plan.models_for(outcome)):
        result = _run_model(data, plan, outcome, model, seed, accept, unit, deviations)
        if result is not None:
            role = ResultRole("primary" if outcome.primary else "secondary",
                              "primary" if position == 0 else "sensitivity", outcome.level)
            models.append(PlannedModel(result, role))
    models += _moderators(data, plan, outcome, deviations)
    return models, deviations


def _summaries(register: Register, data: PlanData, plan: AnalysisSection,
               alongside: Callable[[], object] | None = None) -> dict[str, Any]:
    """What does not depend on the fitted models: design, ICCs, attrition, CONSORT, balance
    and CACE (computed while the models are fitted; its deviation, if any, comes last),
    after `alongside()`."""
    if alongside is not None:
        alongside()
    deviations: list[dict[str, str]] = []
    return {"design_summary": design_summary(register, plan), "iccs": _iccs(data, plan),
            "cace": _cace(data, plan, deviations), "attrition": _attrition(data, plan),
            "consort": _consort(data, plan), "balance": balance_from_register(register),
            "deviations": deviations}


def _run_model(data: PlanData, plan: AnalysisSection, outcome: OutcomeSpec, model: str,
               seed: int, accept, unit: str, deviations: list) -> ModelResult | None:
    """One planned model; a failure or an impossible model is recorded as a deviation."""
    frame = data.staff if outcome.level == "staff" else data.pdu
    if outcome.level == "pdu" and model in ("mixed", "mixed3"):
        deviations.append(_deviation(outcome, model, "skipped", "a random-intercept model needs "
                                     "several rows per PDU; PDU-level outcome"))
        return None
    is_ri = model == "ri"
    # staff-level allocation: RI re-randomises staff (the unit), so staff are its "clusters"
    unit_col = STAFF if is_ri and unit == "staff" else CLUSTER
    spec = AnalyseSpec(
        outcome=outcome.name, arm_col=ARM, cluster_col=unit_col, strata_col=STRATUM,
        covariates=[] if model == "dim" else list(outcome.covariates), model=model,
        family=outcome.family, control=data.control,
        permutations=plan.permutations if is_ri else None,
        seed=(plan.seed if plan.seed is not None else seed) if is_ri else None,
        small_sample=plan.gee_small_sample if model == "gee" else "none",
        non_randomised=data.non_randomised, alpha=plan.alpha,
        fixed_clusters=data.fixed_clusters, accept=accept,
        allow_clusters_across_arms=unit == "staff", pod_col=POD if model == "mixed3" else None,
    )
    try:
        if model == "hc2" and outcome.level == "staff":
            frame = pdu_means(frame, _columns(data, outcome))
        return analyse_frame(frame, spec)
    except (EvalkitError, AnalysisInputError) as error:
        deviations.append(_deviation(outcome, model, "failed", str(error)))
        return None


def pdu_means(frame: pd.DataFrame, cols: AnalysisColumns) -> pd.DataFrame:
    """A staff-level outcome as PDU means (staff with the outcome and covariates), one row
    per PDU: the sensitivity analysis `hc2` runs on a staff-level outcome."""
    complete = frame.dropna(subset=cols.needed)
    text = [c for c in cols.covariates if not pd.api.types.is_numeric_dtype(complete[c])]
    if text:
        raise AnalysisInputError(f"covariate(s) {', '.join(text)} are text and cannot be "
                                 "averaged to PDU means")
    keys = [cols.cluster, cols.arm, *([cols.strata] if cols.strata else [])]
    means = complete.groupby(keys, sort=True)[[cols.outcome, *cols.covariates]].mean()
    return means.reset_index()


def _moderators(data: PlanData, plan: AnalysisSection, outcome: OutcomeSpec,
                deviations: list) -> list[PlannedModel]:
    """Exploratory arm x moderator analyses of one outcome (CR2), each its own model."""
    found = []
    frame = data.staff if outcome.level == "staff" else data.pdu
    role = ResultRole("primary" if outcome.primary else "secondary", "exploratory",
                      outcome.level)
    for moderator in outcome.moderators:
        try:
            if moderator not in frame.columns:
                raise AnalysisInputError(f"moderator column {moderator!r} not found")
            result = fit_moderator(frame, _columns(data, outcome), moderator=moderator,
                                   alpha=plan.alpha, non_randomised_arms=data.non_randomised)
        except (AnalysisInputError, ValueError, ArithmeticError) as error:
            deviations.append(_deviation(outcome, f"moderator {moderator}", "failed",
                                         str(error)))
            continue
        found.append(PlannedModel(result, role))
    _holm_across_moderators([planned.result for planned in found])
    return found


def _holm_across_moderators(results: list[ModelResult]) -> None:
    """Re-adjust every randomised interaction of one outcome's moderators as one family."""
    family = {(i, c.arm): c.p_value for i, r in enumerate(results) for c in r.contrasts
              if c.randomised and math.isfinite(c.p_value)}
    if not family:
        return
    adjusted = holm_adjust({f"{i}|{arm}": p for (i, arm), p in family.items()})
    for i, result in enumerate(results):
        result.diagnostics["holm"] = "across every moderator of this outcome (exploratory)"
        for contrast in result.contrasts:
            contrast.extra["p_holm_exploratory"] = adjusted.get(f"{i}|{contrast.arm}")


def _columns(data: PlanData, outcome: OutcomeSpec,
             allocation_unit: bool = False) -> AnalysisColumns:
    """The plan's analysis columns for one outcome (group, PDU, stratum, its covariates);
    `allocation_unit` makes staff the clusters of a staff-level design (attrition, CONSORT)."""
    cluster = STAFF if allocation_unit and data.unit == "staff" else CLUSTER
    return AnalysisColumns(outcome=outcome.name, arm=ARM, cluster=cluster, strata=STRATUM,
                           covariates=tuple(outcome.covariates), control=data.control)


def _deviation(outcome: OutcomeSpec, model: str, status: str, detail: str) -> dict[str, str]:
    return {"outcome": outcome.name, "model": model, "status": status, "detail": detail}


def _key(result: ModelResult, arm: str) -> str:
    return f"{result.outcome} | {result.model} | {arm}"


def _holm(models: list[PlannedModel]) -> dict[str, float]:
    """Holm-adjusted p across secondary outcomes' primary-model randomised contrasts."""
    family = {_key(m.result, c.arm): c.p_value for m in models if m.role.in_holm_family
              for c in m.result.contrasts if c.randomised and math.isfinite(c.p_value)}
    return holm_adjust(family) if family else {}


def _contrast_table(models: list[PlannedModel], holm: dict[str, float]) -> pd.DataFrame:
    """Every contrast of every planned model with its roles and Holm-adjusted p."""
    frames = []
    for planned in models:
        result, role = planned.result, planned.role
        frame = result.to_frame()
        frame.insert(0, "outcome_role", role.outcome_role)
        frame.insert(1, "analysis_role", role.analysis_role)
        keys = [_key(result, arm) for arm in frame["arm"]]
        frame["holm_family"] = [k in holm for k in keys]
        frame["p_holm"] = [holm.get(k, math.nan) for k in keys]
        frames.append(frame)
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    first = ["outcome", "model", "outcome_role", "analysis_role", "arm", "versus", "randomised"]
    return table[first + [c for c in table.columns if c not in first]]


def _effect_sizes(models: list[PlannedModel], iccs: pd.DataFrame, data: PlanData,
                  alpha: float) -> pd.DataFrame:
    """EEF g (continuous), Cox index (binary) or rate ratio (count) for every contrast;
    staff-level continuous outcomes also get Hedges' (2007) clustered g."""
    total_sd = dict(zip(iccs["outcome"], iccs["total_sd"], strict=True)) if len(iccs) else {}
    rows = []
    for planned in models:
        if planned.role.analysis_role == "exploratory":
            continue
        result, ratio = planned.result, planned.result.family
        for c in result.contrasts:
            row = {"outcome": result.outcome, "model": result.model, "arm": c.arm,
                   "versus": c.versus, "randomised": c.randomised, **planned.role.as_dict()}
            if ratio == "binomial":
                row.update(measure="Cox index", effect_size=c.estimate / COX_SCALE,
                           ci_low=c.ci_low / COX_SCALE, ci_high=c.ci_high / COX_SCALE)
            elif ratio == "poisson":
                row.update(measure="rate ratio", effect_size=math.exp(c.estimate),
                           ci_low=math.exp(c.ci_low), ci_high=math.exp(c.ci_high))
            elif total_sd.get(result.outcome, math.nan) > 0:
                g = eef_effect_size(c.estimate, c.ci_low, c.ci_high, total_sd[result.outcome])
                row.update(measure="EEF g", effect_size=g["effect_size"], ci_low=g["ci_low"],
                           ci_high=g["ci_high"])
                if planned.role.level == "staff":
                    row.update(_hedges(data, iccs, result.outcome, c, alpha))
            else:
                continue
            rows.append(row)
    return pd.DataFrame(rows)


def _hedges(data: PlanData, iccs: pd.DataFrame, outcome: str, contrast: Contrast,
            alpha: float) -> dict[str, float]:
    """Hedges (2007) g for a two-level cluster design: the model's adjusted difference over
    the null-model total SD, with the mean PDU size and ICC of the staff with the outcome."""
    icc = iccs.set_index("outcome")
    observed = data.staff.dropna(subset=[outcome])
    counts = observed[ARM].value_counts()
    try:
        g = hedges_g_clustered(contrast.estimate, float(icc.at[outcome, "total_sd"]),
                               int(counts.get(contrast.arm, 0)),
                               int(counts.get(contrast.versus, 0)),
                               len(observed) / observed[CLUSTER].nunique(),
                               max(float(icc.at[outcome, "icc"]), 0.0), alpha=alpha)
    except (AnalysisInputError, KeyError, ZeroDivisionError, ValueError):
        return {}
    return {"hedges_g": g["g"], "hedges_g_ci_low": g["omega"] * g["ci_low"],
            "hedges_g_ci_high": g["omega"] * g["ci_high"]}


def _iccs(data: PlanData, plan: AnalysisSection) -> pd.DataFrame:
    """ICC with Searle's CI per staff-level outcome: REML null model for continuous outcomes
    (its total SD scales EEF g), one-way ANOVA (linear scale) for binary and count ones."""
    rows = []
    for outcome in plan.outcomes:
        if outcome.level != "staff":
            continue
        try:
            estimate = (icc_estimate(data.staff, outcome.name, CLUSTER, plan.alpha)
                        if outcome.type == "continuous"
                        else _anova_icc(data.staff, outcome.name, plan.alpha))
        except (AnalysisInputError, RuntimeError) as error:
            rows.append({"outcome": outcome.name, "note": str(error)})
            continue
        rows.append({"outcome": outcome.name, "type": outcome.type, **estimate})
    return pd.DataFrame(rows)


def _anova_icc(frame: pd.DataFrame, outcome: str, alpha: float) -> dict[str, Any]:
    """One-way ANOVA ICC (Donner's n0) and Searle interval on the linear scale."""
    work = frame[[outcome, CLUSTER]].dropna()
    cluster = pd.factorize(work[CLUSTER].astype(str), sort=True)[0]
    interval = searle_icc_interval(work[outcome].to_numpy(float), cluster, alpha)
    return {"icc": interval["icc_anova"], "ci_low": interval["ci_low"],
            "ci_high": interval["ci_high"], "ci_method": "Searle (1971) F interval, ANOVA ICC",
            "total_sd": float(work[outcome].std()), "n_obs": len(work),
            "n_clusters": int(cluster.max()) + 1, "alpha": alpha}


def _attrition(data: PlanData, plan: AnalysisSection) -> pd.DataFrame:
    frames = []
    for outcome in plan.outcomes:
        frame = data.staff if outcome.level == "staff" else data.pdu
        table = attrition_summary(frame, _columns(data, outcome, allocation_unit=True),
                                  allocated_clusters=data.allocated_clusters)
        table.insert(0, "outcome", outcome.name)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def _consort(data: PlanData, plan: AnalysisSection) -> pd.DataFrame:
    primary = plan.primary_outcome
    frame = data.staff if primary.level == "staff" else data.pdu
    table = consort_flow(frame, _columns(data, primary, allocation_unit=True),
                         allocated_clusters=data.allocated_clusters)
    table["randomised"] = ~table["arm"].isin(data.non_randomised)
    return table


def _cace(data: PlanData, plan: AnalysisSection, deviations: list) -> ModelResult | None:
    """CACE of the primary outcome for the randomised arms, if compliance is known."""
    primary = plan.primary_outcome
    if data.compliance_source is None or primary.level != "staff":
        deviations.append(_deviation(primary, "cace", "skipped",
                                     "no compliance data (register table 'compliance' or an "
                                     "outcomes column 'completed')"))
        return None
    frame = data.staff[~data.staff[ARM].isin(data.non_randomised)]
    try:
        result = fit_cace(frame, _columns(data, primary), compliance=COMPLIANCE,
                          alpha=plan.alpha)
    except (AnalysisInputError, ValueError, ArithmeticError) as error:
        deviations.append(_deviation(primary, "cace", "failed", str(error)))
        return None
    result.diagnostics["compliance_source"] = data.compliance_source
    return result


def design_summary(register: Register, plan: AnalysisSection) -> dict[str, Any]:
    """What the report's design section shows: trial, arms, units and staff per group."""
    design, manifest = register.design, register.manifest
    allocation = register.table("allocation")
    staff = register.table("staff_allocation")
    return {
        "trial": design.trial.name, "unit": design.trial.unit,
        "strata": design.trial.strata, "method": manifest.get("method", "complete"),
        "seed": design.trial.seed, "control": design.control_arm,
        "arms": [{"name": a.name, "ratio": a.ratio, "fixed": len(a.fixed),
                  "randomised": a.ratio > 0,
                  "units": int((allocation["group"] == a.name).sum()),
                  "staff": int((staff["group"] == a.name).sum())} for a in design.arms],
        "design_digest": design.digest(),
        "confidence": f"{100 * (1 - plan.alpha):g}",
    }
