"""Allocation stage: units from the roster -> groups, with each unit's probabilities.

Units are sorted by stratum and ID before randomising, so row order never matters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from evalkit.allocation.balance import batch_mahalanobis, batch_smd, numeric_covariates
from evalkit.allocation.randomise import (
    ALGORITHM_VERSION,
    BATCH_SIZE,
    RandomStream,
    StratifiedDesign,
)
from evalkit.allocation.roster import Roster
from evalkit.errors import ConfigError, InputError, suggestion
from evalkit.trial.design import TrialDesign, group_column

ProgressCallback = Callable[[int], None]


@dataclass
class Allocation:
    """The result of allocating: one row per unit, plus how it was drawn."""

    table: pd.DataFrame
    covariates: list[str]
    method: str
    draws_tried: int = 1
    accepted_balance: dict[str, Any] = field(default_factory=dict)
    probability_method: str = "exact"
    probability_draws: int | None = None
    probability_mc_se: float | None = None
    algorithm: str = ALGORITHM_VERSION


def build_units(design: TrialDesign, roster: Roster) -> pd.DataFrame:
    """The table of units to allocate (PDUs or staff), with strata and numeric covariates."""
    if design.trial.unit == "pdu":
        units = roster.pdus.rename(columns={"pdu_code": "unit_id", "pdu_name": "name"})
        source = roster.pdus_path
    else:
        pdu_columns = roster.pdus.drop(columns=["pdu_name"], errors="ignore")
        units = roster.staff.merge(pdu_columns, on="pdu_code", how="left", suffixes=("", "_pdu"))
        units = units.rename(columns={"staff_id": "unit_id"})
        units = _with_tenure(units)
        source = roster.staff_path
    for column in design.trial.strata:
        if column not in units.columns:
            raise InputError(
                f"stratum column {column!r} not found; available: {', '.join(units.columns)}."
                + suggestion(column, units.columns), file=source, row=1, column=column,
            )
    units = _drop_excluded(units, design, roster)
    if design.trial.unit == "staff":
        _require_staff_in_every_pdu(units, design, roster)
    if units["unit_id"].is_monotonic_increasing:   # rosters often come sorted: no argsort
        return units.reset_index(drop=True)
    return units.sort_values("unit_id", kind="stable").reset_index(drop=True)


def _require_staff_in_every_pdu(units: pd.DataFrame, design: TrialDesign, roster: Roster) -> None:
    """In a staff-level design every PDU in the trial is a stratum part and needs staff."""
    excluded = set(units["pdu_code"]) | set(_excluded_pdus(design, roster))
    empty = roster.pdus.index[~roster.pdus["pdu_code"].isin(excluded)]
    if len(empty):
        position = int(empty[0])
        code = roster.pdus.loc[position, "pdu_code"]
        raise InputError(
            f"stratum with no units: PDU {code!r} has no staff in the staff roster "
            "(add its staff, or list it under trial.exclude)",
            file=roster.pdus_path, row=position + 2, column="pdu_code",
        )


def _excluded_pdus(design: TrialDesign, roster: Roster) -> list[str]:
    if not design.trial.exclude:
        return []
    pdu_units = roster.pdus.rename(columns={"pdu_code": "unit_id", "pdu_name": "name"})
    return resolve_units(design.trial.exclude, pdu_units, "trial.exclude")


def _with_tenure(units: pd.DataFrame) -> pd.DataFrame:
    if "start_date" not in units.columns:
        return units
    started = pd.to_datetime(units["start_date"], errors="coerce")
    if started.notna().any():
        reference = started.max()
        units = units.assign(tenure_years=((reference - started).dt.days / 365.25).round(2))
    return units


def resolve_units(
    names: list[str], units: pd.DataFrame, key: str, pdus: pd.DataFrame | None = None
) -> list[str]:
    """Map names or IDs (case-insensitive) to unit IDs; unknown ones fail with a suggestion."""
    if not names:
        return []
    by_id = {str(unit_id).lower(): unit_id for unit_id in units["unit_id"]}
    by_name: dict[str, list[str]] = {}
    for unit_id, name in zip(units["unit_id"], units["name"], strict=True):
        by_name.setdefault(str(name).lower(), []).append(unit_id)
    resolved = []
    for text in names:
        matching = by_name.get(text.strip().lower(), [])
        unit_id = by_id.get(text.strip().lower()) or (matching[0] if matching else None)
        if text.strip().lower() not in by_id and len(matching) > 1:
            raise ConfigError(f"key {key!r}: {text!r} is the name of {len(matching)} units "
                              f"({', '.join(map(str, matching))}); use the code instead")
        if unit_id is None:
            known = list(units["name"]) + list(units["unit_id"])
            raise ConfigError(f"key {key!r}: {text!r} matches no unit.{suggestion(text, known)}")
        resolved.append(unit_id)
    return resolved


def _drop_excluded(units: pd.DataFrame, design: TrialDesign, roster: Roster) -> pd.DataFrame:
    if not design.trial.exclude:
        return units
    if design.trial.unit == "pdu":
        excluded = set(resolve_units(design.trial.exclude, units, "trial.exclude"))
        return units[~units["unit_id"].isin(excluded)]
    return units[~units["pdu_code"].isin(_excluded_pdus(design, roster))]


def fixed_assignments(design: TrialDesign, units: pd.DataFrame) -> dict[str, str]:
    """unit ID -> arm for units fixed on purpose; a unit fixed in two arms is an error."""
    fixed: dict[str, str] = {}
    for index, arm in enumerate(design.arms):
        for unit_id in resolve_units(arm.fixed, units, f"arms[{index}].fixed"):
            if unit_id in fixed and fixed[unit_id] != arm.name:
                raise ConfigError(
                    f"key 'arms[{index}].fixed': unit {unit_id!r} is fixed in two arms "
                    f"({fixed[unit_id]!r} and {arm.name!r})"
                )
            fixed[unit_id] = arm.name
    return fixed


def stratum_codes(units: pd.DataFrame, strata: list[str]) -> tuple[np.ndarray, list[str]]:
    """Each unit's stratum as an integer code, and the stratum keys in sorted order.

    `keys[codes]` is `stratum_keys(units, strata)`; the text key is built once per distinct
    combination of values, not once per unit. Blank stratum values are errors.
    """
    combined = np.zeros(len(units), dtype=np.int64)
    labels = np.array([""], dtype=object)
    for position, column in enumerate(strata):
        codes, uniques = pd.factorize(units[column], use_na_sentinel=False)
        texts = np.array([str(value) for value in uniques], dtype=object)
        _require_no_blank_stratum(units, column, codes, texts)
        pairs, pair_uniques = pd.factorize(combined * max(len(texts), 1) + codes)
        previous, value = np.divmod(pair_uniques, max(len(texts), 1))
        joiner = " | " if position else ""
        labels = np.array([labels[p] + joiner + texts[v] for p, v in zip(previous, value,
                                                                          strict=True)],
                          dtype=object)
        combined = pairs
    same_text, distinct = pd.factorize(labels)
    ranked = sorted(range(len(distinct)), key=distinct.__getitem__)
    rank = np.empty(len(ranked), dtype=np.int64)
    rank[ranked] = np.arange(len(ranked))
    return rank[same_text][combined], [distinct[i] for i in ranked]


def _require_no_blank_stratum(units: pd.DataFrame, column: str, codes: np.ndarray,
                              texts: np.ndarray) -> None:
    blank = np.flatnonzero([text.strip() == "" for text in texts])
    if blank.size:
        first = int(np.flatnonzero(np.isin(codes, blank))[0])
        unit_id = units["unit_id"].iloc[first]
        raise InputError(f"unit {unit_id!r} has a blank stratum value", column=column)


def stratum_keys(units: pd.DataFrame, strata: list[str]) -> pd.Series:
    """A text key per unit for its stratum ('' when unstratified); blank values are errors."""
    codes, keys = stratum_codes(units, strata)
    text = pd.Series(np.array(keys, dtype=object)[codes], index=units.index, dtype=object)
    return text.astype(str) if strata else text   # the dtype joining text columns gives


def _pool_order(units: pd.DataFrame, codes: np.ndarray, in_pool: np.ndarray) -> np.ndarray:
    """Positions of the randomised units, sorted by (stratum, unit ID)."""
    positions = np.flatnonzero(in_pool)
    if units["unit_id"].is_monotonic_increasing:
        return positions[np.argsort(codes[positions], kind="stable")]
    frame = pd.DataFrame({"code": codes[positions],
                          "unit_id": units["unit_id"].to_numpy()[positions]})
    return positions[frame.sort_values(["code", "unit_id"], kind="stable").index.to_numpy()]


def allocate(
    design: TrialDesign, units: pd.DataFrame, on_progress: ProgressCallback | None = None
) -> Allocation:
    """Allocate units to groups as the design says (complete or re-randomised)."""
    if units.empty:
        raise InputError("no units to allocate (is every unit excluded?)")
    fixed = fixed_assignments(design, units)
    codes, _ = stratum_codes(units, design.trial.strata)
    order = _pool_order(units, codes, ~units["unit_id"].isin(fixed).to_numpy())
    arms = design.randomised_arms
    sizes = np.bincount(codes[order], minlength=1)
    scheme = StratifiedDesign(sizes[sizes > 0].tolist(), [arm.ratio for arm in arms])
    covariates = _balance_covariates(design, units)
    stream = RandomStream(design.trial.seed, purpose=0)
    allocation = Allocation(table=pd.DataFrame(), covariates=covariates,
                            method=design.randomisation.method)
    if design.randomisation.method == "complete" or not order.size:
        drawn = scheme.draw(1, stream)[0] if order.size else np.zeros(0, dtype=np.int8)
        probabilities = np.tile(scheme.exact_probabilities(), (order.size, 1))
    else:
        rule = AcceptanceRule(design, units, units.iloc[order], fixed, covariates)
        drawn, tried, balance = rule.first_accepted(scheme, stream, on_progress)
        probabilities, draws, mc_se = rule.simulated_probabilities(scheme, design.trial.seed)
        allocation.draws_tried, allocation.accepted_balance = tried, balance
        allocation.probability_method = "simulated"
        allocation.probability_draws, allocation.probability_mc_se = draws, mc_se
    allocation.table = _allocation_table(design, units, fixed, order, drawn, probabilities)
    return allocation


def _balance_covariates(design: TrialDesign, units: pd.DataFrame) -> list[str]:
    chosen = design.randomisation.balance_covariates
    for name in chosen:
        if name not in units.columns or not pd.api.types.is_numeric_dtype(units[name]):
            numeric = numeric_covariates(units)
            raise ConfigError(
                f"key 'randomisation.balance_covariates': {name!r} is not a numeric column of "
                f"the units; numeric columns: {numeric}.{suggestion(name, numeric)}"
            )
    return list(chosen) or numeric_covariates(units)


def _allocation_table(design: TrialDesign, units: pd.DataFrame, fixed: dict[str, str],
                      order: np.ndarray, drawn: np.ndarray,
                      probabilities: np.ndarray) -> pd.DataFrame:
    """One row per unit: group, how it was assigned and each arm's probability."""
    strata = [c for c in design.trial.strata if c not in ("unit_id", "name")]
    table = units[["unit_id", "name", *strata]].copy()
    names = [arm.name for arm in design.arms]
    randomised = [arm.name for arm in design.randomised_arms]
    arm_of = np.full(len(table), -1, dtype=np.int64)
    is_fixed = table["unit_id"].isin(fixed).to_numpy()
    if fixed:
        arm_of[is_fixed] = [names.index(fixed[u]) for u in table["unit_id"].to_numpy()[is_fixed]]
    arm_of[order] = np.array([names.index(n) for n in randomised], dtype=np.int64)[drawn]
    table["group"] = np.array(names, dtype=object)[arm_of]
    table["assignment"] = assignment_column(is_fixed)
    for index, name in enumerate(names):
        column = np.where(arm_of == index, 1.0, 0.0)
        if name in randomised:
            column[order] = probabilities[:, randomised.index(name)]
        table[group_column(name)] = column
    return table


def assignment_column(is_fixed: np.ndarray) -> np.ndarray:
    """'fixed' or 'random' per unit: two shared strings picked, which pandas stores as the text
    column `np.where`'s fixed-width array gave, in a quarter of the time (none: that array)."""
    if not is_fixed.size:
        return np.where(is_fixed, "fixed", "random")
    return np.array(["random", "fixed"], dtype=object)[is_fixed.astype(np.int8)]


class AcceptanceRule:
    """Re-randomisation: a candidate passes when every randomised arm is balanced vs control."""

    def __init__(self, design: TrialDesign, units: pd.DataFrame, pool: pd.DataFrame,
                 fixed: dict[str, str], covariates: list[str]) -> None:
        spec = design.randomisation
        self.spec, self.max_draws = spec, spec.max_draws
        self.arm_names = [arm.name for arm in design.randomised_arms]
        self.control = self.arm_names.index(design.control_arm)
        self.covariates = spec.balance_covariates
        fixed_units = units[units["unit_id"].isin(fixed)]
        fixed_arms = fixed_units["unit_id"].map(fixed)
        in_pool_arms = fixed_arms.isin(self.arm_names)
        self.fixed_codes = np.array([self.arm_names.index(a) for a in fixed_arms[in_pool_arms]],
                                    dtype=np.int8)
        values = pd.concat([pool[self.covariates], fixed_units.loc[in_pool_arms, self.covariates]])
        self.values = values.to_numpy(float)
        from scipy import stats  # imported here: only re-randomisation needs it

        self.limit = (spec.max_abs_smd if spec.max_abs_smd is not None
                      else float(stats.chi2.ppf(spec.mahalanobis_acceptance, len(self.covariates))))

    def scores(self, candidates: np.ndarray) -> np.ndarray:
        """Worst balance statistic over arms, per candidate (lower is better)."""
        full = np.hstack([candidates, np.tile(self.fixed_codes, (len(candidates), 1))])
        worst = np.zeros(len(candidates))
        for arm in range(len(self.arm_names)):
            if arm == self.control:
                continue
            if self.spec.max_abs_smd is not None:
                score = np.abs(batch_smd(full, self.values, arm, self.control)).max(axis=1)
            else:
                score = batch_mahalanobis(full, self.values, arm, self.control)
            worst = np.maximum(worst, score)
        return worst

    def first_accepted(self, scheme: StratifiedDesign, stream: RandomStream,
                       on_progress: ProgressCallback | None) -> tuple[np.ndarray, int, dict]:
        """Draw batches in order until a candidate passes; fail after `max_draws`."""
        tried = 0
        while tried < self.max_draws:
            batch = scheme.draw(BATCH_SIZE, stream)[: self.max_draws - tried]
            scores = self.scores(batch)
            passing = np.flatnonzero(scores <= self.limit)
            if passing.size:
                first = int(passing[0])
                if on_progress:
                    on_progress(first + 1)
                return batch[first], tried + first + 1, self._balance_record(scores[first])
            tried += len(batch)
            if on_progress:
                on_progress(len(batch))
        raise ConfigError(
            f"key 'randomisation.max_draws': no allocation passed the balance rule in "
            f"{self.max_draws} draws; relax the rule or raise max_draws"
        )

    def _balance_record(self, score: float) -> dict[str, Any]:
        rule = "max_abs_smd" if self.spec.max_abs_smd is not None else "mahalanobis"
        return {"rule": rule, "limit": self.limit, "accepted_value": float(score),
                "covariates": list(self.covariates)}

    def simulated_probabilities(
        self, scheme: StratifiedDesign, seed: int
    ) -> tuple[np.ndarray, int, float]:
        """Each unit's arm probabilities over accepted allocations, by simulation."""
        target = self.spec.probability_draws
        stream = RandomStream(seed, purpose=1)
        counts = np.zeros((scheme.n_units, len(self.arm_names)))
        accepted = attempts = 0
        while accepted < target and attempts < 20 * self.max_draws:
            batch = scheme.draw(BATCH_SIZE, stream)
            attempts += len(batch)
            good = batch[self.scores(batch) <= self.limit][: target - accepted]
            for arm in range(len(self.arm_names)):
                counts[:, arm] += (good == arm).sum(axis=0)
            accepted += len(good)
        probabilities = counts / max(accepted, 1)
        mc_se = float(np.sqrt(probabilities * (1 - probabilities) / max(accepted, 1)).max())
        return probabilities, accepted, mc_se
