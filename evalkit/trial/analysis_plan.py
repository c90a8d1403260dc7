"""The `[analysis]` section of a trial design: the pre-specified outcome analysis plan.

```toml
[analysis]
alpha = 0.05
permutations = 10000
[[analysis.outcomes]]
name = "supervision_quality"
type = "continuous"
covariates = ["baseline_score"]
primary = true
moderators = ["grade"]      # optional: exploratory arm x grade interaction (CR2, Holm)
```
The first model listed for an outcome type is that outcome's primary analysis; the others
are sensitivity analyses. `hc2` on a staff-level outcome analyses its PDU means (one row
per PDU, HC2 errors): the aggregated sensitivity analysis. Exactly one outcome is primary;
the rest are secondary and their randomised contrasts form the Holm family. `level = "pdu"`
outcomes (one value per PDU) take the `pdu` model list; `moderators` add exploratory
arm x moderator analyses outside the Holm family.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from evalkit.trial.validators import require_exactly_one, require_unique_names

ModelName = Literal["mixed", "mixed3", "cr2", "cr1", "hc2", "gee", "dim", "ri"]
GAUSSIAN_MODELS = ("mixed", "mixed3", "cr2", "cr1", "hc2", "dim", "ri")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelsByType(_Strict):
    """Models run for each outcome type; the first is the primary analysis of that outcome."""

    continuous: list[ModelName] = Field(default_factory=lambda: ["mixed", "cr2", "ri"],
                                        min_length=1)
    binary: list[ModelName] = Field(default_factory=lambda: ["gee"], min_length=1)
    count: list[ModelName] = Field(default_factory=lambda: ["gee"], min_length=1)
    pdu: list[ModelName] = Field(default_factory=lambda: ["hc2", "dim", "ri"], min_length=1)

    @model_validator(mode="after")
    def _gee_only_for_discrete(self) -> ModelsByType:
        if "gee" in self.continuous or "gee" in self.pdu:
            raise ValueError("'gee' is for binary and count outcomes, not continuous ones")
        if "mixed" in self.pdu:
            raise ValueError("'mixed' needs several rows per PDU; PDU-level outcomes take "
                             "hc2, dim or ri")
        return self


class OutcomeSpec(_Strict):
    """One pre-specified outcome; `level = "pdu"` for one value per PDU (e.g. a sickness
    rate), analysed at PDU level with the `pdu` model list."""

    name: str = Field(min_length=1)
    type: Literal["continuous", "binary", "count"]
    covariates: list[str] = Field(default_factory=list)
    primary: bool = False
    level: Literal["staff", "pdu"] = "staff"
    models: list[ModelName] | None = None
    moderators: list[str] = Field(default_factory=list)   # exploratory arm x moderator

    @property
    def family(self) -> str:
        return {"continuous": "gaussian", "binary": "binomial", "count": "poisson"}[self.type]


class PowerAssumptions(_Strict):
    """`[analysis.power]`: what the MDES at protocol and at randomisation assume."""

    icc: float = Field(ge=0, lt=1)
    r2_cluster: float = Field(default=0.0, ge=0, lt=1)
    r2_individual: float = Field(default=0.0, ge=0, lt=1)
    covariates: int = Field(default=0, ge=0)
    power: float = Field(default=0.80, gt=0, lt=1)
    attrition: float = Field(default=0.0, ge=0, lt=1)
    size_method: Literal["eldridge", "van_breukelen"] = "eldridge"
    adjustment: Literal["none", "bonferroni", "holm"] = "none"


class AnalysisSection(_Strict):
    """`[analysis]`: significance level, inference settings, models and outcomes."""

    alpha: float = Field(default=0.05, gt=0, lt=1)
    permutations: int = Field(default=10_000, gt=0)
    seed: int | None = Field(default=None, ge=0)
    gee_small_sample: Literal["none", "mancl-derouen"] = "mancl-derouen"
    models: ModelsByType = Field(default_factory=ModelsByType)
    outcomes: list[OutcomeSpec] = Field(default_factory=list)
    power: PowerAssumptions | None = None  # optional; `assign` then records the MDES drawn

    @model_validator(mode="after")
    def _one_primary(self) -> AnalysisSection:
        if not self.outcomes:
            return self
        require_unique_names([o.name for o in self.outcomes], "outcome")
        require_exactly_one([o.name for o in self.outcomes if o.primary], "outcome", "primary")
        for outcome in self.outcomes:
            models = self.models_for(outcome)
            if outcome.type != "continuous" and any(m in GAUSSIAN_MODELS for m in models):
                raise ValueError(f"outcome {outcome.name!r} is {outcome.type}: use 'gee'")
            if outcome.type == "continuous" and "gee" in models:
                raise ValueError(f"outcome {outcome.name!r} is continuous: 'gee' does not apply")
        return self

    def models_for(self, outcome: OutcomeSpec) -> list[str]:
        """The outcome's own model list, or the default for its level and type."""
        if outcome.models:
            return list(outcome.models)
        if outcome.level == "pdu" and outcome.type == "continuous":
            return list(self.models.pdu)
        return list(getattr(self.models, outcome.type))

    @property
    def primary_outcome(self) -> OutcomeSpec | None:
        return next((o for o in self.outcomes if o.primary), None)
