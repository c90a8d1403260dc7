"""Simulated power of the exact design: real strata and PDU sizes, fixed units kept, the
evalkit allocation algorithm, outcomes from the assumed ICC and R², and CR2 analysis.

Each replicate draws an allocation with `StratifiedDesign` (the algorithm `assign` uses), then
cluster means  y_j = effect_a(j) + b z_j + u_j + e_j  with u_j ~ N(0, rho (1 - R2_2)), a
cluster covariate z_j explaining rho R2_2, and e_j ~ N(0, (1 - rho)(1 - R2_1) / n_j) for n_j
staff after attrition (staff covariates are taken as partialled out, so R2_1 lowers the
within-PDU variance). The analysis regresses on arm dummies, stratum fixed effects and z.

CR2 here is the staff-level OLS with PDU clusters, computed exactly from cluster means: with
regressors constant within a cluster, staff-level OLS is least squares on cluster means
weighted by n_j, the CR2 adjustment of cluster j is (1 - n_j x_j'Mx_j)^(-1/2) on its residual
sum, and the Bell-McCaffrey (Satterthwaite) degrees of freedom under the working model
Var(y) = I reduce to a J x J matrix Omega_jk = a_j a_k n_j (d_jk - n_k x_j'M x_k)
(Bell and McCaffrey 2002; Pustejovsky and Tipton 2018), so df = tr(Omega)^2 / ||Omega||^2.
`weighting = "cluster"` gives the same for unweighted cluster means. This module is written
inside the power stage (analysis is a later stage and may not be imported) and vectorised
over replicates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from evalkit.allocation.allocate import fixed_assignments, stratum_keys
from evalkit.allocation.randomise import RandomStream, StratifiedDesign
from evalkit.errors import InputError
from evalkit.power.analytic import Assumptions
from evalkit.power.mixed_means import fit_mixed_means
from evalkit.trial.design import TrialDesign

Weighting = Literal["staff", "cluster"]
ANALYSES = ("cr2", "mixed")
CHUNK = 50
SEED_OFFSET = 10_000  # purposes 0 and 1 of the design seed belong to `assign`


@dataclass(frozen=True)
class SimulationSpec:
    """Everything a worker needs, as plain arrays (picklable)."""

    pool_sizes: tuple[int, ...]          # randomised units per stratum, in sorted order
    ratios: tuple[int, ...]              # of the randomised arms
    randomised_codes: tuple[int, ...]    # design-arm index of each randomised arm
    pool_stratum: np.ndarray             # stratum index of each pool unit
    fixed_codes: np.ndarray              # design-arm index of each fixed unit
    fixed_stratum: np.ndarray
    sizes: np.ndarray                    # staff with outcomes per PDU: pool first, then fixed
    n_strata: int
    arm_names: tuple[str, ...]
    arms_present: tuple[str, ...]        # arms with units (the others get no dummy)
    control: int
    assumptions: Assumptions
    effects: np.ndarray                  # true effect per design arm (0 for control)
    weighting: Weighting
    seed: int
    analyses: tuple[str, ...] = ("cr2",)


def build_spec(design: TrialDesign, units: pd.DataFrame, sizes: pd.Series,
               assumptions: Assumptions, effect: float, weighting: Weighting = "staff",
               seed: int | None = None, analyses: tuple[str, ...] = ("cr2",)
               ) -> SimulationSpec:
    """The simulation's view of a PDU-level design (units as `build_units` returns them)."""
    if design.trial.unit != "pdu":
        raise InputError("simulation supports designs with unit = \"pdu\" (PDUs randomised); "
                         "use the analytic BIRA2_1f row for staff-level designs")
    fixed = fixed_assignments(design, units)
    keys = stratum_keys(units, design.trial.strata)
    strata = sorted(keys.unique())
    frame = units.assign(_stratum=keys, _code=keys.map({s: i for i, s in enumerate(strata)}))
    pool = frame[~frame["unit_id"].isin(fixed)].sort_values(["_stratum", "unit_id"],
                                                            kind="stable")
    fixed_units = frame[frame["unit_id"].isin(fixed)]
    names = [arm.name for arm in design.arms]
    staff = pd.concat([pool, fixed_units])["unit_id"].map(sizes).fillna(0).to_numpy(float)
    staff = np.round(staff * (1 - assumptions.attrition))  # staff with outcomes
    unknown = set(analyses) - set(ANALYSES)
    if unknown:
        raise InputError(f"simulated analysis {sorted(unknown)[0]!r}: allowed "
                         f"{', '.join(ANALYSES)}")
    if (staff < 1).any():
        raise InputError("every PDU in the simulation needs staff (a PDU has none in the "
                         "staff roster)")
    effects = np.array([0.0 if arm.control else effect for arm in design.arms])
    used = {arm.name for arm in design.randomised_arms} | set(fixed.values())
    names_used = tuple(name for name in names if name in used or name == design.control_arm)
    return SimulationSpec(
        pool_sizes=tuple(int(n) for n in pool.groupby("_stratum", sort=True).size()),
        ratios=tuple(arm.ratio for arm in design.randomised_arms),
        randomised_codes=tuple(names.index(arm.name) for arm in design.randomised_arms),
        pool_stratum=pool["_code"].to_numpy(int),
        fixed_codes=np.array([names.index(fixed[u]) for u in fixed_units["unit_id"]], int),
        fixed_stratum=fixed_units["_code"].to_numpy(int), sizes=staff, n_strata=len(strata),
        arm_names=tuple(names), arms_present=names_used, control=names.index(design.control_arm),
        assumptions=assumptions, effects=effects, weighting=weighting, analyses=analyses,
        seed=design.trial.seed if seed is None else seed)


def _treated_codes(spec: SimulationSpec) -> list[int]:
    """Design-arm indices compared with control: every arm with units except control."""
    return [i for i, name in enumerate(spec.arm_names)
            if i != spec.control and name in spec.arms_present]


def _design_matrices(spec: SimulationSpec, arms: np.ndarray, z: np.ndarray | None) -> np.ndarray:
    """(R x J x p): intercept, a dummy per non-control arm, stratum effects, covariate."""
    replicates, clusters = arms.shape
    treated = _treated_codes(spec)
    columns = [np.ones((replicates, clusters))]
    columns += [(arms == a).astype(float) for a in treated]
    stratum = np.concatenate([spec.pool_stratum, spec.fixed_stratum])
    columns += [np.broadcast_to((stratum == s).astype(float), (replicates, clusters))
                for s in range(1, spec.n_strata)]
    if z is not None:
        columns.append(z)
    return np.stack(columns, axis=2)


def cr2_fit(x: np.ndarray, ys: list[np.ndarray], weights: np.ndarray,
            coefficients: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimates, CR2 standard errors and Bell-McCaffrey df, per outcome, coefficient, replicate.

    x: (R x J x p) cluster-level regressors; ys: (R x J) cluster means; weights: (J,) staff per
    cluster (staff-level OLS) or ones (cluster means). Returns arrays shaped
    (outcomes x coefficients x R); df does not depend on the outcome: (coefficients x R).
    """
    xw = x * weights[None, :, None]
    m = np.linalg.inv(np.swapaxes(xw, 1, 2) @ x)
    q = x @ m @ np.swapaxes(x, 1, 2)
    root = np.sqrt(np.clip(1 - weights[None, :] * np.einsum("rjj->rj", q), 1e-12, None))
    identity = np.eye(x.shape[1])[None, :, :]
    spread = identity - q * weights[None, None, :]
    adjustments, dfs = [], []
    for coefficient in coefficients:
        a = np.einsum("rjp,rp->rj", x, m[:, :, coefficient]) / root
        omega = (a * weights[None, :])[:, :, None] * spread * a[:, None, :]
        dfs.append(np.einsum("rjj->r", omega) ** 2 / np.sum(omega**2, axis=(1, 2)))
        adjustments.append(a * weights[None, :])
    estimates, errors = [], []
    for y in ys:
        beta = (m @ (np.swapaxes(xw, 1, 2) @ y[:, :, None]))[:, :, 0]
        resid = y - (x @ beta[:, :, None])[:, :, 0]
        estimates.append([beta[:, c] for c in coefficients])
        errors.append([np.sqrt(np.sum((a * resid) ** 2, axis=1)) for a in adjustments])
    return np.array(estimates), np.array(errors), np.array(dfs)


def draw_arms(spec: SimulationSpec, replicates: int, chunk: int) -> np.ndarray:
    """(R x J) design-arm index per PDU: pool drawn by the evalkit algorithm, fixed kept."""
    scheme = StratifiedDesign(spec.pool_sizes, spec.ratios)
    stream = RandomStream(spec.seed, purpose=SEED_OFFSET + chunk)
    drawn = scheme.draw(replicates, stream) if scheme.n_units else np.zeros((replicates, 0), int)
    pool_arms = np.asarray(spec.randomised_codes)[drawn]
    return np.hstack([pool_arms, np.tile(spec.fixed_codes, (replicates, 1))])


def simulate_chunk(spec: SimulationSpec, replicates: int,
                   chunk: int) -> dict[str, dict[str, np.ndarray]]:
    """One chunk: per analysis, estimates, SEs and df (outcome x contrast x replicate), the
    first outcome with the effect, the second at effect 0 (the same noise)."""
    a = spec.assumptions
    arms = draw_arms(spec, replicates, chunk)
    rng = np.random.default_rng(np.random.SeedSequence(spec.seed,
                                                       spawn_key=(2 * SEED_OFFSET + chunk,)))
    staff, shape = spec.sizes, arms.shape
    within_variance = (1 - a.icc) * (1 - a.r2_individual)
    z = rng.standard_normal(shape) if a.r2_cluster > 0 else None
    noise = (math.sqrt(a.icc * (1 - a.r2_cluster)) * rng.standard_normal(shape)
             + np.sqrt(within_variance / staff) * rng.standard_normal(shape))
    if z is not None:
        noise = noise + math.sqrt(a.icc * a.r2_cluster) * z
    x = _design_matrices(spec, arms, z)
    coefficients = list(range(1, 1 + len(_treated_codes(spec))))
    outcomes = [noise + spec.effects[arms], noise]
    results = {}
    if "cr2" in spec.analyses:
        weights = staff if spec.weighting == "staff" else np.ones_like(staff)
        estimates, errors, dfs = cr2_fit(x, outcomes, weights, coefficients)
        results["cr2"] = {"estimate": estimates, "se": errors,
                          "df": np.broadcast_to(dfs, estimates.shape).copy()}
    if "mixed" in spec.analyses:
        within = within_variance * rng.chisquare(staff.sum() - staff.size, replicates)
        fits = [fit_mixed_means(x, y, staff, within, coefficients) for y in outcomes]
        results["mixed"] = {key: np.array([fit[i] for fit in fits])
                            for i, key in enumerate(("estimate", "se", "df"))}
    return results


def run_simulation(spec: SimulationSpec, replicates: int, workers: int = 2,
                   on_progress: Callable[[int], None] | None = None
                   ) -> dict[str, dict[str, np.ndarray]]:
    """All replicates, in chunks over `workers` processes; same answer for any worker count."""
    if replicates < 10:
        raise InputError(f"simulate at least 10 replicates (got {replicates})")
    sizes = [min(CHUNK, replicates - start) for start in range(0, replicates, CHUNK)]
    parts: dict[int, dict[str, dict[str, np.ndarray]]] = {}
    if workers <= 1:
        for chunk, size in enumerate(sizes):
            parts[chunk] = simulate_chunk(spec, size, chunk)
            if on_progress:
                on_progress(size)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(simulate_chunk, spec, size, chunk): (chunk, size)
                       for chunk, size in enumerate(sizes)}
            for future in as_completed(futures):
                chunk, size = futures[future]
                parts[chunk] = future.result()
                if on_progress:
                    on_progress(size)
    ordered = [parts[c] for c in range(len(sizes))]
    return {analysis: {key: np.concatenate([p[analysis][key] for p in ordered], axis=-1)
                       for key in ordered[0][analysis]} for analysis in ordered[0]}


def summarise(spec: SimulationSpec, draws: dict[str, np.ndarray], effect: float,
              analysis: str = "cr2") -> list[dict[str, float | str]]:
    """Power with its Monte Carlo SE, Holm power, bias, coverage and type I error per contrast."""
    a = spec.assumptions
    treated = [spec.arm_names[i] for i in _treated_codes(spec)]
    control = spec.arm_names[spec.control]
    df = draws["df"]
    p_values = 2 * stats.t.sf(np.abs(draws["estimate"] / draws["se"]), df)
    holm = _holm_rejections(p_values[0], a.alpha)
    critical = stats.t.ppf(1 - a.alpha / 2, df[0])
    rows = []
    for index, name in enumerate(treated):
        estimate, se = draws["estimate"][0, index], draws["se"][0, index]
        count = estimate.size
        power = float(np.mean(p_values[0, index] < a.test_alpha))
        type_i = float(np.mean(p_values[1, index] < a.test_alpha))
        rows.append({
            "contrast": f"{name} vs {control}", "analysis": analysis, "power": power,
            "power_mc_se": math.sqrt(power * (1 - power) / count),
            "power_holm": float(np.mean(holm[index])),
            "bias": float(np.mean(estimate - effect)),
            "bias_mc_se": float(np.std(estimate, ddof=1) / math.sqrt(count)),
            "coverage": float(np.mean(np.abs(estimate - effect) <= critical[index] * se)),
            "type_i_error": type_i,
            "type_i_mc_se": math.sqrt(max(type_i * (1 - type_i), a.test_alpha
                                          * (1 - a.test_alpha)) / count),
            "mean_se": float(np.mean(se)), "sd_estimate": float(np.std(estimate, ddof=1)),
            "mean_df": float(np.mean(df[0, index]))})
    return rows


def _holm_rejections(p_values: np.ndarray, alpha: float) -> np.ndarray:
    """(contrasts x R) Holm rejections at family level alpha."""
    m = p_values.shape[0]
    order = np.argsort(p_values, axis=0)
    sorted_p = np.take_along_axis(p_values, order, axis=0)
    thresholds = alpha / (m - np.arange(m))[:, None]
    passed = np.cumprod(sorted_p <= thresholds, axis=0).astype(bool)
    rejected = np.zeros_like(passed)
    np.put_along_axis(rejected, order, passed, axis=0)
    return rejected
