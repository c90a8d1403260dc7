"""The `analyse` command: one model on one file, or the whole pre-specified plan."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from evalkit.cli.common import console, progress_bar
from evalkit.errors import InputError

if TYPE_CHECKING:
    from evalkit.analysis.results import ModelResult
    from evalkit.analysis.run import AnalyseSpec


DataArg = Annotated[Path | None, typer.Argument(help="Analysis table (CSV or XLSX).")]
OutcomeOpt = Annotated[str | None, typer.Option(help="Outcome column.")]
ArmOpt = Annotated[str, typer.Option("--arm-col", help="Arm (group) column.")]
ClusterOpt = Annotated[str, typer.Option("--cluster-col", help="Cluster column.")]
StrataOpt = Annotated[str | None, typer.Option("--strata-col", help="Strata column.")]
CovariateOpt = Annotated[list[str] | None, typer.Option(
    "--covariate", help="Covariate column (repeat for several; text columns become indicators).")]
ModelOpt = Annotated[str, typer.Option(
    help="mixed, mixed3 (staff in POD in PDU), cr2, cr1, hc2 (one row per PDU), gee, dim or ri.")]
FamilyOpt = Annotated[str, typer.Option(help="gaussian, binomial or poisson.")]
ControlOpt = Annotated[str, typer.Option(help="Control arm label.")]
PermutationsOpt = Annotated[int | None, typer.Option(
    help="Permutations for --model ri (default 10000).")]
SeedOpt = Annotated[int | None, typer.Option(help="Seed for --model ri (default 0).")]
SmallSampleOpt = Annotated[str, typer.Option(
    "--small-sample", help="GEE small-sample correction: none or mancl-derouen.")]
DdfOpt = Annotated[str | None, typer.Option(
    help="--model mixed df: satterthwaite (default) or kenward-roger.")]
WhereOpt = Annotated[list[str] | None, typer.Option(
    "--where", help='Keep rows where "column == value" (or !=); repeat to combine.')]
AcrossStrataOpt = Annotated[bool, typer.Option(
    "--allow-clusters-across-strata",
    help="Accept clusters that span strata (only if the design has them).")]
PodOpt = Annotated[str | None, typer.Option(
    "--pod-col", help="Team (POD) column nested in --cluster-col, for --model mixed3.")]
AcrossArmsOpt = Annotated[bool, typer.Option(
    "--allow-clusters-across-arms",
    help="Accept arms within clusters (staff, not clusters, were randomised).")]
NonRandomisedOpt = Annotated[list[str] | None, typer.Option(
    "--non-randomised", help="Arm allocated on purpose (repeat for several).")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Write the result as JSON.")]
RegisterOpt = Annotated[Path | None, typer.Option(
    "--register", help="Sealed run folder: run the design's pre-specified plan.")]
OutcomesOpt = Annotated[Path | None, typer.Option(
    "--outcomes", help="Outcomes file (staff_id + outcome columns) for --register.")]
PlanOpt = Annotated[Path | None, typer.Option(
    "--plan", help="Design TOML whose [analysis] section to use instead of the sealed one.")]
OutOpt = Annotated[Path | None, typer.Option(
    "--out", help="Folder for results.json/xlsx and report.html (default: run folder).")]


def analyse(
    data: DataArg = None, outcome: OutcomeOpt = None, arm_col: ArmOpt = "arm",
    cluster_col: ClusterOpt = "pdu", strata_col: StrataOpt = None,
    covariate: CovariateOpt = None, model: ModelOpt = "mixed", family: FamilyOpt = "gaussian",
    control: ControlOpt = "Control", permutations: PermutationsOpt = None,
    seed: SeedOpt = None, small_sample: SmallSampleOpt = "none", ddf: DdfOpt = None,
    where: WhereOpt = None, across_strata: AcrossStrataOpt = False, pod_col: PodOpt = None,
    across_arms: AcrossArmsOpt = False, non_randomised: NonRandomisedOpt = None,
    json_out: JsonOpt = None, register: RegisterOpt = None, outcomes: OutcomesOpt = None,
    plan: PlanOpt = None, out: OutOpt = None,
) -> None:
    """Estimate effects: one model, or the full plan on a run.

    Example: evalkit analyse data.csv --outcome y --arm-col arm --cluster-col pdu
    --strata-col region --covariate x1 --model cr2

    Example: evalkit analyse --register outputs/seeds2 --outcomes outcomes.csv
    """
    if register is not None:
        _run_plan(register, outcomes, out, plan)
        return
    if data is None or outcome is None:
        raise InputError("give DATA and --outcome (one model), or --register DIR --outcomes "
                         "FILE (the pre-specified plan)")
    from evalkit.analysis.run import AnalyseSpec

    spec = AnalyseSpec(
        outcome=outcome, arm_col=arm_col, cluster_col=cluster_col, strata_col=strata_col,
        covariates=list(covariate or []), model=model, family=family, control=control,
        permutations=permutations, seed=seed, small_sample=small_sample, ddf=ddf,
        non_randomised=list(non_randomised or []), allow_clusters_across_strata=across_strata,
        allow_clusters_across_arms=across_arms, pod_col=pod_col,
    )
    _one_model(data, spec, list(where or []), json_out)


def _one_model(data: Path, spec: AnalyseSpec, where: list[str],
               json_out: Path | None) -> None:
    """Load, filter, fit, print and (optionally) write one model's result."""
    from evalkit.analysis.run import analyse_frame, jsonable, load_analysis_table
    from evalkit.io.files import write_text

    spec.validate()
    loaded = load_analysis_table(data, spec, where=where)
    result = analyse_frame(loaded.frame, spec)
    result.diagnostics["rows_read"] = loaded.n_rows
    if loaded.where:
        result.diagnostics["where"] = loaded.where
        result.diagnostics["rows_selected"] = loaded.n_selected
    result.diagnostics["rows_missing_outcome"] = loaded.missing_outcome
    print_result(result)
    if json_out is not None:
        write_text(json_out, json.dumps(jsonable(result.to_dict()), indent=2) + "\n")
        console.print(f"wrote {json_out}")


def _run_plan(register: Path, outcomes: Path | None, out: Path | None,
              plan: Path | None) -> None:
    from evalkit.analysis.plan.run import run_plan

    if outcomes is None:
        raise InputError("--register needs --outcomes FILE (staff_id plus outcome columns)")
    with progress_bar("Fitting the pre-specified models", None) as advance:
        result = run_plan(register, outcomes, out=out, plan_file=plan, on_progress=advance)
    for model_result in result.model_results:
        print_result(model_result)
    for deviation in result.deviations:
        console.print(f"[yellow]deviation:[/] {deviation['outcome']} / {deviation['model']}: "
                      f"{deviation['detail']}")
    for path in result.files.values():
        console.print(f"wrote {path}")


def _fmt(value: object, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if value != value else f"{value:.{digits}g}"
    return str(value)


def print_result(result: ModelResult) -> None:
    """A rich table of contrasts plus counts, ICC, joint test and key diagnostics."""
    table = Table(title=f"{result.model}: {result.outcome}")
    labels = [c.arm if c.randomised else f"{c.arm} (non-randomised)" for c in result.contrasts]
    table.add_column("arm", min_width=min(max(map(len, labels), default=3), 30),
                     overflow="fold")
    for column in ("versus", "estimate", "se", "df", "statistic", "p", "CI"):
        table.add_column(column, overflow="fold")
    for arm, c in zip(labels, result.contrasts, strict=True):
        table.add_row(arm, c.versus, _fmt(c.estimate), _fmt(c.se), _fmt(c.df),
                      _fmt(c.statistic), _fmt(c.p_value),
                      f"[{_fmt(c.ci_low)}, {_fmt(c.ci_high)}]")
    console.print(table)
    diagnostics = result.diagnostics
    dropped = result.n_dropped
    missing = diagnostics.get("rows_missing_outcome")
    console.print(f"n_obs {result.n_obs}, clusters {result.n_clusters}, rows dropped for "
                  f"missing values {_fmt(dropped)}"
                  + ("" if missing is None else f", rows with missing outcome {missing}")
                  + ("" if result.icc is None else f", ICC {_fmt(result.icc)}"))
    if result.joint_test:
        joint = result.joint_test
        console.print(f"joint test ({joint.get('test', '')}): statistic "
                      f"{_fmt(joint.get('statistic'))}, p {_fmt(joint.get('p_value'))}")
    if diagnostics.get("where"):
        console.print(f"rows where {' and '.join(diagnostics['where'])}: "
                      f"{diagnostics.get('rows_selected')} of {diagnostics.get('rows_read')}")
    for name, levels in (diagnostics.get("categorical_covariates") or {}).items():
        console.print(f"  categorical covariate {name}: reference level {levels['reference']!r}"
                      f" ({len(levels['levels'])} levels)")
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    for key in ("df_method", "vcov", "covariance", "converged", "singular", "test_statistic"):
        if key in diagnostics:
            console.print(f"  {key}: {diagnostics[key]}")


COMMANDS = {"analyse": analyse}
