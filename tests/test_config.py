"""The trial design file: validated once, errors name the key and the allowed values."""

from __future__ import annotations

import pytest

from evalkit.errors import ConfigError
from evalkit.trial.design import group_column, load_design, parse_design
from tests.conftest import SEEDS2_CONFIG

MINIMAL = {"trial": {"name": "t", "seed": 1},
           "arms": [{"name": "Treatment"}, {"name": "Control", "control": True}]}


def design_with(**changes):
    raw = {**MINIMAL, **changes}
    return parse_design(raw)


def test_shipped_design_loads_with_its_early_adopters_and_courses():
    design = load_design(SEEDS2_CONFIG)
    assert design.control_arm == "Control"
    assert [a.name for a in design.randomised_arms] == ["Treatment", "Control"]
    assert len(design.arms[0].fixed) == 8
    assert design.course_for_grade("SPO").name == "SEEDS2 for Managers"
    assert design.course_for_grade("PQiP").name == "SEEDS2 for Practitioners"
    assert design.course_for_grade("CA") is None


def test_group_column_is_snake_case():
    assert group_column("Early Adopter") == "p_early_adopter"
    assert group_column("Treatment (wave 2)") == "p_treatment_wave_2"


@pytest.mark.parametrize(("changes", "fragments"), [
    ({"trial": {"name": "t", "seed": 1, "unit": "team"}}, ["trial.unit", "'pdu' or 'staff'"]),
    ({"trial": {"name": "t", "seed": "abc"}}, ["trial.seed", "integer"]),
    ({"trial": {"name": "t"}}, ["missing required key 'trial.seed'"]),
    ({"arms": [{"name": "A"}, {"name": "B"}]}, ["exactly one arm must have control = true"]),
    ({"arms": [{"name": "A"}, {"name": "A", "control": True}]}, ["unique", "'A'"]),
    ({"courses": [{"name": "c", "grades": ["Probation Officer"]}]}, ["courses[0].grades",
                                                                    "allowed: PO, PSO"]),
    ({"courses": [{"name": "c", "grades": ["PO"],
                   "windows": {"Treatmnet": ["2022-01-01", "2022-02-01"]}}]},
     ["unknown group 'Treatmnet'", "Did you mean 'Treatment'"]),
    ({"randomisation": {"method": "rerandomise"}}, ["needs balance_covariates"]),
    ({"randomisation": {"method": "rerandomise", "balance_covariates": ["x"],
                        "max_abs_smd": 0.1, "mahalanobis_acceptance": 0.1}},
     ["exactly one acceptance rule"]),
    ({"randomisation": {"methd": "complete"}}, ["unknown key 'randomisation.methd'",
                                                "Did you mean 'method'"]),
])
def test_invalid_designs_name_the_key(changes, fragments):
    with pytest.raises(ConfigError) as caught:
        design_with(**changes)
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_design_digest_ignores_input_paths_but_not_the_seed():
    base = design_with()
    moved = design_with(inputs={"pdus": "elsewhere.csv"})
    reseeded = design_with(trial={"name": "t", "seed": 2})
    retimed = design_with(courses=[{"name": "c", "grades": ["PO"]}])
    assert base.digest() == moved.digest() == retimed.digest()
    assert base.digest() != reseeded.digest()


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_design(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[trial\nname = 1")
    with pytest.raises(ConfigError, match="malformed TOML"):
        load_design(bad)
