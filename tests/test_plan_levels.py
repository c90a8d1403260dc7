"""The plan analyses a PDU-level outcome at PDU level (HC2 OLS, blocked DIM, RI)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from evalkit.analysis.data import AnalysisColumns
from evalkit.analysis.ols import fit_ols_cr
from evalkit.analysis.plan.data import ARM, CLUSTER, STRATUM, load_plan_data
from evalkit.cli import app
from evalkit.register import Register
from evalkit.trial.design import load_design
from tests.conftest import SEEDS2_CONFIG

PDU_PLAN = """
[analysis]
alpha = 0.05
permutations = 200

[[analysis.outcomes]]
name = "sickness_rate"
type = "continuous"
level = "pdu"
covariates = ["baseline_rate"]
primary = true
"""


def pdu_plan(config_text: str) -> str:
    """The design file with its [analysis] section replaced by a PDU-level plan."""
    head, rest = config_text.split("[analysis]", 1)
    tail = rest[rest.index("[delivery]"):]
    return head + PDU_PLAN + "\n" + tail


@pytest.fixture(scope="module")
def pdu_run(tmp_path_factory, national_run):
    root = tmp_path_factory.mktemp("pdu_level")
    run = root / "run"
    shutil.copytree(national_run.directory, run)
    allocation = Register.open(run).table("allocation")
    rng = np.random.default_rng(5)
    baseline = rng.normal(5, 1, len(allocation))
    effect = np.where(allocation["group"] == "Treatment", -0.4, 0.0)
    outcomes = pd.DataFrame({"pdu_code": allocation["unit_id"], "baseline_rate": baseline,
                             "sickness_rate": baseline * 0.6 + effect
                             + rng.normal(0, 0.5, len(allocation))})
    outcomes.loc[outcomes.index[:4], "sickness_rate"] = np.nan
    path = root / "pdu_outcomes.csv"
    outcomes.to_csv(path, index=False)
    plan = root / "plan.toml"
    plan.write_text(pdu_plan(SEEDS2_CONFIG.read_text(encoding="utf-8")), encoding="utf-8")
    result = CliRunner().invoke(app, ["analyse", "--register", str(run), "--outcomes",
                                      str(path), "--plan", str(plan), "--out", str(root / "out")])
    assert result.exit_code == 0, result.output
    document = json.loads((root / "out" / "results.json").read_text())
    return {"run": run, "outcomes": path, "plan": plan, "document": document}


def test_pdu_outcome_runs_hc2_dim_and_ri_at_pdu_level(pdu_run):
    models = {m["model"]: m for m in pdu_run["document"]["models"]}
    assert set(models) == {"hc2", "dim", "ri"}
    assert all(m["level"] == "pdu" for m in models.values())
    hc2 = models["hc2"]
    assert hc2["n_obs"] == hc2["n_clusters"]
    assert hc2["analysis_role"] == "primary" and models["dim"]["analysis_role"] == "sensitivity"
    assert not any(d["model"] in ("mixed", "hc2", "dim", "ri")
                   for d in pdu_run["document"]["deviations"])


def test_pdu_outcome_hc2_equals_a_direct_library_call(pdu_run):
    register = Register.open(pdu_run["run"])
    plan = load_design(pdu_run["plan"]).analysis
    data = load_plan_data(register, pdu_run["outcomes"], plan)
    expected = fit_ols_cr(data.pdu, AnalysisColumns("sickness_rate", ARM, CLUSTER, STRATUM,
                                                    ("baseline_rate",)), vcov="HC2",
                          non_randomised_arms=data.non_randomised)
    got = next(m for m in pdu_run["document"]["models"] if m["model"] == "hc2")
    for contrast, want in zip(got["contrasts"], expected.contrasts, strict=True):
        assert contrast["arm"] == want.arm
        assert contrast["estimate"] == pytest.approx(want.estimate, rel=1e-12)
        assert contrast["se"] == pytest.approx(want.se, rel=1e-12)
        assert contrast["df"] == want.df


STAFF_PLAN = """
[analysis]
permutations = 300
seed = 4
models = { continuous = ["cr2", "ri"] }

[[analysis.outcomes]]
name = "score"
type = "continuous"
primary = true
"""


def test_staff_level_design_gets_randomisation_inference_over_staff(tmp_path):
    from evalkit.allocation.assign import run_assign
    from evalkit.analysis.plan.compute import compute_plan
    from tests.helpers import small_pdus, small_staff, write_trial

    pdus = small_pdus(n_regions=2, per_region=4)
    design = write_trial(tmp_path / "trial", unit="staff", fixed="[]", extra=STAFF_PLAN,
                         pdus=pdus, staff=small_staff(pdus, per_pdu=6))
    run = run_assign(design, out=tmp_path / "run", key_file=tmp_path / "joiner.key")
    staff = Register.open(run.directory).table("staff_allocation")
    rng = np.random.default_rng(2)
    treated = (staff["group"] == "Treatment").to_numpy()
    outcomes = pd.DataFrame({"staff_id": staff["staff_id"],
                             "score": 0.8 * treated + rng.normal(0, 1, len(staff))})
    path = tmp_path / "outcomes.csv"
    outcomes.to_csv(path, index=False)
    result = compute_plan(Register.open(run.directory), path)
    ri = next(m.result for m in result.models if m.result.model == "ri")
    in_trial = staff["group"].isin(["Treatment", "Control"])
    assert ri.n_clusters == ri.n_obs == int(in_trial.sum())   # staff are the permuted units
    details = ri.diagnostics["arms"]["Treatment"]
    assert details["clusters_permuted"] == int(in_trial.sum())
    assert 0 < ri.contrasts[0].p_value <= 1
    assert not any(d["model"] == "ri" for d in result.deviations)


def test_report_effects_carry_hedges_clustered_g(analysed_run):
    from evalkit.analysis.effect_sizes import hedges_g_clustered

    result = analysed_run["result"]
    row = result.effect_sizes.query("model == 'mixed' and arm == 'Treatment'").iloc[0]
    contrast = next(c for c in result.models[0].result.contrasts if c.arm == "Treatment")
    icc = result.iccs.set_index("outcome").loc["supervision_quality"]
    data = load_plan_data(Register.open(analysed_run["run"]), analysed_run["outcomes"])
    observed = data.staff.dropna(subset=["supervision_quality"])
    counts = observed[ARM].value_counts()
    want = hedges_g_clustered(contrast.estimate, icc["total_sd"], counts["Treatment"],
                              counts["Control"], len(observed) / observed[CLUSTER].nunique(),
                              icc["icc"])
    assert row["hedges_g"] == pytest.approx(want["g"], rel=1e-12)
    assert row["hedges_g_ci_low"] < row["hedges_g"] < row["hedges_g_ci_high"]
    html = (analysed_run["out"] / "report.html").read_text(encoding="utf-8")
    assert "Hedges&#39; g (clustered" in html or "Hedges' g (clustered" in html


def test_moderators_are_exploratory_interactions_outside_the_holm_family(analysed_run):
    from evalkit.analysis.plan import compute
    from evalkit.trial.analysis_plan import OutcomeSpec

    register = Register.open(analysed_run["run"])
    data = load_plan_data(register, analysed_run["outcomes"])
    outcome = OutcomeSpec(name="supervision_quality", type="continuous", primary=True,
                          covariates=["baseline_score"], moderators=["grade", "no_such"])
    deviations: list = []
    (planned,) = compute._moderators(data, register.design.analysis, outcome, deviations)
    assert planned.role.analysis_role == "exploratory" and not planned.role.in_holm_family
    assert planned.result.model == "cr2 x grade"
    arms = {c.arm.split(" x ")[0] for c in planned.result.contrasts}
    assert arms == {"Early Adopter", "Treatment"}
    levels = sorted(data.staff["grade"].dropna().unique())
    assert {c.arm.split(" x ")[1] for c in planned.result.contrasts} <= {
        f"grade[{level}]" for level in levels[1:]}
    randomised = [c for c in planned.result.contrasts if c.randomised]
    assert all(c.extra["p_holm_exploratory"] >= c.p_value for c in randomised)
    smallest = min(randomised, key=lambda c: c.p_value)
    assert smallest.extra["p_holm_exploratory"] == pytest.approx(
        min(1.0, len(randomised) * smallest.p_value))
    assert deviations[0]["model"] == "moderator no_such" and "not found" in deviations[0]["detail"]


def test_hc2_on_a_staff_outcome_analyses_pdu_means(analysed_run):
    from evalkit.analysis.plan import compute
    from evalkit.trial.analysis_plan import OutcomeSpec

    register = Register.open(analysed_run["run"])
    data = load_plan_data(register, analysed_run["outcomes"])
    outcome = OutcomeSpec(name="supervision_quality", type="continuous",
                          covariates=["baseline_score"])
    result = compute._run_model(data, register.design.analysis, outcome, "hc2", 1, None,
                                "pdu", [])
    cols = AnalysisColumns("supervision_quality", ARM, CLUSTER, STRATUM, ("baseline_score",))
    complete = data.staff.dropna(subset=cols.needed)
    means = complete.groupby([CLUSTER, ARM, STRATUM])[
        ["supervision_quality", "baseline_score"]].mean().reset_index()
    direct = fit_ols_cr(means, cols, vcov="HC2", non_randomised_arms=data.non_randomised)
    assert result.n_obs == result.n_clusters == len(means)
    for got, want in zip(result.contrasts, direct.contrasts, strict=True):
        assert got.estimate == pytest.approx(want.estimate, rel=1e-12)
        assert got.se == pytest.approx(want.se, rel=1e-12)
