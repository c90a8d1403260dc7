"""The `power` command: MDES, power or clusters needed, from numbers or from the real design."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from evalkit.cli.common import console, progress_bar
from evalkit.errors import InputError

if TYPE_CHECKING:
    from evalkit.power.analytic import Assumptions
    from evalkit.power.job import PowerReport


def _opt(flag: str, text: str, kind: type = float) -> Any:
    """An optional typed option with its help text."""
    return Annotated[kind | None, typer.Option(flag, help=text)]


ConfigOpt = _opt("--config", "Trial design TOML: its real PDUs, strata, fixed units and "
                 "[analysis.power].", Path)
PdusOpt = _opt("--pdus", "PDU roster (CSV or XLSX).", Path)
StaffOpt = _opt("--staff", "Staff roster (CSV or XLSX).", Path)
ClustersOpt = _opt("--clusters", "Clusters J: per block when --blocks is given (as PowerUp!), "
                   "else in total.")
SizeOpt = _opt("--cluster-size", "Staff per cluster n.")
BlocksOpt = _opt("--blocks", "Blocks (strata) K.", int)
ShareOpt = Annotated[float, typer.Option("--treated-share", help="Share treated P.")]
UnitOpt = Annotated[str, typer.Option("--unit", help="pdu or staff: what is randomised.")]
IccOpt = _opt("--icc", "Intra-cluster correlation, in [0, 1).")
R2ClusterOpt = _opt("--r2-cluster", "R² of cluster covariates, in [0, 1).")
R2StaffOpt = _opt("--r2-individual", "R² of staff covariates, in [0, 1).")
CovariatesOpt = _opt("--covariates", "Cluster covariates g.", int)
AlphaOpt = _opt("--alpha", "Two-sided alpha (default 0.05 or the design's).")
PowerOpt = _opt("--power", "Target power (default 0.8).")
CvOpt = Annotated[float, typer.Option("--size-cv", help="CV of cluster sizes (numbers only; "
                                      "--config measures it).")]
SizeMethodOpt = _opt("--size-method", "eldridge or van_breukelen.", str)
AttritionOpt = _opt("--attrition", "Share of staff lost, in [0, 1).")
ContrastsOpt = Annotated[int, typer.Option("--contrasts", help="Contrasts (numbers only).")]
AdjustOpt = _opt("--adjust", "none, bonferroni or holm.", str)
EffectOpt = _opt("--effect", "Effect size (SDs): power at it; the simulated effect.")
SolveOpt = Annotated[bool, typer.Option("--solve-clusters", help="Clusters needed at --effect "
                                        "(numbers only).")]
SimulateOpt = Annotated[int, typer.Option("--simulate", help="Replicates simulating the exact "
                                          "design (--config; 0 = none).")]
WeightingOpt = Annotated[str, typer.Option("--weighting", help="Simulated CR2 on staff (staff) "
                                           "or on PDU means (cluster).")]
WorkersOpt = Annotated[int, typer.Option("--workers", help="Processes for the simulation.")]
SeedOpt = _opt("--seed", "Simulation seed (default: the design's).", int)
AnalysisOpt = Annotated[list[str] | None, typer.Option(
    "--analysis", help="Simulated analysis: cr2 or mixed (repeat; default: the design's).")]
OutOpt = Annotated[Path, typer.Option("--out", help="Folder for power.json and power.html.")]


def power(config: ConfigOpt = None, pdus: PdusOpt = None, staff: StaffOpt = None,
          clusters: ClustersOpt = None, cluster_size: SizeOpt = None, blocks: BlocksOpt = None,
          treated_share: ShareOpt = 0.5, unit: UnitOpt = "pdu", icc: IccOpt = None,
          r2_cluster: R2ClusterOpt = None, r2_individual: R2StaffOpt = None,
          covariates: CovariatesOpt = None, alpha: AlphaOpt = None,
          target_power: PowerOpt = None, size_cv: CvOpt = 0.0,
          size_method: SizeMethodOpt = None, attrition: AttritionOpt = None,
          contrasts: ContrastsOpt = 1, adjust: AdjustOpt = None, effect: EffectOpt = None,
          solve_clusters: SolveOpt = False, simulate: SimulateOpt = 0,
          weighting: WeightingOpt = "staff", workers: WorkersOpt = 2, seed: SeedOpt = None,
          analysis: AnalysisOpt = None, out: OutOpt = Path("outputs/power")) -> None:
    """Power, MDES or clusters needed, from numbers or the design.

    Example: evalkit power --clusters 20 --cluster-size 15 --icc 0.17

    Example: evalkit power --config configs/seeds2.toml --icc 0.05 --r2-cluster 0.3
    --covariates 1 --simulate 1000
    """
    from evalkit.power.report import write_power_outputs  # scipy: not for --help

    given = {"icc": icc, "r2_cluster": r2_cluster, "r2_individual": r2_individual,
             "covariates": covariates, "alpha": alpha, "power": target_power,
             "attrition": attrition, "size_method": size_method, "adjustment": adjust}
    if config is not None:
        report = _from_design(config, pdus, staff, given, effect,
                              (simulate, weighting, workers, seed, tuple(analysis or ())))
    else:
        if clusters is None or cluster_size is None:
            raise InputError("give --clusters and --cluster-size (or --config DESIGN)")
        if simulate:
            raise InputError("--simulate needs --config DESIGN (it simulates the real design)")
        report = _from_numbers(clusters, cluster_size, blocks, treated_share, unit,
                               _assumptions(given, None, size_cv, contrasts), effect,
                               solve_clusters)
    files = write_power_outputs(out, report)
    print_power(report)
    console.print(f"Files: {files['json']}  {files['html']}")


def _from_design(config: Path, pdus: Path | None, staff: Path | None, given: dict[str, Any],
                 effect: float | None, simulation: tuple[int, str, int, int | None, tuple]
                 ) -> PowerReport:
    from evalkit.power.design_inputs import load_design_inputs
    from evalkit.power.job import SimulationRequest, power_from_design, simulate_design

    design, _ = load_design_inputs(config, pdus, staff)
    assumptions = _assumptions(given, design.analysis, size_cv=0.0, contrasts=1)
    replicates, weighting, workers, seed, analyses = simulation
    if not replicates:
        return power_from_design(config, assumptions, pdus, staff, effect)
    if weighting not in ("staff", "cluster"):
        raise InputError(f"--weighting {weighting!r}: allowed staff, cluster")
    request = SimulationRequest(replicates, effect, weighting, workers, seed,  # type: ignore[arg-type]
                                analyses)
    with progress_bar("Simulating the design", replicates) as advance:
        return simulate_design(config, assumptions, request, pdus, staff, advance)


def _from_numbers(clusters: float, cluster_size: float, blocks: int | None,
                  treated_share: float, unit: str, assumptions: Assumptions,
                  effect: float | None, solve_clusters: bool) -> PowerReport:
    from evalkit.power.job import NumbersRequest, power_from_numbers

    if unit not in ("pdu", "staff"):
        raise InputError(f"--unit {unit!r}: allowed pdu, staff")
    request = NumbersRequest(clusters, cluster_size, blocks, treated_share, unit)
    return power_from_numbers(request, assumptions, effect, solve_clusters)


def _assumptions(given: dict[str, Any], analysis: Any, size_cv: float,
                 contrasts: int) -> Assumptions:
    """Command-line values win, then the design's [analysis.power] and alpha, then defaults."""
    from evalkit.power.analytic import Assumptions

    from_design: dict[str, Any] = {}
    if analysis is not None:
        from_design["alpha"] = analysis.alpha
        if analysis.power is not None:
            from_design.update(analysis.power.model_dump())
    chosen = {k: v for k, v in {**from_design, **{k: v for k, v in given.items()
                                                  if v is not None}}.items()}
    if "icc" not in chosen:
        raise InputError("give --icc (the intra-cluster correlation), or an [analysis.power] "
                         "section with icc in the design")
    return Assumptions(**chosen, size_cv=size_cv, contrasts=contrasts)


def print_power(report: PowerReport) -> None:
    """The table of contrasts: model, df, multiplier, MDES and power."""
    from evalkit.power.analytic import SHORT_NAMES

    table = Table(title="Minimum detectable effect (outcome SDs)")
    for column in ("contrast", "randomise", "model", "J arm v ctl", "n (CV)", "df", "M",
                   "MDES", "power"):
        table.add_column(column, justify="left" if column in ("contrast", "randomise",
                                                              "model") else "right")
    for row in report.rows:
        if row["power"] is not None:
            extra = f"{row['power']:.3f} at {row['effect']:.3f}"
        else:
            extra = f"J = {row['clusters_needed']}" if row["clusters_needed"] else ""
        unit = "staff" if row["model"] == "bira2f1" else "PDUs"
        table.add_row(row["contrast"] + ("" if row["randomised"] else " (purposive)"),
                      unit + (" (alt.)" if row["level"] == "alternative" else ""),
                      SHORT_NAMES[row["model"]],
                      f"{row['clusters_arm']:g} v {row['clusters_control']:g}",
                      f"{row['cluster_size']:.0f} ({row['size_cv']:.2f})", f"{row['df']:g}",
                      f"{row['multiplier']:.3f}", f"{row['mdes']:.3f}", extra)
    console.print(table)
    if report.simulation:
        console.print(simulation_table(report.simulation))
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)


def simulation_table(simulation: dict[str, Any]) -> Table:
    """Simulated power (MC SE), Holm power, bias, coverage, type I error, analytic power."""
    table = Table(title=f"Simulation: {simulation['replicates']} replicates at effect "
                        f"{simulation['effect']:.3f}, {simulation['seconds']:.1f} s")
    for column in ("contrast", "analysis", "power (MC SE)", "Holm", "bias", "coverage",
                   "type I (MC SE)", "analytic"):
        table.add_column(column, justify="left" if column in ("contrast", "analysis")
                         else "right")
    for c in simulation["contrasts"]:
        analytic = "" if c["analytic_power"] is None else f"{c['analytic_power']:.3f}"
        table.add_row(c["contrast"], c["analysis"], f"{c['power']:.3f} ({c['power_mc_se']:.3f})",
                      f"{c['power_holm']:.3f}", f"{c['bias']:+.4f}", f"{c['coverage']:.3f}",
                      f"{c['type_i_error']:.3f} ({c['type_i_mc_se']:.3f})", analytic)
    return table


COMMANDS = {"power": power}
