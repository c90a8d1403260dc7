"""The HTML report: self-contained, inline SVG, summary first, human labels, escaped text."""

from __future__ import annotations

import dataclasses
import re

from evalkit.analysis.plan.labels import effect_label
from evalkit.analysis.plan.plots import forest_plot
from evalkit.analysis.plan.report import fmt, fmt_p, render_report


def without_namespaces(html: str) -> str:
    """Drop XML namespace declarations (identifiers, never fetched) before looking for URLs."""
    return re.sub(r'\sxmlns(:\w+)?="[^"]*"', "", html)


def test_report_is_self_contained_with_inline_svg(analysed_run):
    html = (analysed_run["out"] / "report.html").read_text(encoding="utf-8")
    assert html.count("<svg") >= 2
    assert "<title>Forest plot" in html
    assert "<title>CONSORT flow diagram" not in html  # one CONSORT flow: the HTML boxes
    body = without_namespaces(html)
    assert not re.search(r"https?://|//cdn|<link\b|<script\b[^>]*\bsrc=|<img\b|@import", body)
    assert "<metadata>" not in html and "<!DOCTYPE svg" not in html


def test_report_sections_and_labels(analysed_run):
    html = (analysed_run["out"] / "report.html").read_text(encoding="utf-8")
    headings = ("Summary", "Contents", "Design", "CONSORT flow", "Balance at allocation",
                "Attrition", "Effects", "Model tables", "Intra-cluster correlations",
                "Deviations from the plan")
    positions = [html.index(f">{heading}") for heading in headings]
    assert positions == sorted(positions)  # the summary and contents come first
    assert html.count('class="consort"') == 1
    assert ('<strong class="group group-early-adopter">Early Adopter</strong> '
            '<span class="nonrandom">(non-randomised)</span>') in html
    assert "Supervision quality" in html and "supervision_quality |" not in html
    assert "mean_headcount" not in html and ">Headcount<" in html
    assert "Staff allocated (all grades)" in html
    assert "Complier average causal effect" in html
    assert "Holm p" in html


def test_report_escapes_text_and_lists_deviations(analysed_run):
    result = dataclasses.replace(
        analysed_run["result"],
        deviations=[{"outcome": "retained", "model": "gee", "status": "failed",
                     "detail": "<script>alert(1)</script>"}])
    html = render_report(result, "2026-01-01T00:00:00+00:00")
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "None: every pre-specified model was fitted." not in html


def test_forest_plot_has_one_row_per_effect(analysed_run):
    effects = analysed_run["result"].effect_sizes
    svg = forest_plot(effects)
    assert svg.startswith("<svg")
    for row in effects.itertuples():
        assert effect_label(row.outcome, row.model, row.arm, row.randomised) in svg
    assert " | " not in svg


def test_number_formatting():
    assert fmt(float("nan")) == "-" and fmt(None) == "-"
    assert fmt(1.23456) == "1.235" and fmt(3) == "3"
    assert fmt_p(0.0004) == "<0.001" and fmt_p(0.0123) == "0.012"


def test_report_opens_with_the_primary_result_in_words(analysed_run):
    result = analysed_run["result"]
    html = (analysed_run["out"] / "report.html").read_text(encoding="utf-8")
    summary = html[html.index('id="summary"'):html.index('id="contents-heading"')]
    primary = next(m.result for m in result.models
                   if (m.role.outcome_role, m.role.analysis_role) == ("primary", "primary"))
    assert primary.outcome.replace("_", " ").capitalize() in summary
    for contrast in primary.contrasts:
        assert f"CI {contrast.ci_low:.2f} to {contrast.ci_high:.2f}" in summary
    assert "What it means" in summary
