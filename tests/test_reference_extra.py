"""New analysis paths against R (tests/reference/reference.json -> "extra"; R not needed).

PDU-level OLS with HC2 (estimatr::lm_robust), blocked DIM on one row per PDU (estimatr),
the three-level random intercept (lmerTest, Satterthwaite), categorical covariates
(clubSandwich CR2, lmerTest) and the cases lme4 refuses.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from evalkit.analysis.data import AnalysisColumns, AnalysisInputError
from evalkit.analysis.dim import difference_in_means
from evalkit.analysis.mixed import fit_mixed
from evalkit.analysis.moderators import fit_moderator
from evalkit.analysis.nested import fit_three_level
from evalkit.analysis.ols import fit_ols_cr
from evalkit.analysis.run import AnalyseSpec, analyse_frame
from evalkit.cli import app
from evalkit.errors import InputError
from tests.reference_data import REF_DIR, load_dataset, reference_numbers

EXACT, MIXED, DF = 1e-6, 1e-5, 1e-3   # relative tolerances (deterministic, mixed, df)


@pytest.fixture(scope="module")
def extra() -> dict:
    return reference_numbers()["extra"]


def pdu_level() -> pd.DataFrame:
    return load_dataset("pdu_level")


def test_pdu_level_ols_hc2_matches_lm_robust(extra):
    result = fit_ols_cr(pdu_level(), AnalysisColumns("y", "arm", "pdu", "region", ("x1",)),
                        vcov="HC2")
    expected = extra["pdu_level"]["hc2"]["arms"]
    assert result.n_obs == extra["pdu_level"]["n"]
    assert {c.arm for c in result.contrasts} == set(expected)
    for contrast in result.contrasts:
        want = expected[contrast.arm]
        assert contrast.estimate == pytest.approx(want["estimate"], rel=EXACT)
        assert contrast.se == pytest.approx(want["se"], rel=EXACT)
        assert contrast.df == pytest.approx(want["df"], rel=DF)
        assert contrast.p_value == pytest.approx(want["p_value"], rel=DF)


def test_pdu_level_blocked_dim_matches_estimatr(extra):
    result = difference_in_means(pdu_level(), AnalysisColumns("y", "arm", "pdu", "region"))
    expected = extra["pdu_level"]["dim"]["arms"]
    for contrast in result.contrasts:
        want = expected[contrast.arm]
        assert contrast.estimate == pytest.approx(want["estimate"], rel=EXACT)
        assert contrast.se == pytest.approx(want["se"], rel=EXACT)
        assert contrast.df == pytest.approx(want["df"], rel=DF)
        assert contrast.extra["n_obs_contrast"] == want["n"]
        assert contrast.extra["n_blocks"] == want["n_blocks"]


def test_pdu_level_randomisation_inference_runs_on_one_row_per_pdu():
    spec = AnalyseSpec(outcome="y", cluster_col="pdu", strata_col="region", covariates=["x1"],
                       model="ri", permutations=200, seed=1, ri_arms=["Treatment"])
    result = analyse_frame(pdu_level(), spec)
    (contrast,) = result.contrasts
    assert result.n_obs == result.n_clusters
    assert 0 < contrast.p_value <= 1 and contrast.ci_low < contrast.estimate < contrast.ci_high


def test_three_level_model_matches_lmertest(extra):
    want = extra["three_level"]
    result = fit_three_level(load_dataset("three_level"),
                             AnalysisColumns("y", "arm", "pdu", "region", ("x1",)), pod="pod")
    assert result.n_obs == want["n"] and result.n_clusters == want["n_pdu"]
    assert result.diagnostics["n_pods"] == want["n_pod"]
    (contrast,) = result.contrasts
    ref = want["arms"]["Treatment"]
    assert contrast.estimate == pytest.approx(ref["estimate"], rel=MIXED)
    assert contrast.se == pytest.approx(ref["se"], rel=MIXED)
    assert contrast.df == pytest.approx(ref["df"], rel=DF)
    assert contrast.p_value == pytest.approx(ref["p_value"], rel=DF)
    for key in ("sigma2_pdu", "sigma2_pod", "sigma2_resid"):
        assert result.diagnostics[key] == pytest.approx(want[key], rel=MIXED)
    assert result.diagnostics["reml_criterion"] == pytest.approx(want["reml_criterion"],
                                                                 rel=1e-9)
    total = want["sigma2_pdu"] + want["sigma2_pod"] + want["sigma2_resid"]
    assert result.icc == pytest.approx(want["sigma2_pdu"] / total, rel=MIXED)
    assert result.diagnostics["icc_pod"] == pytest.approx(
        (want["sigma2_pdu"] + want["sigma2_pod"]) / total, rel=MIXED)


def test_three_level_from_the_cli(tmp_path, extra):
    out = tmp_path / "m3.json"
    result = CliRunner().invoke(app, [
        "analyse", str(REF_DIR / "datasets" / "three_level.csv"), "--outcome", "y",
        "--cluster-col", "pdu", "--pod-col", "pod", "--strata-col", "region", "--covariate",
        "x1", "--model", "mixed3", "--json", str(out)])
    assert result.exit_code == 0, result.output
    (contrast,) = json.loads(out.read_text())["contrasts"]
    assert contrast["estimate"] == pytest.approx(
        extra["three_level"]["arms"]["Treatment"]["estimate"], rel=MIXED)


def test_three_level_refuses_a_pod_in_two_pdus():
    frame = load_dataset("three_level")
    frame.loc[frame.index[0], "pod"] = frame["pod"].iloc[-1]
    with pytest.raises(AnalysisInputError, match="is in more than one PDU"):
        fit_three_level(frame, AnalysisColumns("y", "arm", "pdu", "region"), pod="pod")


def with_band() -> pd.DataFrame:
    frame = load_dataset("few_clusters")
    frame["band"] = np.select([frame["x2"] < 45, frame["x2"] < 55], ["low", "mid"], "high")
    return frame


def test_categorical_covariate_cr2_matches_clubsandwich(extra):
    want = extra["categorical"]
    result = analyse_frame(with_band(), AnalyseSpec(
        outcome="y", cluster_col="pdu", strata_col="region", covariates=["x1", "band"],
        model="cr2"))
    assert result.diagnostics["categorical_covariates"]["band"] == {
        "reference": want["reference_level"], "levels": want["levels"]}
    (contrast,) = result.contrasts
    ref = want["cr2"]["armTreatment"]
    assert contrast.estimate == pytest.approx(ref["estimate"], rel=EXACT)
    assert contrast.se == pytest.approx(ref["se"], rel=EXACT)
    assert contrast.df == pytest.approx(ref["df"], rel=DF)
    coefficients = result.diagnostics["coefficients"]
    for level in want["levels"][1:]:
        assert coefficients[f"band[{level}]"] == pytest.approx(
            want["cr2"][f"band{level}"]["estimate"], rel=EXACT)


def test_categorical_covariate_mixed_matches_lmertest(extra):
    result = fit_mixed(with_band(), AnalysisColumns("y", "arm", "pdu", "region",
                                                    ("x1", "band")))
    (contrast,) = result.contrasts
    ref = extra["categorical"]["mixed"]["Treatment"]
    assert contrast.estimate == pytest.approx(ref["estimate"], rel=MIXED)
    assert contrast.se == pytest.approx(ref["se"], rel=MIXED)
    assert contrast.df == pytest.approx(ref["df"], rel=DF)


def test_what_lme4_refuses_evalkit_refuses(extra):
    refusals = extra["refusals"]
    assert "must be < number of observations" in refusals["mixed_one_row_per_cluster"]
    assert "> 1 sampled level" in refusals["mixed_single_cluster"]
    spec = AnalyseSpec(outcome="y", cluster_col="pdu", strata_col="region", covariates=["x1"])
    with pytest.raises(InputError, match="must be fewer than the number of rows"):
        analyse_frame(pdu_level(), spec)
    single = load_dataset("few_clusters").assign(pdu="P1")
    spec = AnalyseSpec(outcome="y", cluster_col="pdu", covariates=["x1"],
                       allow_clusters_across_arms=True)
    with pytest.raises(InputError, match="at least two clusters"):
        analyse_frame(single, spec)


def test_moderator_interaction_matches_clubsandwich(extra):
    want = extra["categorical"]["interaction_cr2"]
    result = fit_moderator(with_band(), AnalysisColumns("y", "arm", "pdu", "region", ("x1",)),
                           moderator="band")
    got = {c.arm: c for c in result.contrasts}
    assert set(got) == {k for k, v in want.items() if v["estimate"] != []}
    for name, contrast in got.items():
        assert contrast.estimate == pytest.approx(want[name]["estimate"], rel=EXACT)
        assert contrast.se == pytest.approx(want[name]["se"], rel=EXACT)
        assert contrast.df == pytest.approx(want[name]["df"], rel=DF)
        assert contrast.extra["p_holm_exploratory"] >= contrast.p_value
    aliased = [k for k, v in want.items() if v["estimate"] == []]
    assert all(any(name in w for w in result.warnings) for name in aliased)
