"""Trial design files (`configs/*.toml`) validated once into typed objects.

Every error names the key (e.g. ``arms[2].ratio``) and, where it helps, the allowed values.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from evalkit.errors import ConfigError, suggestion
from evalkit.trial.analysis_plan import AnalysisSection
from evalkit.trial.validators import require_exactly_one, require_one_line, require_unique_names

GRADES = ("PO", "PSO", "PQiP", "CA", "SPO", "Head of PDU", "Band 6+")
NO_COURSE = "none"  # the course column of staff no course is for (e.g. Case Administrators)


class Strict(BaseModel):
    """Base for design sections: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TrialSection(Strict):
    name: str = Field(min_length=1)
    seed: int = Field(ge=0, lt=2**63, strict=True)
    unit: Literal["pdu", "staff"] = "pdu"
    strata: list[str] = Field(default_factory=lambda: ["region"])
    exclude: list[str] = Field(default_factory=list)

    _one_line_name = field_validator("name")(require_one_line)


class InputsSection(Strict):
    pdus: str | None = None
    staff: str | None = None
    # A covariate column with a blank or non-numeric cell: stop ("error"), or leave that
    # column out of the balance check and say so ("leave_out"; never for balance_covariates).
    missing_covariates: Literal["error", "leave_out"] = "error"


class ArmSpec(Strict):
    name: str = Field(min_length=1)
    fixed: list[str] = Field(default_factory=list)
    ratio: int = Field(default=1, ge=0, strict=True)
    control: bool = Field(default=False, strict=True)

    _one_line_name = field_validator("name")(require_one_line)

    @field_validator("ratio", mode="before")
    @classmethod
    def _ratio_whole(cls, value: Any) -> Any:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value


class SessionSpec(Strict):
    date: dt.date
    places: int = Field(gt=0, strict=True)
    region: str | None = None


class CourseSpec(Strict):
    name: str = Field(min_length=1)
    grades: list[str] = Field(min_length=1)
    windows: dict[str, tuple[dt.date, dt.date]] = Field(default_factory=dict)
    sessions: list[SessionSpec] = Field(default_factory=list)

    _one_line_name = field_validator("name")(require_one_line)

    @field_validator("grades")
    @classmethod
    def _known_grades(cls, grades: list[str]) -> list[str]:
        for grade in grades:
            if grade not in GRADES:
                raise ValueError(
                    f"unknown grade {grade!r}; allowed: {', '.join(GRADES)}."
                    + suggestion(grade, GRADES)
                )
        return grades

    @field_validator("windows")
    @classmethod
    def _ordered_windows(
        cls, windows: dict[str, tuple[dt.date, dt.date]]
    ) -> dict[str, tuple[dt.date, dt.date]]:
        for group, (start, end) in windows.items():
            if end < start:
                raise ValueError(f"window for {group!r} ends ({end}) before it starts ({start})")
        return windows


class RandomisationSpec(Strict):
    method: Literal["complete", "rerandomise"] = "complete"
    balance_covariates: list[str] = Field(default_factory=list)
    max_abs_smd: float | None = Field(default=None, gt=0, strict=True)
    mahalanobis_acceptance: float | None = Field(default=None, gt=0, le=1, strict=True)
    max_draws: int = Field(default=100_000, gt=0, strict=True)
    probability_draws: int = Field(default=2_000, gt=0, strict=True)

    @model_validator(mode="after")
    def _rule_given(self) -> RandomisationSpec:
        if self.method == "rerandomise":
            if not self.balance_covariates:
                raise ValueError("method 'rerandomise' needs balance_covariates")
            if (self.max_abs_smd is None) == (self.mahalanobis_acceptance is None):
                raise ValueError(
                    "method 'rerandomise' needs exactly one acceptance rule: "
                    "max_abs_smd or mahalanobis_acceptance"
                )
        return self


class DeliverySection(Strict):
    """`[delivery]`: booking-window capacity limits and guidance templates."""

    programme: str = Field(default="SEEDS2", min_length=1)
    max_share_away_per_week: float = Field(default=0.25, gt=0, le=1, strict=True)
    templates: str | None = None


class TrialDesign(Strict):
    """A whole validated trial design."""

    trial: TrialSection
    inputs: InputsSection = Field(default_factory=InputsSection)
    arms: list[ArmSpec] = Field(min_length=2)
    courses: list[CourseSpec] = Field(default_factory=list)
    randomisation: RandomisationSpec = Field(default_factory=RandomisationSpec)
    delivery: DeliverySection = Field(default_factory=DeliverySection)
    analysis: AnalysisSection = Field(default_factory=AnalysisSection)

    @model_validator(mode="after")
    def _coherent_arms(self) -> TrialDesign:
        names = [arm.name for arm in self.arms]
        require_unique_names(names, "arm")
        require_exactly_one([arm.name for arm in self.arms if arm.control], "arm", "control")
        if sum(arm.ratio for arm in self.arms) == 0:
            raise ValueError("at least one arm needs ratio > 0 (all ratios are zero)")
        for course in self.courses:
            for group in course.windows:
                if group not in names:
                    raise ValueError(
                        f"course {course.name!r} has a window for unknown group {group!r}; "
                        f"groups: {names}.{suggestion(group, names)}"
                    )
        return self

    @model_validator(mode="after")
    def _windows_in_sequence(self) -> TrialDesign:
        """Groups' windows of one course must not overlap; Control opens after all others."""
        for index, course in enumerate(self.courses):
            problem = window_overlap(course.windows, self.control_arm)
            if problem:
                raise ValueError(f"key 'courses[{index}].windows' ({course.name}): {problem}")
        return self

    @property
    def control_arm(self) -> str:
        """Name of the arm with control = true."""
        return next(arm.name for arm in self.arms if arm.control)

    @property
    def randomised_arms(self) -> list[ArmSpec]:
        """Arms that receive randomised units (ratio > 0), in design order."""
        return [arm for arm in self.arms if arm.ratio > 0]

    def course_for_grade(self, grade: str) -> CourseSpec | None:
        """The course whose audience includes `grade`, or None (e.g. Case Administrators)."""
        return next((c for c in self.courses if grade in c.grades), None)

    def course_name_for_grade(self, grade: str) -> str:
        """The name of the course for `grade`, or NO_COURSE."""
        course = self.course_for_grade(grade)
        return course.name if course is not None else NO_COURSE

    def window(self, course: str, group: str) -> tuple[dt.date, dt.date] | None:
        """The booking window (first day, last day) of `group` for `course`, or None."""
        spec = next((c for c in self.courses if c.name == course), None)
        if spec is None or group not in spec.windows:
            return None
        return spec.windows[group]

    def window_iso(self, course: str, group: str) -> tuple[str, str]:
        """The booking window as ISO dates, ('', '') when the group has none for the course."""
        window = self.window(course, group)
        return ("", "") if window is None else (window[0].isoformat(), window[1].isoformat())

    def digest(self) -> str:
        """SHA-256 of the parts that decide the allocation (trial, arms, randomisation).

        Courses, delivery and the analysis plan may be refined after sealing without
        invalidating the allocation; the input files are hashed separately.
        """
        payload = self.model_dump(mode="json", include={"trial", "arms", "randomisation"})
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def window_overlap(windows: dict[str, tuple[dt.date, dt.date]], control: str) -> str | None:
    """Describe the first clash between groups' windows (or Control opening early), else None."""
    groups = sorted(windows, key=lambda g: windows[g])
    for position, first in enumerate(groups):
        for second in groups[position + 1:]:
            (start_a, end_a), (start_b, end_b) = windows[first], windows[second]
            if start_b <= end_a:
                return (f"the {first!r} window ({start_a} to {end_a}) overlaps the {second!r} "
                        f"window ({start_b} to {end_b}); one group's window must close "
                        "before the next opens")
    if control in windows:
        opening = windows[control][0]
        for group, (_, end) in windows.items():
            if group != control and opening <= end:
                return (f"the {control!r} window opens ({opening}) before the {group!r} window "
                        f"closes ({end}); the control group must learn last")
    return None


def group_column(group: str) -> str:
    """`p_` + the group name in snake_case: 'Early Adopter' -> 'p_early_adopter'."""
    return "p_" + re.sub(r"[^a-z0-9]+", "_", group.lower()).strip("_")


def load_design(path: Path) -> TrialDesign:
    """Read and validate a TOML trial design; raise ConfigError naming the file and key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; give the design file (.toml)") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not valid UTF-8 (byte {error.start}); save the design "
                          "file as UTF-8 text") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the design file: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: malformed TOML: {error}") from None
    return parse_design(raw, source=str(path))


def parse_design(raw: dict[str, Any], source: str = "<design>") -> TrialDesign:
    """Validate a design dictionary (as read from TOML)."""
    try:
        return TrialDesign.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(_describe(e, raw) for e in error.errors())
        raise ConfigError(f"{source}: {problems}") from None


def _key_path(location: tuple[Any, ...]) -> str:
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "(top level)"


def _describe(error: dict[str, Any], raw: dict[str, Any]) -> str:
    location = tuple(p for p in error["loc"] if p not in {"function-after", "tuple"})
    key = _key_path(location)
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(location[:-1])
        hint = suggestion(str(location[-1]), allowed) if allowed else ""
        return f"unknown key {key!r}; allowed keys here: {', '.join(allowed)}.{hint}"
    if error["type"] == "missing":
        return f"missing required key {key!r}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] in _TYPE_ERRORS:
        message += f"; got {error['input']!r} ({_TOML_TYPES.get(type(error['input']), 'text')}): "
        message += _TYPE_ERRORS[error["type"]]
    return f"key {key!r}: {message}" if location else message


_TYPE_ERRORS = {"int_type": "write a whole number without quotes, e.g. 42",
                "float_type": "write a number without quotes, e.g. 0.25",
                "bool_type": "write true or false without quotes"}
_TOML_TYPES = {bool: "true/false", int: "a whole number", float: "a number", str: "text in quotes"}


def _allowed_keys(parent: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = TrialDesign
    for part in parent:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[part].annotation
        inner = getattr(annotation, "__args__", (annotation,))
        model = next((t for t in inner if isinstance(t, type) and issubclass(t, BaseModel)), None)
        if model is None:
            return []
    return list(model.model_fields)
