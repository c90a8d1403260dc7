"""The `power` command: MDES, power or clusters needed, from numbers or from the real design."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from evalkit.cli.common import console, progress_bar
from evalkit.errors import InputError
from evalkit.power.analytic import SHORT_NAMES, Assumptions
from evalkit.power.design_inputs import load_design_inputs
from evalkit.power.job import (
    NumbersRequest,
    PowerReport,
    SimulationRequest,
    power_from_design,
    power_from_numbers,
    simulate_design,
)
from evalkit.power.report import write_power_outputs

Opt = typer.Option


def power(
    config: Annotated[Path | None, Opt("--config", help="Trial design TOML: use its real PDUs, "
                                       "strata, fixed units and [analysis.power].")] = None,
    pdus: Annotated[Path | None, Opt("--pdus", help="PDU roster (CSV or XLSX).")] = None,
    staff: Annotated[Path | None, Opt("--staff", help="Staff roster (CSV or XLSX).")] = None,
    clusters: Annotated[float | None, Opt("--clusters", help="Clusters J: per block when "
                                          "--blocks is given (as PowerUp!), else in total.")
                        ] = None,
    cluster_size: Annotated[float | None, Opt("--cluster-size", help="Staff per cluster n.")
                            ] = None,
    blocks: Annotated[int | None, Opt("--blocks", help="Blocks (strata) K.")] = None,
    treated_share: Annotated[float, Opt("--treated-share", help="Share treated P.")] = 0.5,
    unit: Annotated[str, Opt("--unit", help="pdu or staff: what is randomised.")] = "pdu",
    icc: Annotated[float | None, Opt("--icc", help="Intra-cluster correlation, in [0, 1).")
                   ] = None,
    r2_cluster: Annotated[float | None, Opt("--r2-cluster", help="R² of cluster covariates.")
                          ] = None,
    r2_individual: Annotated[float | None, Opt("--r2-individual", help="R² of staff covariates.")
                             ] = None,
    covariates: Annotated[int | None, Opt("--covariates", help="Cluster covariates g.")] = None,
    alpha: Annotated[float | None, Opt("--alpha", help="Two-sided alpha.")] = None,
    target_power: Annotated[float | None, Opt("--power", help="Target power.")] = None,
    size_cv: Annotated[float, Opt("--size-cv", help="CV of cluster sizes (numbers only; "
                                  "--config measures it).")] = 0.0,
    size_method: Annotated[str | None, Opt("--size-method", help="eldridge or van_breukelen.")
                           ] = None,
    attrition: Annotated[float | None, Opt("--attrition", help="Share of staff lost.")] = None,
    contrasts: Annotated[int, Opt("--contrasts", help="Contrasts tested (numbers only).")] = 1,
    adjust: Annotated[str | None, Opt("--adjust", help="none, bonferroni or holm.")] = None,
    effect: Annotated[float | None, Opt("--effect", help="Effect size for power.")] = None,
    solve_clusters: Annotated[bool, Opt("--solve-clusters", help="Solve for clusters needed "
                                        "at --effect (numbers only).")] = False,
    simulate: Annotated[int, Opt("--simulate", help="Replicates to simulate the exact design "
                                 "(--config only; 0 = none).")] = 0,
    weighting: Annotated[str, Opt("--weighting", help="Simulated CR2 on staff (staff) or on "
                                  "PDU means (cluster).")] = "staff",
    workers: Annotated[int, Opt("--workers", help="Processes for the simulation.")] = 2,
    seed: Annotated[int | None, Opt("--seed", help="Simulation seed (default: the design's).")
                    ] = None,
    out: Annotated[Path, Opt("--out", help="Folder for power.json and power.html.")
                   ] = Path("outputs/power"),
) -> None:
    """Power, MDES or clusters needed, from numbers or the design.

    Example: evalkit power --clusters 20 --cluster-size 15 --icc 0.17

    Example: evalkit power --config configs/seeds2.toml --icc 0.05 --r2-cluster 0.3
    --covariates 1 --simulate 1000
    """
    given = {"icc": icc, "r2_cluster": r2_cluster, "r2_individual": r2_individual,
             "covariates": covariates, "alpha": alpha, "power": target_power,
             "attrition": attrition, "size_method": size_method, "adjustment": adjust}
    if config is not None:
        design, _ = load_design_inputs(config, pdus, staff)
        assumptions = _assumptions(given, design.analysis, size_cv=0.0, contrasts=1)
        if simulate:
            if weighting not in ("staff", "cluster"):
                raise InputError(f"--weighting {weighting!r}: allowed staff, cluster")
            request = SimulationRequest(simulate, effect, weighting, workers, seed)  # type: ignore[arg-type]
            with progress_bar("Simulating the design", simulate) as advance:
                report = simulate_design(config, assumptions, request, pdus, staff, advance)
        else:
            report = power_from_design(config, assumptions, pdus, staff, effect)
    else:
        if clusters is None or cluster_size is None:
            raise InputError("give --clusters and --cluster-size (or --config DESIGN)")
        if simulate:
            raise InputError("--simulate needs --config DESIGN (it simulates the real design)")
        if unit not in ("pdu", "staff"):
            raise InputError(f"--unit {unit!r}: allowed pdu, staff", column="--unit")
        assumptions = _assumptions(given, None, size_cv=size_cv, contrasts=contrasts)
        request = NumbersRequest(clusters, cluster_size, blocks, treated_share, unit)
        report = power_from_numbers(request, assumptions, effect, solve_clusters)
    files = write_power_outputs(out, report)
    print_power(report)
    console.print(f"Files: {files['json']}  {files['html']}")


def _assumptions(given: dict[str, Any], analysis: Any, size_cv: float,
                 contrasts: int) -> Assumptions:
    """Command-line values win, then the design's [analysis.power] and alpha, then defaults."""
    from_design: dict[str, Any] = {}
    if analysis is not None:
        from_design["alpha"] = analysis.alpha
        if analysis.power is not None:
            from_design.update(analysis.power.model_dump())
    chosen = {k: v for k, v in {**from_design, **{k: v for k, v in given.items()
                                                  if v is not None}}.items()}
    if "icc" not in chosen:
        raise InputError("give --icc (the intra-cluster correlation), or an [analysis.power] "
                         "section with icc in the design", column="--icc")
    return Assumptions(**chosen, size_cv=size_cv, contrasts=contrasts)


def print_power(report: PowerReport) -> None:
    """The table of contrasts: model, df, multiplier, MDES and power."""
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
    for column in ("contrast", "power (MC SE)", "Holm", "bias", "coverage", "type I (MC SE)",
                   "analytic"):
        table.add_column(column, justify="left" if column == "contrast" else "right")
    for c in simulation["contrasts"]:
        analytic = "" if c["analytic_power"] is None else f"{c['analytic_power']:.3f}"
        table.add_row(c["contrast"], f"{c['power']:.3f} ({c['power_mc_se']:.3f})",
                      f"{c['power_holm']:.3f}", f"{c['bias']:+.4f}", f"{c['coverage']:.3f}",
                      f"{c['type_i_error']:.3f} ({c['type_i_mc_se']:.3f})", analytic)
    return table


COMMANDS = {"power": power}
