"""`power.json` and the self-contained HTML page of power curves (inline SVG)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from evalkit.io.files import write_text
from evalkit.power.job import PowerReport

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("evalkit.power", "templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    trim_blocks=True, lstrip_blocks=True,
)
COLOURS = ["#1d70b8", "#d4351c", "#00703c", "#f47738", "#4c2c92"]


def write_power_outputs(directory: Path, report: PowerReport) -> dict[str, Path]:
    """Write power.json and power.html into `directory`; return their paths."""
    directory = Path(directory)
    payload = report.as_dict()
    files = {"json": write_text(directory / "power.json",
                                json.dumps(_finite(payload), indent=2, sort_keys=True) + "\n"),
             "html": write_text(directory / "power.html", render_html(report))}
    return files


def _finite(value: Any) -> Any:
    """NaN and infinity become null, so power.json is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def curve_svg(report: PowerReport, axis: str) -> str:
    """Power against effect size ('effect') or ICC ('icc'): analytic lines, simulated points."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, ax = plt.subplots(figsize=(6.4, 3.8))
    colours = {}
    for index, (label, points) in enumerate(report.curves.get(axis, {}).items()):
        colours[label] = COLOURS[index % len(COLOURS)]
        ax.plot([p[0] for p in points], [p[1] for p in points], color=colours[label],
                label=f"{label} (analytic)")
    for point in _simulated_points(report, axis):
        ax.errorbar(point["x"], point["y"], yerr=1.96 * point["se"], fmt=point["marker"],
                    color=colours.get(point["contrast"], "#0b0c0c"), markeredgecolor="#0b0c0c",
                    capsize=3, label=point["label"])
    ax.axhline(report.assumptions.power, color="#505a5f", linestyle=":", linewidth=1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("effect size (outcome SDs)" if axis == "effect" else "intra-cluster correlation")
    ax.set_ylabel("power")
    ax.legend(frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.spines[["top", "right"]].set_visible(False)
    svg = _svg(figure)
    plt.close(figure)
    return svg


def _simulated_points(report: PowerReport, axis: str) -> list[dict[str, Any]]:
    """Simulated power (and type I error at 0) per analysis, with its MC SE, for the plots."""
    simulation = report.simulation
    if not simulation:
        return []
    points = []
    for index, analysis in enumerate(simulation.get("analyses", ["cr2"])):
        marker = "os^"[index % 3]
        for row in (r for r in simulation["contrasts"] if r["analysis"] == analysis):
            label = f"{row['contrast']}, {analysis} (simulated, 95% MC interval)"
            x = simulation["effect"] if axis == "effect" else simulation["icc"]
            points.append({"x": x, "y": row["power"], "se": row["power_mc_se"],
                           "marker": marker, "contrast": row["contrast"], "label": label})
            if axis == "effect":
                points.append({"x": 0.0, "y": row["type_i_error"], "se": row["type_i_mc_se"],
                               "marker": marker, "contrast": row["contrast"], "label": None})
    return points


def sample_size_paragraph(report: PowerReport) -> str:
    """The CONSORT 7a sentence: how the sample size was judged, with the ICC and sizes assumed."""
    a = report.assumptions
    designed = [r for r in report.rows if r["level"] == "as designed"]
    parts = []
    for row in designed:
        parts.append(f"{row['contrast']}: {row['clusters_arm']:g} against "
                     f"{row['clusters_control']:g} clusters in {row['blocks']} block(s), mean "
                     f"cluster size {row['cluster_size']:g} (CV {row['size_cv']:.2f}), "
                     f"{row['model_name']}, df {row['df']:g}, MDES {row['mdes']:.3f}")
    return (f"Assuming an intra-cluster correlation of {a.icc:g}, R\u00b2 of {a.r2_cluster:g} "
            f"(cluster) and {a.r2_individual:g} (staff) with {a.covariates} cluster-level "
            f"covariate(s), attrition {a.attrition:.0%}, a two-sided test at "
            f"{a.test_alpha:.4g} ({a.adjustment} adjustment) and {a.power:.0%} power, the "
            f"minimum detectable effects are: " + "; ".join(parts) + ".")


def render_html(report: PowerReport) -> str:
    """The whole self-contained page."""
    template = _TEMPLATES.get_template("power.html.j2")
    return template.render(
        report=report, rows=report.rows, a=report.assumptions,
        effect_svg=Markup(curve_svg(report, "effect")),
        icc_svg=Markup(curve_svg(report, "icc")),
        paragraph=sample_size_paragraph(report), simulation=report.simulation,
        icc_effect=report.curves.get("icc_effect", {}),
    )
