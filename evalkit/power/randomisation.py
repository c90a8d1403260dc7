"""MDES at randomisation: the allocation actually drawn, under the design's [analysis.power].

EEF asks for the MDES at protocol, at randomisation and at analysis. `assign` calls
`record_randomisation_power` after sealing: from the register alone it writes `power.json` and
`power.html` into the run folder, keeps a summary in the register's metadata (key
`power_at_randomisation`; the sealed manifest itself never changes) and logs a
`power_recorded` event. The analysis stage can call `mdes_at_analysis` with the observed ICC,
R² and attrition.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit.register import Register
from evalkit.trial.design import TrialDesign

if TYPE_CHECKING:
    from evalkit.power.analytic import Assumptions
    from evalkit.power.job import PowerReport

# The power modules (scipy, matplotlib) are imported only when a design asks for power, so
# every `assign` of a design without [analysis.power] does not pay for them.

META_KEY = "power_at_randomisation"


def design_assumptions(design: TrialDesign) -> Assumptions | None:
    """The design's [analysis.power] as Assumptions (alpha from [analysis]), or None."""
    section = design.analysis.power
    if section is None:
        return None
    from evalkit.power.analytic import Assumptions

    return Assumptions(alpha=design.analysis.alpha, **section.model_dump())


def randomisation_power(directory: Path) -> PowerReport | None:
    """The MDES of each contrast for the sealed allocation in `directory`, or None when the
    design has no [analysis.power]. Reads the register only: what was sealed is what counts."""
    register = Register.open(directory)
    design = register.design
    assumptions = design_assumptions(design)
    if assumptions is None:
        return None
    return _register_report(register, assumptions, "randomisation")


def mdes_at_analysis(directory: Path, observed: Assumptions) -> PowerReport:
    """The MDES recomputed with the observed ICC, R² and attrition (EEF's third moment)."""
    return _register_report(Register.open(directory), observed, "analysis")


def _register_report(register: Register, assumptions: Assumptions, moment: str) -> PowerReport:
    from evalkit.power.design_inputs import register_cluster_table
    from evalkit.power.job import report_for_table

    design = register.design
    source = {"mode": "design", "design": design.trial.name, "moment": moment,
              "unit": design.trial.unit, "design_sha256": register.manifest["design_sha256"]}
    return report_for_table(design, register_cluster_table(register), assumptions, None, source)


def record_randomisation_power(directory: Path) -> dict[str, Path] | None:
    """Write power.json/html into the run folder and record the MDES in the register."""
    report = randomisation_power(directory)
    if report is None:
        return None
    from evalkit.power.report import write_power_outputs

    files = write_power_outputs(directory, report)
    register = Register.open(directory)
    summary = mdes_summary(report)
    register.set_meta(META_KEY, summary)
    register.append_event("power_recorded", reason="MDES at randomisation",
                          detail={"file": str(files["json"]), "mdes": summary["mdes"]})
    return files


def mdes_summary(report: PowerReport) -> dict[str, Any]:
    """Assumptions and the MDES, model and df of each contrast as designed."""
    designed = [r for r in report.rows if r["level"] == "as designed"]
    return {"moment": report.source.get("moment"),
            "assumptions": report.as_dict()["assumptions"],
            "mdes": {r["contrast"]: round(r["mdes"], 6) for r in designed},
            "contrasts": [{k: r[k] for k in ("contrast", "model", "df", "multiplier", "mdes",
                                             "clusters_arm", "clusters_control", "blocks",
                                             "cluster_size", "size_cv")} for r in designed],
            "notes": report.notes}
