"""One model on one data frame: a typed spec, validation, dispatch to the tested estimators.

`analyse_frame(df, spec)` is what `evalkit analyse DATA --model ...` calls; the estimators
themselves live in mixed.py, ols.py, gee.py, dim.py and randomisation_inference.py.
Estimator failures (bad input, a mixed model or GEE that cannot be fitted) become
`EvalkitError`s with a clear message, never a traceback.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evalkit.analysis.data import AnalysisColumns, AnalysisInputError
from evalkit.analysis.dim import difference_in_means
from evalkit.analysis.gee import GEEConvergenceError, fit_gee
from evalkit.analysis.mixed import ModelFitError, fit_mixed
from evalkit.analysis.ols import fit_ols_cr
from evalkit.analysis.randomisation_inference import randomisation_test
from evalkit.analysis.results import ModelResult
from evalkit.errors import EvalkitError, InputError, suggestion
from evalkit.io.files import read_table

FAMILIES = ("gaussian", "binomial", "poisson")
SMALL_SAMPLE = ("none", "mancl-derouen")
MISSING_TEXT = ("", "NA", "N/A", "NaN", "nan", "NULL", "null", ".")


class ModelFailed(EvalkitError):
    """The model could not be fitted to these data (exit 2, with advice)."""


@dataclass
class AnalyseSpec:
    """Everything `analyse_frame` needs to fit one model to one outcome."""

    outcome: str
    arm_col: str = "arm"
    cluster_col: str = "pdu"
    strata_col: str | None = None
    covariates: list[str] = field(default_factory=list)
    model: str = "mixed"
    family: str = "gaussian"
    control: str = "Control"
    permutations: int = 10_000
    seed: int = 0
    small_sample: str = "none"
    non_randomised: list[str] = field(default_factory=list)
    alpha: float = 0.05
    fixed_clusters: Collection[str] = ()
    accept: Callable[[pd.Series], bool] | None = None
    ri_arms: list[str] | None = None

    def validate(self) -> None:
        """Raise InputError for an unknown choice or an impossible combination."""
        for name, value, allowed in (("--model", self.model, tuple(MODEL_REGISTRY)),
                                     ("--family", self.family, FAMILIES),
                                     ("--small-sample", self.small_sample, SMALL_SAMPLE)):
            if value not in allowed:
                raise InputError(f"{name} {value!r} is not one of {', '.join(allowed)}."
                                 + suggestion(value, allowed))
        if self.model == "gee" and self.family == "gaussian":
            raise InputError("--model gee needs --family binomial or poisson (for a continuous "
                             "outcome use --model mixed, cr2, cr1, dim or ri)")
        if self.model != "gee" and self.family != "gaussian":
            raise InputError(f"--model {self.model} is for continuous (gaussian) outcomes; for a "
                             f"{self.family} outcome use --model gee")
        if self.small_sample != "none" and self.model != "gee":
            raise InputError("--small-sample mancl-derouen applies to --model gee only")
        if self.permutations < 1:
            raise InputError("--permutations must be at least 1")

    @property
    def cols(self) -> AnalysisColumns:
        """The columns the estimators read, as one typed object."""
        return AnalysisColumns(outcome=self.outcome, arm=self.arm_col, cluster=self.cluster_col,
                               strata=self.strata_col, covariates=tuple(self.covariates),
                               control=self.control)

    @property
    def columns(self) -> list[str]:
        return self.cols.needed


def _fit_mixed(df: pd.DataFrame, spec: AnalyseSpec) -> ModelResult:
    return fit_mixed(df, spec.cols, alpha=spec.alpha, non_randomised_arms=spec.non_randomised)


def _fit_cr(vcov: str) -> Callable[[pd.DataFrame, AnalyseSpec], ModelResult]:
    def fit(df: pd.DataFrame, spec: AnalyseSpec) -> ModelResult:
        return fit_ols_cr(df, spec.cols, vcov=vcov, alpha=spec.alpha,
                          non_randomised_arms=spec.non_randomised)
    return fit


def _fit_gee(df: pd.DataFrame, spec: AnalyseSpec) -> ModelResult:
    return fit_gee(df, spec.cols, family=spec.family, small_sample=spec.small_sample,
                   alpha=spec.alpha, non_randomised_arms=spec.non_randomised)


def _fit_dim(df: pd.DataFrame, spec: AnalyseSpec) -> ModelResult:
    return difference_in_means(df, spec.cols.with_changes(covariates=()), alpha=spec.alpha,
                               non_randomised_arms=spec.non_randomised)


def _fit_ri(df: pd.DataFrame, spec: AnalyseSpec) -> ModelResult:
    """RI of the randomised arms only: a non-randomised arm has no randomisation law."""
    fixed = set(map(str, spec.fixed_clusters))
    arms = spec.ri_arms
    if arms is None and spec.non_randomised:
        present = set(df[spec.arm_col].dropna().astype(str)) - {spec.control}
        arms = sorted(present - set(spec.non_randomised))
        rows = df[spec.arm_col].astype(str).isin(spec.non_randomised)
        fixed |= set(df.loc[rows, spec.cluster_col].astype(str))
    return randomisation_test(df, spec.cols, arm=arms, permutations=spec.permutations,
                              seed=spec.seed, fixed_clusters=sorted(fixed), accept=spec.accept,
                              alpha=spec.alpha)


# Model name -> the adapter that fits it from an AnalyseSpec (`--model` choices, in order).
MODEL_REGISTRY: dict[str, Callable[[pd.DataFrame, AnalyseSpec], ModelResult]] = {
    "mixed": _fit_mixed,
    "cr2": _fit_cr("CR2"),
    "cr1": _fit_cr("CR1"),
    "gee": _fit_gee,
    "dim": _fit_dim,
    "ri": _fit_ri,
}
MODELS = tuple(MODEL_REGISTRY)


def analyse_frame(df: pd.DataFrame, spec: AnalyseSpec) -> ModelResult:
    """Fit the model the spec names; estimator problems become clear EvalkitErrors."""
    spec.validate()
    require_columns(df, spec.columns)
    try:
        return MODEL_REGISTRY[spec.model](df, spec)
    except AnalysisInputError as error:
        raise InputError(f"{spec.model} model of {spec.outcome!r}: {error}") from None
    except ModelFitError as error:
        raise ModelFailed(f"the mixed model of {spec.outcome!r} could not be fitted: {error}; "
                          "try --model cr2 (cluster-robust OLS) instead") from None
    except GEEConvergenceError as error:
        raise ModelFailed(f"the GEE of {spec.outcome!r} did not converge: {error}") from None


def require_columns(df: pd.DataFrame, columns: list[str], file: Path | None = None) -> None:
    """InputError naming the first missing column and the nearest existing one."""
    for column in columns:
        if column not in df.columns:
            raise InputError(
                f"column {column!r} not found; columns: {', '.join(map(str, df.columns))}."
                + suggestion(column, map(str, df.columns)), file=file)


@dataclass
class LoadedTable:
    """An analysis table read from disk, with what was dropped and why."""

    frame: pd.DataFrame
    n_rows: int
    missing_outcome: int


def load_analysis_table(path: Path, spec: AnalyseSpec) -> LoadedTable:
    """Read CSV/XLSX text, convert outcome and covariates to numbers, drop missing outcomes."""
    raw = read_table(path)
    require_columns(raw, spec.columns, file=path)
    frame = blanks_to_missing(raw)
    for column in [spec.outcome, *spec.covariates]:
        frame[column] = to_numeric_column(frame[column], column, path)
    has_outcome = frame[spec.outcome].notna()
    return LoadedTable(frame=frame[has_outcome].reset_index(drop=True), n_rows=len(frame),
                       missing_outcome=int((~has_outcome).sum()))


def blanks_to_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells that mean 'missing' (blank, NA, ...) become NaN."""
    return frame.apply(lambda col: col.where(~col.astype(str).isin(MISSING_TEXT), np.nan))


def to_numeric_column(values: pd.Series, column: str, path: Path | None) -> pd.Series:
    """Numbers from text; the first non-number is an InputError naming file, row and column."""
    converted = pd.to_numeric(values, errors="coerce")
    bad = converted.isna() & values.notna()
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"expected a number, found {values.iloc[position]!r}", file=path,
                         row=position + 2, column=column)
    return converted.astype(float)


def jsonable(value: Any) -> Any:
    """Recursively convert to JSON-ready values: NaN/inf -> None, numpy -> Python."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value
