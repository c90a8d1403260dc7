"""Report figures drawn with matplotlib (no pyplot state) and returned as inline SVG text.

The SVG carries its text as text (accessible, searchable), no metadata, no DOCTYPE and no
external references, so it can be pasted straight into a self-contained HTML page.
"""

from __future__ import annotations

import pandas as pd
from matplotlib import ticker
from matplotlib.figure import Figure

from evalkit.analysis.plan.labels import effect_label, outcome_label
from evalkit.io.figures import RANDOMISED_COLOUR, figure_to_svg, group_style

__all__ = ["figure_to_svg", "forest_plot", "icc_plot"]


def forest_plot(effects: pd.DataFrame) -> str:
    """Every effect with its CI: standardised (EEF g, Cox index) and rate ratios, by outcome."""
    panels = [("Standardised effect (EEF g; Cox index for binary)",
               effects[effects["measure"] != "rate ratio"], 0.0, False),
              ("Rate ratio (log scale)", effects[effects["measure"] == "rate ratio"], 1.0, True)]
    panels = [p for p in panels if len(p[1])]
    heights = [max(len(p[1]), 1) * 0.32 + 0.9 for p in panels]
    figure = Figure(figsize=(8.5, sum(heights) + 0.3))
    axes = figure.subplots(len(panels), 1, squeeze=False,
                           gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, (title, rows, null, log_scale) in zip(axes, panels, strict=True):
        _forest_panel(ax, rows.reset_index(drop=True), title, null, log_scale)
    figure.tight_layout()
    return figure_to_svg(figure, "Forest plot of every effect with its confidence interval")


def _forest_panel(ax, rows: pd.DataFrame, title: str, null: float, log_scale: bool) -> None:
    positions = list(range(len(rows)))[::-1]
    for y, row in zip(positions, rows.itertuples(index=False), strict=True):
        style = group_style(row.arm)
        filled = row.analysis_role == "primary"
        ax.plot([row.ci_low, row.ci_high], [y, y], color=style.colour, linewidth=1.6,
                linestyle=style.linestyle)
        ax.plot([row.effect_size], [y], marker=style.marker, color=style.colour, markersize=7,
                markerfacecolor=style.colour if filled else "white")
    ax.axvline(null, color="#555555", linewidth=0.8, linestyle="--")
    ax.set_yticks(positions)
    ax.set_yticklabels([_label(r) for r in rows.itertuples(index=False)], fontsize=8)
    if log_scale:
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%.2g"))
        ax.xaxis.set_minor_formatter(ticker.FormatStrFormatter("%.2g"))
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_title(title, fontsize=10, loc="left")
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", color="#dddddd", linewidth=0.5)


def _label(row) -> str:
    return effect_label(row.outcome, row.model, row.arm, bool(row.randomised))


def icc_plot(iccs: pd.DataFrame) -> str:
    """Each outcome's ICC with its Searle interval."""
    rows = iccs.dropna(subset=["icc"]).reset_index(drop=True) if "icc" in iccs else iccs
    figure = Figure(figsize=(6.5, 0.45 * max(len(rows), 1) + 0.9))
    ax = figure.subplots()
    positions = list(range(len(rows)))[::-1]
    for y, row in zip(positions, rows.itertuples(index=False), strict=True):
        ax.plot([row.ci_low, row.ci_high], [y, y], color=RANDOMISED_COLOUR, linewidth=1.6)
        ax.plot([row.icc], [y], "o", color=RANDOMISED_COLOUR)
    ax.set_yticks(positions)
    ax.set_yticklabels([outcome_label(o) for o in rows["outcome"]] if len(rows) else [],
                       fontsize=8)
    ax.set_xlabel("intra-cluster correlation (PDU)", fontsize=8)
    ax.axvline(0, color="#555555", linewidth=0.8, linestyle="--")
    ax.tick_params(axis="x", labelsize=8)
    figure.tight_layout()
    return figure_to_svg(figure, "Intra-cluster correlations with confidence intervals")
