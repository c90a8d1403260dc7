"""One model on one data frame: a typed spec, validation, dispatch to the tested estimators.

`analyse_frame(df, spec)` is what `evalkit analyse DATA --model ...` calls; the estimators
themselves live in mixed.py, ols.py, gee.py, dim.py and randomisation_inference.py, and each
is imported only when its model is asked for (so `--model cr2` loads neither statsmodels nor
scipy.stats).
Estimator failures (bad input, a mixed model or GEE that cannot be fitted) become
`EvalkitError`s with a clear message, never a traceback.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from evalkit.analysis.data import (
    AnalysisColumns,
    AnalysisInputError,
    categorical_levels,
    check_cluster_nesting,
    is_categorical,
)
from evalkit.analysis.failures import GEEConvergenceError, ModelFitError
from evalkit.errors import EvalkitError, InputError, suggestion
from evalkit.io.files import read_table

if TYPE_CHECKING:
    from evalkit.analysis.results import ModelResult

FAMILIES = ("gaussian", "binomial", "poisson")
SMALL_SAMPLE = ("none", "mancl-derouen")
MISSING_TEXT = ("", "NA", "N/A", "NaN", "nan", "NULL", "null", ".")


class ModelFailed(EvalkitError):
    """The model could not be fitted to these data (exit 2, with advice)."""


@dataclass
class AnalyseSpec:
    """Everything `analyse_frame` needs to fit one model to one outcome.

    Settings a model does not use (`ddf`, `permutations`, `seed`, `small_sample`,
    covariates for `dim`) stay at None / empty; setting one for another model is an error.
    """

    outcome: str
    arm_col: str = "arm"
    cluster_col: str = "pdu"
    strata_col: str | None = None
    covariates: list[str] = field(default_factory=list)
    model: str = "mixed"
    family: str = "gaussian"
    control: str = "Control"
    permutations: int | None = None
    seed: int | None = None
    small_sample: str = "none"
    ddf: str | None = None
    non_randomised: list[str] = field(default_factory=list)
    alpha: float = 0.05
    fixed_clusters: Collection[str] = ()
    accept: Callable[[pd.Series], bool] | None = None
    ri_arms: list[str] | None = None
    allow_clusters_across_strata: bool = False
    allow_clusters_across_arms: bool = False
    pod_col: str | None = None

    def validate(self) -> None:
        """Raise InputError for an unknown choice or an impossible combination."""
        for name, value, allowed in (("--model", self.model, tuple(MODEL_REGISTRY)),
                                     ("--family", self.family, FAMILIES),
                                     ("--small-sample", self.small_sample, SMALL_SAMPLE),
                                     ("--ddf", self.ddf or DDF[0], DDF)):
            if value not in allowed:
                raise InputError(f"{name} {value!r} is not one of {', '.join(allowed)}."
                                 + suggestion(value, allowed))
        if self.model == "gee" and self.family == "gaussian":
            raise InputError("--model gee needs --family binomial or poisson (for a continuous "
                             "outcome use --model mixed, cr2, cr1, hc2, dim or ri)")
        if self.model != "gee" and self.family != "gaussian":
            raise InputError(f"--model {self.model} is for continuous (gaussian) outcomes; for a "
                             f"{self.family} outcome use --model gee")
        self._refuse_ignored_options()
        if self.model == "mixed3" and not self.pod_col:
            raise InputError("--model mixed3 needs --pod-col (the team column nested in "
                             "--cluster-col)")
        if self.permutations is not None and self.permutations < 1:
            raise InputError("--permutations must be at least 1")

    def _refuse_ignored_options(self) -> None:
        """An option the chosen model would ignore is an error, not silence."""
        uses = MODEL_REGISTRY[self.model].uses
        given = {"covariates": bool(self.covariates), "ddf": self.ddf is not None,
                 "permutations": self.permutations is not None, "seed": self.seed is not None,
                 "small_sample": self.small_sample != "none", "pod": self.pod_col is not None}
        for option, is_set in given.items():
            if is_set and option not in uses:
                users = [m for m, a in MODEL_REGISTRY.items() if option in a.uses]
                raise InputError(f"{OPTION_FLAGS[option]} does not apply to --model "
                                 f"{self.model} (it would be ignored); it applies to "
                                 f"--model {' or '.join(users)}")

    @property
    def cols(self) -> AnalysisColumns:
        """The columns the estimators read, as one typed object."""
        return AnalysisColumns(outcome=self.outcome, arm=self.arm_col, cluster=self.cluster_col,
                               strata=self.strata_col, covariates=tuple(self.covariates),
                               control=self.control)

    @property
    def columns(self) -> list[str]:
        return self.cols.needed + ([self.pod_col] if self.pod_col else [])


def _fit_mixed(df: pd.DataFrame, spec: AnalyseSpec) -> ModelResult:
    from evalkit.analysis import mixed

    return mixed.fit_mixed(df, spec.cols, alpha=spec.alpha,
                           non_randomised_arms=spec.non_randomised, ddf=spec.ddf or DDF[0])


def _fit_three_level(df: pd.DataFrame, spec: AnalyseSpec) -> ModelResult:
    from evalkit.analysis import nested

    return nested.fit_three_level(df, spec.cols, pod=str(spec.pod_col), alpha=spec.alpha,
                                  non_randomised_arms=spec.non_randomised)


def _fit_ols(vcov: str) -> Callable[[pd.DataFrame, AnalyseSpec], ModelResult]:
    def fit(df: pd.DataFrame, spec: AnalyseSpec) -> ModelResult:
        from evalkit.analysis import ols

        return ols.fit_ols_cr(df, spec.cols, vcov=vcov, alpha=spec.alpha,
                              non_randomised_arms=spec.non_randomised)
    return fit


def _fit_gee(df: pd.DataFrame, spec: AnalyseSpec) -> ModelResult:
    from evalkit.analysis import gee

    return gee.fit_gee(df, spec.cols, family=spec.family, small_sample=spec.small_sample,
                       alpha=spec.alpha, non_randomised_arms=spec.non_randomised)


def _fit_dim(df: pd.DataFrame, spec: AnalyseSpec) -> ModelResult:
    from evalkit.analysis import dim

    return dim.difference_in_means(df, spec.cols, alpha=spec.alpha,
                                   non_randomised_arms=spec.non_randomised)


def _fit_ri(df: pd.DataFrame, spec: AnalyseSpec) -> ModelResult:
    """RI of the randomised arms only: a non-randomised arm has no randomisation law."""
    from evalkit.analysis import randomisation_inference

    fixed = set(map(str, spec.fixed_clusters))
    arms = spec.ri_arms
    if arms is None and spec.non_randomised:
        present = set(df[spec.arm_col].dropna().astype(str)) - {spec.control}
        arms = sorted(present - set(spec.non_randomised))
        rows = df[spec.arm_col].astype(str).isin(spec.non_randomised)
        fixed |= set(df.loc[rows, spec.cluster_col].astype(str))
    return randomisation_inference.randomisation_test(
        df, spec.cols, arm=arms, fixed_clusters=sorted(fixed), accept=spec.accept,
        permutations=DEFAULT_PERMUTATIONS if spec.permutations is None else spec.permutations,
        seed=0 if spec.seed is None else spec.seed, alpha=spec.alpha)


@dataclass(frozen=True)
class ModelAdapter:
    """How to fit one `--model` from a spec, and which optional settings it reads.

    `fit` imports its estimator when called, so the registry itself costs no imports.
    """

    fit: Callable[[pd.DataFrame, AnalyseSpec], ModelResult]
    uses: frozenset[str] = frozenset({"covariates"})


DDF = ("satterthwaite", "kenward-roger")
DEFAULT_PERMUTATIONS = 10_000
OPTION_FLAGS = {"covariates": "--covariate", "ddf": "--ddf", "permutations": "--permutations",
                "seed": "--seed", "small_sample": "--small-sample", "pod": "--pod-col"}
# Model name -> its adapter (`--model` choices, in this order).
MODEL_REGISTRY: dict[str, ModelAdapter] = {
    "mixed": ModelAdapter(_fit_mixed, frozenset({"covariates", "ddf"})),
    "mixed3": ModelAdapter(_fit_three_level, frozenset({"covariates", "pod"})),
    "cr2": ModelAdapter(_fit_ols("CR2")),
    "cr1": ModelAdapter(_fit_ols("CR1")),
    "hc2": ModelAdapter(_fit_ols("HC2")),
    "gee": ModelAdapter(_fit_gee, frozenset({"covariates", "small_sample"})),
    "dim": ModelAdapter(_fit_dim, frozenset()),
    "ri": ModelAdapter(_fit_ri, frozenset({"covariates", "permutations", "seed"})),
}
MODELS = tuple(MODEL_REGISTRY)


def analyse_frame(df: pd.DataFrame, spec: AnalyseSpec) -> ModelResult:
    """Fit the model the spec names; estimator problems become clear EvalkitErrors."""
    spec.validate()
    require_columns(df, spec.columns)
    try:
        if spec.model != "hc2":
            check_cluster_nesting(df, spec.cols, across_strata=spec.allow_clusters_across_strata,
                                  across_arms=spec.allow_clusters_across_arms)
        result = MODEL_REGISTRY[spec.model].fit(df, spec)
    except AnalysisInputError as error:
        raise InputError(f"{spec.model} model of {spec.outcome!r}: {error}") from None
    except ModelFitError as error:
        raise ModelFailed(f"the mixed model of {spec.outcome!r} could not be fitted: {error}; "
                          "try --model cr2 (cluster-robust OLS) instead") from None
    except GEEConvergenceError as error:
        raise ModelFailed(f"the GEE of {spec.outcome!r} did not converge: {error}") from None
    levels = categorical_levels(df, spec.covariates)
    if levels:
        result.diagnostics["categorical_covariates"] = {
            name: {"reference": values[0], "levels": values} for name, values in levels.items()}
    return result


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
    where: list[str] = field(default_factory=list)
    n_selected: int | None = None


def load_analysis_table(path: Path, spec: AnalyseSpec,
                        where: Sequence[str] = ()) -> LoadedTable:
    """Read CSV/XLSX text, keep the `where` rows, convert outcome and numeric covariates to
    numbers (a text covariate with no numbers is categorical), drop missing outcomes."""
    raw = read_table(path)
    require_columns(raw, spec.columns, file=path)
    frame = blanks_to_missing(raw)
    n_rows = len(frame)
    for condition in where:
        frame = apply_where(frame, condition, path)
    for column in [spec.outcome, *spec.covariates]:
        if column == spec.outcome or not is_categorical(frame[column]):
            frame[column] = to_numeric_column(frame[column], column, path)
    has_outcome = frame[spec.outcome].notna()
    return LoadedTable(frame=frame[has_outcome].reset_index(drop=True), n_rows=n_rows,
                       missing_outcome=int((~has_outcome).sum()), where=list(where),
                       n_selected=len(frame))


WHERE_PATTERN = re.compile(r"^\s*(?P<column>[^=!]+?)\s*(?P<op>==|!=)\s*(?P<value>.+?)\s*$")


def apply_where(frame: pd.DataFrame, condition: str, path: Path | None = None) -> pd.DataFrame:
    """Rows meeting `column == value` (or `!=`); the column and value must exist."""
    match = WHERE_PATTERN.match(condition)
    if not match:
        raise InputError(f"--where {condition!r} is not of the form \"column == value\" "
                         "(or !=); quote it in the shell, e.g. --where \"grade == PO\"",
                         file=path)
    column, op, value = match["column"], match["op"], match["value"].strip("'\"")
    require_columns(frame, [column], file=path)
    text = frame[column].astype("string").str.strip()
    values = sorted(text.dropna().unique())
    if value not in values:
        shown = ", ".join(values[:20]) + (" ..." if len(values) > 20 else "")
        raise InputError(f"--where {condition!r}: column {column!r} has no value {value!r}; "
                         f"its values: {shown}." + suggestion(value, values), file=path)
    keep = (text == value) if op == "==" else (text != value)
    selected = frame[keep.fillna(op == "!=").to_numpy(bool)].reset_index(drop=True)
    if selected.empty:
        raise InputError(f"--where {condition!r} leaves no rows", file=path)
    return selected


def blanks_to_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells that mean 'missing' (blank, NA, ...) become NaN (one `isin` over the frame)."""
    return frame.mask(frame.isin(MISSING_TEXT))


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
