"""The shipped example roster: real PDUs, a believable national grade mix, POD principles."""

from __future__ import annotations

import pandas as pd
import pytest

from evalkit.examples.roster import (
    load_reference_pdus,
    make_example_pdus,
    make_example_staff,
    write_example,
)
from evalkit.trial.design import GRADES

POD_GRADES = ["PO", "PSO", "PQiP", "CA"]


@pytest.fixture(scope="module")
def pdus() -> pd.DataFrame:
    return make_example_pdus(2022)


@pytest.fixture(scope="module")
def staff(pdus: pd.DataFrame) -> pd.DataFrame:
    return make_example_staff(pdus, 2022)


def test_reference_pdus_are_the_109_real_units_in_12_regions():
    reference = load_reference_pdus()
    assert list(reference.columns) == ["pdu_code", "pdu_name", "region"]
    assert len(reference) == 109 and reference.pdu_code.is_unique
    assert reference.region.nunique() == 12
    assert "Kent, Surrey and Sussex" in set(reference.region)


def test_example_pdus_have_covariates_in_realistic_ranges(pdus):
    assert len(pdus) == 109 and pdus.region.nunique() == 12
    assert pdus.caseload_per_practitioner.between(30, 55).all()
    assert pdus.baseline_engagement.between(50, 75).all()
    assert pdus.po_vacancy_rate.between(0, 0.4).all()
    assert pdus.po_vacancy_rate.std() > 0.03


def test_headcount_equals_roster_count_per_pdu(pdus, staff):
    counted = staff.groupby("pdu_code").size()
    assert counted.reindex(pdus.pdu_code).tolist() == pdus.headcount.tolist()


def test_pdu_sizes_are_realistic_with_york_smallest(pdus):
    sizes = pdus.set_index("pdu_code").headcount
    assert sizes.idxmin() == "N55YRK"
    assert 30 <= sizes["N55YRK"] <= 60
    assert 300 <= sizes.max() <= 400
    assert 130 <= sizes.median() <= 200


def test_staff_total_and_grade_mix_are_near_published_figures(staff):
    counts = staff.grade.value_counts()
    assert set(counts.index) == set(GRADES)
    assert 18_000 <= len(staff) <= 20_000
    assert 4_400 <= counts["PO"] <= 5_300
    assert 5_300 <= counts["PSO"] <= 6_800
    assert 1_000 <= counts["PQiP"] <= 1_700
    assert counts["Head of PDU"] == 109
    assert 109 <= counts["Band 6+"] <= 800


def test_national_po_pso_ca_ratio_is_roughly_2_3_1(staff):
    counts = staff.grade.value_counts()
    assert 1.1 <= counts["PSO"] / counts["PO"] <= 1.8
    assert 0.35 <= counts["CA"] / counts["PO"] <= 0.75


def test_each_pod_has_one_spo_and_no_more_pqips_than_pos(staff):
    in_pods = staff[staff.pod != ""]
    per_pod = pd.crosstab(in_pods.pod, in_pods.grade)
    assert (per_pod["SPO"] == 1).all()
    assert (per_pod["PQiP"] <= per_pod["PO"]).all()
    assert (per_pod[["PO", "PSO", "CA"]] >= 1).all().all()
    prefixes = in_pods.pdu_code + "-POD"
    assert all(pod.startswith(prefix) for pod, prefix in zip(in_pods.pod, prefixes, strict=True))


def test_heads_and_band_6_have_no_pod_and_one_head_per_pdu(staff):
    leaders = staff[staff.grade.isin(["Head of PDU", "Band 6+"])]
    assert (leaders.pod == "").all()
    heads = staff[staff.grade == "Head of PDU"]
    assert heads.pdu_code.is_unique and len(heads) == 109


def test_line_managers_exist_and_sit_in_the_same_pdu(staff):
    by_id = staff.set_index("staff_id")
    managed = staff[staff.line_manager_id != ""]
    assert managed.line_manager_id.isin(by_id.index).all()
    manager_pdu = by_id.pdu_code.reindex(managed.line_manager_id).to_numpy()
    not_head = (managed.grade != "Head of PDU").to_numpy()
    assert (manager_pdu[not_head] == managed.pdu_code.to_numpy()[not_head]).all()
    unmanaged = staff[staff.line_manager_id == ""]
    assert (unmanaged.grade == "Band 6+").all() and len(unmanaged) == 12


def test_pod_members_report_to_their_pods_spo_and_spos_to_the_head(staff):
    by_id = staff.set_index("staff_id")
    members = staff[staff.grade.isin(POD_GRADES)]
    managers = by_id.reindex(members.line_manager_id)
    assert (managers.grade == "SPO").all()
    assert (managers.pod.to_numpy() == members.pod.to_numpy()).all()
    spo_managers = by_id.reindex(staff[staff.grade == "SPO"].line_manager_id)
    assert (spo_managers.grade == "Head of PDU").all()


def test_heads_report_to_a_band_6_regional_leader(staff):
    by_id = staff.set_index("staff_id")
    heads = staff[staff.grade == "Head of PDU"]
    assert (by_id.reindex(heads.line_manager_id).grade == "Band 6+").all()


def test_ids_and_emails_are_unique_and_well_formed(staff):
    assert staff.staff_id.is_unique and staff.email.is_unique
    assert staff.staff_id.str.fullmatch(r"S\d{6}").all()
    assert staff.email.str.fullmatch(r"[a-z]+\.[a-z]+\d+@justice\.gov\.uk").all()
    assert (staff.name.str.split(" ").str.len() == 2).all()


def test_start_dates_are_iso_in_range_and_recent_for_pqip(staff):
    dates = pd.to_datetime(staff.start_date, format="%Y-%m-%d")
    assert dates.min() >= pd.Timestamp("1995-01-01")
    assert dates.max() <= pd.Timestamp("2022-12-31")
    assert (dates[staff.grade == "PQiP"] >= pd.Timestamp("2020-01-01")).all()


def test_offices_are_one_to_four_per_pdu_and_named_after_towns(staff):
    offices = staff.groupby("pdu_code").office.nunique()
    assert offices.between(1, 4).all()
    assert set(staff[staff.pdu_code == "N55YRK"].office) == {"York Probation Office"}


def test_same_seed_gives_identical_frames_and_another_seed_differs(pdus, staff):
    pd.testing.assert_frame_equal(make_example_pdus(2022), pdus)
    pd.testing.assert_frame_equal(make_example_staff(pdus, 2022), staff)
    other_pdus = make_example_pdus(7)
    assert not other_pdus.equals(pdus)
    assert not make_example_staff(other_pdus, 7).equals(staff)


def test_staff_for_a_subset_of_pdus_matches_the_full_roster(pdus, staff):
    london = pdus[pdus.region == "London"]
    subset = make_example_staff(london, 2022)
    full_london = staff[staff.pdu_code.isin(london.pdu_code)]
    assert subset.grade.tolist() == full_london.grade.tolist()
    assert subset.pod.tolist() == full_london.pod.tolist()


def test_mismatched_headcount_is_refused(pdus):
    with pytest.raises(ValueError, match="headcount"):
        make_example_staff(pdus, 7)


def test_write_example_writes_both_csvs_without_temporary_files(tmp_path, pdus, staff):
    paths = write_example(tmp_path / "example", seed=2022)
    assert set(paths) == {"pdus", "staff"}
    written = pd.read_csv(paths["staff"], dtype=str, keep_default_na=False)
    assert written.staff_id.tolist() == staff.staff_id.tolist()
    assert written.line_manager_id.tolist() == staff.line_manager_id.tolist()
    assert len(pd.read_csv(paths["pdus"])) == 109
    assert sorted(p.name for p in paths["pdus"].parent.iterdir()) == ["pdus.csv", "staff.csv"]
