"""What the pre-specified plan produced: each model result with its role, and the summaries.

Kept apart from the code that computes (`compute`) and writes (`outputs`, `report`) it, so
both sides import it and neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from evalkit.analysis.results import ModelResult


@dataclass(frozen=True)
class ResultRole:
    """Where a model result sits in the plan: which outcome, which analysis, which level."""

    outcome_role: Literal["primary", "secondary"]
    analysis_role: Literal["primary", "sensitivity", "exploratory"]
    level: str = "staff"

    @property
    def in_holm_family(self) -> bool:
        """Secondary outcomes' primary analyses form the Holm family."""
        return self.outcome_role == "secondary" and self.analysis_role == "primary"

    def as_dict(self) -> dict[str, str]:
        """The role as the keys results.json and the workbook carry."""
        return {"outcome_role": self.outcome_role, "analysis_role": self.analysis_role,
                "level": self.level}


@dataclass
class PlannedModel:
    """One fitted model of the plan together with its role."""

    result: ModelResult
    role: ResultRole


@dataclass
class PlanResult:
    """Everything the plan produced, ready to write as JSON, XLSX and HTML."""

    design_summary: dict[str, Any]
    models: list[PlannedModel]
    contrasts: pd.DataFrame
    effect_sizes: pd.DataFrame
    iccs: pd.DataFrame
    attrition: pd.DataFrame
    consort: pd.DataFrame
    balance: pd.DataFrame
    cace: ModelResult | None
    deviations: list[dict[str, str]]
    notes: list[str]
    holm: dict[str, float]
    files: dict[str, Path] = field(default_factory=dict)
    mdes: dict[str, Any] | None = None  # EEF's MDES moments, when [analysis.power] is set

    @property
    def model_results(self) -> list[ModelResult]:
        """The fitted models, in plan order, without their roles."""
        return [planned.result for planned in self.models]
