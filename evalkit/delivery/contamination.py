"""Contamination risk: where staff in different groups work together, manage each other,
work across PDUs or moved after allocation, with a risk level and mitigations per PDU.

Risk levels per PDU (documented thresholds):
- high: a Senior Probation Officer supervises staff in another group (a trained SPO with
  untrained practitioners, or the reverse), or at least HIGH_SHARE of the PDU's staff are
  affected by some finding;
- medium: any other finding (line management across groups, a mixed POD or office, work
  across PDUs, a transfer);
- low: nothing found.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from evalkit.register import NOT_IN_TRIAL
from evalkit.trial.design import TrialDesign

HIGH_SHARE = 0.10
SUPERVISOR_GRADES = ("SPO",)
NAMES_SHOWN = 5
FINDING_COLUMNS = ["kind", "severity", "pdu_code", "pdu_name", "region", "subject",
                   "staff_involved", "manager", "detail"]
KINDS = {
    "supervision_across_groups": "SPO supervising staff in another group",
    "line_management_across_groups": "line manager in another group",
    "mixed_pod": "POD with staff in different groups",
    "mixed_office": "office with staff in different groups",
    "cross_pdu_work": "staff working across PDUs",
    "transfer": "transfer after allocation",
}


@dataclass
class ContaminationReport:
    """Findings (one row each), counts and risk per PDU and region, and the POD metric."""

    findings: pd.DataFrame
    by_pdu: pd.DataFrame
    by_region: pd.DataFrame
    control_with_treated_pod_mate: int
    control_in_pods: int
    unit: str

    @property
    def control_pod_share(self) -> float:
        """Share of Control staff (in a POD) who share their POD with a treated colleague."""
        return self.control_with_treated_pod_mate / self.control_in_pods \
            if self.control_in_pods else 0.0


def _finding(kind: str, severity: str, where: Mapping[str, Any], subject: str, staff: list[str],
             detail: str, manager: str = "") -> dict:
    return {"kind": kind, "severity": severity, "pdu_code": where["pdu_code"],
            "pdu_name": where["pdu_name"], "region": where["region"], "subject": subject,
            "staff_involved": ";".join(staff), "manager": manager, "detail": detail}


def _group_counts(members: pd.DataFrame) -> str:
    return ", ".join(f"{g} {n}" for g, n in members["group"].value_counts().sort_index().items())


def mixed_pods(staff: pd.DataFrame) -> list[dict]:
    """PODs (teams) whose members are in more than one group."""
    in_pods = staff[staff["pod"].fillna("") != ""]
    mixed = in_pods.groupby(["pdu_code", "pod"])["group"].transform("nunique") > 1
    findings = []
    for (_, pod), members in in_pods[mixed].groupby(["pdu_code", "pod"], sort=True):
        findings.append(_finding("mixed_pod", "medium", members.iloc[0], pod,
                                 members["staff_id"].tolist(), _group_counts(members)))
    return findings


def mixed_offices(staff: pd.DataFrame) -> list[dict]:
    """Offices whose staff are in more than one group (one finding per PDU in the office)."""
    in_offices = staff[staff["office"].fillna("") != ""]
    mixed = in_offices.groupby("office")["group"].transform("nunique") > 1
    findings = []
    for office, members in in_offices[mixed].groupby("office", sort=True):
        detail = _group_counts(members)
        for _, local in members.groupby("pdu_code", sort=True):
            findings.append(_finding("mixed_office", "low", local.iloc[0], office, [], detail))
    return findings


def _describe(person: Mapping[str, Any], suffix: str = "") -> str:
    return (f"{person['name' + suffix]} ({person['staff_id' + suffix]}, "
            f"{person['grade' + suffix]}, {person['group' + suffix]}, "
            f"{person['pdu_code' + suffix]})")


def managers_across_groups(staff: pd.DataFrame) -> list[dict]:
    """Staff whose line manager is in a different group; SPO supervision is flagged high."""
    managers = staff[["staff_id", "name", "grade", "group", "pdu_code"]]
    pairs = staff.merge(managers, left_on="line_manager_id", right_on="staff_id",
                        suffixes=("", "_manager"))
    pairs = pairs[pairs["group"] != pairs["group_manager"]]
    findings = []
    for pair in pairs.to_dict("records"):  # plain dicts: iterrows made a Series per pair
        supervising = pair["grade_manager"] in SUPERVISOR_GRADES
        kind = "supervision_across_groups" if supervising else "line_management_across_groups"
        manager = _describe(pair, "_manager")
        findings.append(_finding(kind, "high" if supervising else "medium", pair,
                                 pair["staff_id"], [pair["staff_id"], pair["staff_id_manager"]],
                                 f"{_describe(pair)} is managed by {manager}", manager))
    return findings


def cross_pdu_work(staff: pd.DataFrame) -> list[dict]:
    """Staff with a `secondary_pdu_code` other than their own PDU (none if no such column)."""
    if "secondary_pdu_code" not in staff.columns:
        return []
    pdu_group = staff.groupby("pdu_code")["group"].agg(lambda g: g.mode().iloc[0])
    secondary = staff["secondary_pdu_code"].fillna("").astype(str).str.strip()
    movers = staff[(secondary != "") & (secondary != staff["pdu_code"])]
    findings = []
    for _, person in movers.iterrows():
        other = person["secondary_pdu_code"].strip()
        other_group = pdu_group.get(other, "unknown")
        severity = "low" if other_group == person["group"] else "medium"
        findings.append(_finding("cross_pdu_work", severity, person, person["staff_id"],
                                 [person["staff_id"]],
                                 f"{_describe(person)} also works in {other} ({other_group})"))
    return findings


def transfers(staff: pd.DataFrame, events: pd.DataFrame | None) -> list[dict]:
    """`transferred` events in the register: medium when the person now works beside staff
    of another group (their group is kept: intention to treat), low otherwise."""
    if events is None or events.empty:
        return []
    moved = events[events["kind"] == "transferred"]
    if moved.empty:
        return []
    pdu_group = staff.groupby("pdu_code")["group"].agg(lambda g: g.mode().iloc[0])
    findings = []
    for _, event in moved.iterrows():
        detail = json.loads(event["detail"] or "{}")
        staff_id, group = str(detail.get("staff_id", "")), str(detail.get("group", ""))
        target = str(detail.get("to_pdu", ""))
        local = pdu_group.get(target, "unknown")
        where = pd.Series({"pdu_code": target, "pdu_name": detail.get("pdu_name", ""),
                           "region": detail.get("region", "")})
        text = (f"{staff_id} ({group}) moved from {detail.get('from_pdu', '?')} to {target} "
                f"(mostly {local}) on {str(event['time'])[:10]}")
        findings.append(_finding("transfer", "low" if local == group else "medium", where,
                                 staff_id, [staff_id], f"{text}. {event['reason']}".strip()))
    return findings


def control_pod_exposure(design: TrialDesign, staff: pd.DataFrame) -> pd.DataFrame:
    """Per Control staff member in a POD: does a treated colleague share the POD?"""
    treated = {arm.name for arm in design.arms if not arm.control}
    in_pods = staff[staff["pod"].fillna("") != ""]
    exposed_pods = in_pods[in_pods["group"].isin(treated)][["pdu_code", "pod"]].drop_duplicates()
    control = in_pods[in_pods["group"] == design.control_arm]
    flagged = control.merge(exposed_pods.assign(exposed=True), on=["pdu_code", "pod"],
                            how="left")
    return flagged.assign(exposed=flagged["exposed"].eq(True))


def assess(design: TrialDesign, staff: pd.DataFrame,
           events: pd.DataFrame | None = None) -> ContaminationReport:
    """Every finding, then counts, risk and mitigations per PDU and region."""
    findings = pd.DataFrame(
        mixed_pods(staff) + mixed_offices(staff) + managers_across_groups(staff)
        + cross_pdu_work(staff) + transfers(staff, events), columns=FINDING_COLUMNS)
    exposure = control_pod_exposure(design, staff)
    by_pdu = pdu_risk(staff, findings, exposure, design.delivery.programme)
    return ContaminationReport(findings, by_pdu, region_summary(by_pdu),
                               int(exposure["exposed"].sum()), len(exposure), design.trial.unit)


def pdu_risk(staff: pd.DataFrame, findings: pd.DataFrame, exposure: pd.DataFrame,
             programme: str = "SEEDS2") -> pd.DataFrame:
    """Counts of each kind of finding, staff affected, risk level and mitigations per PDU."""
    keys = ["pdu_code", "pdu_name", "region"]
    pdus = staff.groupby(keys, sort=False).size().reset_index(name="staff")
    pdus["groups"] = _groups_text(staff, pdus, keys)
    counts = findings.pivot_table(index="pdu_code", columns="kind", values="subject",
                                  aggfunc="count", fill_value=0).reindex(columns=list(KINDS),
                                                                         fill_value=0)
    table = pdus.merge(counts, left_on="pdu_code", right_index=True, how="left")
    table[list(KINDS)] = table[list(KINDS)].fillna(0).astype(int)
    table["staff_affected"] = table["pdu_code"].map(_affected(staff, findings)).fillna(0)
    table["staff_affected"] = table["staff_affected"].astype(int)
    table["share_affected"] = (table["staff_affected"] / table["staff"]).round(4)
    per_pdu = exposure.groupby("pdu_code")["exposed"].agg(["sum", "size"])
    share = (per_pdu["sum"] / per_pdu["size"]).round(4)
    table["control_with_treated_pod_mate"] = table["pdu_code"].map(share).fillna(0.0)
    found_any = table[list(KINDS)].sum(axis=1) > 0
    table["risk"] = ["high" if supervising > 0 or share >= HIGH_SHARE else
                     "medium" if found else "low" for supervising, share, found in zip(
                         table["supervision_across_groups"], table["share_affected"], found_any,
                         strict=True)]
    found = findings_by_pdu_and_kind(findings)
    table["mitigation"] = [mitigations(row["pdu_code"], found, row, programme)
                           for row in table.to_dict("records")]
    order = {"high": 0, "medium": 1, "low": 2}
    return table.sort_values(["risk", "region", "pdu_name"], key=lambda c: c.map(order)
                             if c.name == "risk" else c, kind="stable").reset_index(drop=True)


def _affected(staff: pd.DataFrame, findings: pd.DataFrame) -> pd.Series:
    """Distinct staff of each PDU involved in a finding (offices excluded: too broad)."""
    involved = findings.loc[findings["kind"] != "mixed_office", "staff_involved"]
    ids = {i for text in involved for i in text.split(";") if i}
    home = staff[staff["staff_id"].isin(ids)]
    return home.groupby("pdu_code").size()


def _groups_text(staff: pd.DataFrame, pdus: pd.DataFrame, keys: list[str]) -> list[str]:
    """Each PDU's groups, sorted and comma-separated, 'Not in trial' only when it is all
    there is (one pass over the staff, not a Python function per PDU group)."""
    groups: dict[tuple, set[str]] = {}
    for *key, group in zip(*(staff[k].tolist() for k in [*keys, "group"]), strict=True):
        groups.setdefault(tuple(key), set()).add(group)
    return [", ".join(sorted(groups[key] - {NOT_IN_TRIAL}) or [NOT_IN_TRIAL])
            for key in zip(*(pdus[k].tolist() for k in keys), strict=True)]


def _names(values: list[str]) -> str:
    shown = ", ".join(values[:NAMES_SHOWN])
    extra = len(values) - NAMES_SHOWN
    return shown + (f" and {extra} more" if extra > 0 else "")


def findings_by_pdu_and_kind(findings: pd.DataFrame) -> dict[tuple[str, str], list[dict]]:
    """(PDU code, kind) -> that PDU's findings of that kind (subject and manager), in order."""
    found: dict[tuple[str, str], list[dict]] = {}
    for code, kind, subject, manager in zip(findings["pdu_code"], findings["kind"],
                                            findings["subject"], findings["manager"],
                                            strict=True):
        found.setdefault((code, kind), []).append({"subject": subject, "manager": manager})
    return found


def _distinct(found: dict[tuple[str, str], list[dict]], pdu_code: str, kind: str,
              field: str) -> list[str]:
    return sorted({finding[field] for finding in found.get((pdu_code, kind), [])})


def mitigations(pdu_code: str, found: dict[tuple[str, str], list[dict]],
                row: Mapping[str, Any], programme: str = "SEEDS2") -> str:
    """Concrete actions for one PDU, naming the managers to brief (`found`: the findings by
    PDU and kind, from `findings_by_pdu_and_kind`)."""
    actions = []
    spos = _distinct(found, pdu_code, "supervision_across_groups", "manager")
    if spos:
        actions.append(f"Brief the SPOs {_names(spos)}: they supervise staff in another group; "
                       f"supervise them as now, without {programme} approaches, until every "
                       "supervisee has done the learning.")
    bosses = _distinct(found, pdu_code, "line_management_across_groups", "manager")
    if bosses:
        actions.append(f"Brief {_names(bosses)}: they line-manage staff in another group of "
                       "this PDU; keep the learning out of supervision and team meetings.")
    if row["share_affected"] >= HIGH_SHARE and row["mixed_pod"] > 0:
        actions.append(f"Mixing is widespread ({row['share_affected']:.0%} of staff affected): "
                       "prefer allocating whole PDUs (unit = \"pdu\") in the next cohort.")
    elif row["mixed_pod"] > 0:
        pods = _distinct(found, pdu_code, "mixed_pod", "subject")
        actions.append(f"Brief the SPOs of the mixed PODs {_names(pods)}.")
    if row["mixed_office"] > 0:
        offices = _distinct(found, pdu_code, "mixed_office", "subject")
        actions.append(f"Remind staff in {_names(offices)} not to discuss the learning with "
                       "colleagues who have not done it.")
    if row["cross_pdu_work"] > 0:
        actions.append("Tell staff who work across PDUs which group's window applies to them.")
    if row["transfer"] > 0:
        actions.append("Check transferred staff keep their allocated group and brief their "
                       "new manager.")
    return " ".join(actions)


def region_summary(by_pdu: pd.DataFrame) -> pd.DataFrame:
    """Counts per region: findings of each kind, staff affected, PDUs at each risk level."""
    totals = by_pdu.groupby("region")[[*KINDS, "staff", "staff_affected"]].sum()
    levels = by_pdu.pivot_table(index="region", columns="risk", values="pdu_code",
                                aggfunc="count", fill_value=0)
    levels = levels.reindex(columns=["high", "medium", "low"], fill_value=0)
    levels.columns = [f"pdus_{c}_risk" for c in levels.columns]
    return totals.join(levels).fillna(0).astype(int).reset_index()
