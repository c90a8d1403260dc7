"""The pre-specified plan on the national example: files, labels, Holm, CACE, deviations."""

from __future__ import annotations

import json
import math
import tomllib

import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from evalkit.allocation.balance import standardised_difference
from evalkit.analysis.data import AnalysisColumns
from evalkit.analysis.mixed import fit_mixed
from evalkit.analysis.multiplicity import holm_adjust
from evalkit.analysis.plan import compute as plan_module
from evalkit.analysis.plan.data import ARM, CLUSTER, STRATUM, acceptance_rule, load_plan_data
from evalkit.cli import app
from evalkit.errors import ConfigError, InputError
from evalkit.register import Register
from evalkit.trial.analysis_plan import OutcomeSpec
from evalkit.trial.design import parse_design
from tests.conftest import SEEDS2_CONFIG

runner = CliRunner()


@pytest.fixture(scope="module")
def document(analysed_run) -> dict:
    return json.loads((analysed_run["out"] / "results.json").read_text())


def test_writes_json_xlsx_and_html(analysed_run, document):
    out = analysed_run["out"]
    assert {p.name for p in out.iterdir()} >= {"results.json", "results.xlsx", "report.html"}
    sheets = load_workbook(out / "results.xlsx", read_only=True).sheetnames
    assert sheets[0] == "About"
    assert {"Contrasts", "Effect sizes", "ICCs", "Attrition", "CONSORT"} <= set(sheets)
    planned = {(o["name"], m) for o in [{"name": "supervision_quality"}] for m in
               ("mixed", "cr2", "ri")} | {("retained", "gee"), ("sickness_days", "gee")}
    assert {(m["outcome"], m["model"]) for m in document["models"]} == planned


def test_primary_mixed_model_equals_a_direct_library_call(analysed_run, document):
    register = Register.open(analysed_run["run"])
    data = load_plan_data(register, analysed_run["outcomes"])
    cols = AnalysisColumns("supervision_quality", ARM, CLUSTER, STRATUM, ("baseline_score",))
    expected = fit_mixed(data.staff, cols, non_randomised_arms=["Early Adopter"])
    got = next(m for m in document["models"] if m["model"] == "mixed")
    assert got["outcome_role"] == "primary" and got["analysis_role"] == "primary"
    assert got["n_obs"] == expected.n_obs
    for contrast, want in zip(got["contrasts"], expected.contrasts, strict=True):
        assert contrast["estimate"] == pytest.approx(want.estimate, rel=1e-10)
        assert contrast["se"] == pytest.approx(want.se, rel=1e-10)


def test_early_adopter_is_non_randomised_everywhere(document):
    for model in document["models"]:
        arms = {c["arm"]: c["randomised"] for c in model["contrasts"]}
        if model["model"] == "ri":
            assert "Early Adopter" not in arms
        else:
            assert arms["Early Adopter"] is False
        assert arms["Treatment"] is True
    assert all(not row["randomised"] for row in document["consort"]
               if row["arm"] == "Early Adopter")


def test_holm_covers_secondary_randomised_primary_contrasts_only(analysed_run):
    contrasts = analysed_run["result"].contrasts
    family = contrasts[contrasts["holm_family"]]
    assert set(family["outcome_role"]) == {"secondary"}
    assert set(family["analysis_role"]) == {"primary"}
    assert family["randomised"].all()
    assert set(family["outcome"]) == {"retained", "sickness_days"}
    raw = {f"{r.outcome}|{r.arm}": r.p_value for r in family.itertuples()}
    adjusted = holm_adjust(raw)
    for row in family.itertuples():
        assert row.p_holm == pytest.approx(adjusted[f"{row.outcome}|{row.arm}"])
    others = contrasts[~contrasts["holm_family"]]
    assert others["p_holm"].isna().all()
    assert (contrasts["outcome_role"] == "primary").any()


def test_cace_uses_the_completed_column_and_randomised_arms(document):
    assert document["cace"] is not None
    assert [c["arm"] for c in document["cace"]["contrasts"]] == ["Treatment"]
    assert "completed" in document["cace"]["diagnostics"]["compliance_source"]
    itt = next(m for m in document["models"] if m["model"] == "cr2")["contrasts"][1]
    assert document["cace"]["contrasts"][0]["estimate"] > itt["estimate"]


def test_attrition_and_consort_count_lost_pdus(document):
    consort = {row["arm"]: row for row in document["consort"]}
    assert consort["Control"]["clusters_lost"] >= 1 and consort["Treatment"]["clusters_lost"] >= 1
    for row in consort.values():
        assert (row["individuals_analysed"] + row["individuals_lost"]
                + row["individuals_excluded"] == row["individuals_allocated"])
    verdicts = {row["verdict_cautious"] for row in document["attrition"]}
    assert verdicts <= {"low", "high"}


def test_analysed_event_is_recorded(analysed_run):
    events = Register.open(analysed_run["run"]).events()
    assert "analysed" in set(events["kind"])


def test_complete_randomisation_has_no_acceptance_rule(national_run):
    assert acceptance_rule(Register.open(national_run.directory)) is None


def test_pdu_level_outcome_skips_the_mixed_model_as_a_deviation(analysed_run):
    register = Register.open(analysed_run["run"])
    data = load_plan_data(register, analysed_run["outcomes"])
    deviations: list = []
    outcome = OutcomeSpec(name="pdu_score", type="continuous", level="pdu")
    result = plan_module._run_model(data, register.design.analysis, outcome, "mixed", 1, None,
                                    "pdu", deviations)
    assert result is None and deviations[0]["status"] == "skipped"
    missing = OutcomeSpec(name="not_there", type="continuous")
    assert plan_module._run_model(data, register.design.analysis, missing, "cr2", 1, None,
                                  "pdu", deviations) is None
    assert deviations[1]["status"] == "failed" and "not_there" in deviations[1]["detail"]


def test_without_compliance_cace_is_a_deviation(analysed_run, tmp_path, monkeypatch):
    outcomes = pd.read_csv(analysed_run["outcomes"]).drop(columns="completed")
    path = tmp_path / "no_completed.csv"
    outcomes.to_csv(path, index=False)
    register = Register.open(analysed_run["run"])
    data = load_plan_data(register, path)
    assert data.compliance_source is None
    deviations: list = []
    assert plan_module._cace(data, register.design.analysis, deviations) is None
    assert deviations[0]["model"] == "cace" and deviations[0]["status"] == "skipped"


def test_duplicate_staff_id_names_the_row(analysed_run, tmp_path):
    outcomes = pd.read_csv(analysed_run["outcomes"])
    outcomes.loc[5, "staff_id"] = outcomes.loc[2, "staff_id"]
    path = tmp_path / "dup.csv"
    outcomes.to_csv(path, index=False)
    with pytest.raises(InputError, match="row 7.*staff_id|appears twice"):
        load_plan_data(Register.open(analysed_run["run"]), path)


def test_cli_plan_errors_exit_2(analysed_run, tmp_path):
    path = tmp_path / "no_id.csv"
    pd.read_csv(analysed_run["outcomes"]).rename(columns={"staff_id": "staff"}).to_csv(path)
    result = runner.invoke(app, ["analyse", "--register", str(analysed_run["run"]),
                                 "--outcomes", str(path)])
    assert result.exit_code == 2 and "staff_id" in result.output
    result = runner.invoke(app, ["analyse", "--register", str(analysed_run["run"])])
    assert result.exit_code == 2 and "--outcomes" in result.output


def _design_with(**analysis) -> dict:
    raw = tomllib.loads(SEEDS2_CONFIG.read_text())
    raw["analysis"].update(analysis)
    return raw


def test_analysis_section_is_strict():
    outcomes = [{"name": "a", "type": "continuous", "primary": True},
                {"name": "b", "type": "binary", "primary": True}]
    with pytest.raises(ConfigError, match="exactly one outcome must have primary"):
        parse_design(_design_with(outcomes=outcomes))
    with pytest.raises(ConfigError, match="permutation"):
        parse_design(_design_with(permutation=5))
    with pytest.raises(ConfigError, match="gee"):
        parse_design(_design_with(models={"continuous": ["gee"]}))
    plan = parse_design(_design_with()).analysis
    assert plan.primary_outcome.name == "supervision_quality"
    assert plan.models_for(plan.outcomes[0])[0] == "mixed"


@pytest.mark.slow
def test_rerandomised_run_acceptance_rule_matches_the_balance_rule(example_files, tmp_path):
    from evalkit.allocation.assign import run_assign

    text = SEEDS2_CONFIG.read_text().replace(
        "[analysis]", '[randomisation]\nmethod = "rerandomise"\n'
        'balance_covariates = ["baseline_engagement"]\nmax_abs_smd = 0.1\n'
        "probability_draws = 50\n\n[analysis]", 1)
    config = tmp_path / "rerandomised.toml"
    config.write_text(text)
    run = run_assign(config, out=tmp_path / "run", pdus=example_files["pdus"],
                     staff=example_files["staff"])
    register = Register.open(run.directory)
    accept = acceptance_rule(register)
    allocation = register.table("allocation")
    units = register.table("units").set_index("unit_id")
    sealed = allocation.set_index("unit_id")["group"]
    assert accept(sealed)
    rng = np.random.default_rng(1)
    movable = allocation.loc[allocation["assignment"] == "random", "unit_id"].to_numpy()
    outcomes = set()
    for _ in range(30):
        candidate = sealed.copy()
        candidate[movable] = rng.permutation(sealed[movable].to_numpy())
        values = units["baseline_engagement"]
        smd = standardised_difference(values[candidate == "Treatment"].to_numpy(float),
                                      values[candidate == "Control"].to_numpy(float))
        assert accept(candidate) == (abs(smd) <= 0.1)
        outcomes.add(abs(smd) <= 0.1)
    assert not math.isnan(smd) and outcomes == {True, False}


def test_register_compliance_table_is_preferred(analysed_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(analysed_run["run"], run)
    register = Register.open(run)
    staff = register.table("staff_allocation")
    staff = staff[staff["group"] != "Not in trial"].reset_index(drop=True)
    rng = np.random.default_rng(5)
    table = pd.DataFrame({"staff_id": staff["staff_id"], "group": staff["group"],
                          "completed_in_window": rng.integers(0, 2, len(staff)),
                          "completed_before_window": rng.integers(0, 2, len(staff))})
    register.replace_table("compliance", table)
    data = load_plan_data(register, analysed_run["outcomes"])
    assert data.compliance_source.startswith("register table 'compliance'")
    merged = data.staff.merge(table, on="staff_id", suffixes=("", "_table"))
    control = merged["group"] == "Control"
    assert (merged.loc[control, "_compliance"]
            == merged.loc[control, "completed_before_window"]).all()
    assert (merged.loc[~control, "_compliance"]
            == merged.loc[~control, "completed_in_window"]).all()


@pytest.mark.slow
def test_plan_written_after_sealing_is_read_with_plan_option(analysed_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(analysed_run["run"], run)
    register = Register.open(run)
    design = register.meta("design")
    design["analysis"] = {}
    register.set_meta("design", design)
    base = ["analyse", "--register", str(run), "--outcomes", str(analysed_run["outcomes"]),
            "--out", str(tmp_path / "out")]
    refused = runner.invoke(app, base)
    assert refused.exit_code == 2 and "--plan" in refused.output
    result = runner.invoke(app, [*base, "--plan", str(SEEDS2_CONFIG)])
    assert result.exit_code == 0, result.output
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    assert any("analysis plan read from" in note for note in document["notes"])
