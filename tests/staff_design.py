"""A staff-level variant of configs/seeds2.toml for tests: 1:1 by region, no fixed arm."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

RANDOMISED_GROUPS = ("Treatment", "Control")


def _toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string of plain text is a valid TOML basic string


def staff_level_toml(seeds2_config: Path) -> str:
    """The SEEDS2 design with unit = "staff", strata = ["region"] and no Early Adopters."""
    design = tomllib.loads(Path(seeds2_config).read_text(encoding="utf-8"))
    trial = design["trial"]
    lines = ["[trial]", f"name = {_toml_string(trial['name'])}", f"seed = {trial['seed']}",
             'unit = "staff"', 'strata = ["region"]',
             "exclude = [" + ", ".join(map(_toml_string, trial.get("exclude", []))) + "]", ""]
    for group in RANDOMISED_GROUPS:
        control = "\ncontrol = true" if group == "Control" else ""
        lines += ["[[arms]]", f"name = {_toml_string(group)}", f"ratio = 1{control}", ""]
    for course in design["courses"]:
        windows = ", ".join(
            f'{_toml_string(group)} = ["{course["windows"][group][0]}", '
            f'"{course["windows"][group][1]}"]'
            for group in RANDOMISED_GROUPS)
        lines += ["[[courses]]", f"name = {_toml_string(course['name'])}",
                  "grades = [" + ", ".join(map(_toml_string, course["grades"])) + "]",
                  f"windows = {{ {windows} }}", ""]
    return "\n".join(lines)
