"""One look per group in plots and pages, and SVG figures, without Jinja: the monitor's chart
module (SVG written straight from its arrays) imports only this, not the template engine.

Every plot shows a group the same way: one colour-blind-safe colour (Okabe-Ito hues), marker
and line style per group; pages add a GOV.UK-style tag (`evalkit.io.html`).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from markupsafe import escape

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class GroupStyle:
    """How one evaluation group looks everywhere: tag colours, pattern, plot colour and marks."""

    label: str          # the words shown for the group
    slug: str           # CSS class suffix: group-<slug>
    tag_text: str       # tag text colour (GOV.UK tag palette, contrast >= 7:1 on tag_fill)
    tag_fill: str       # tag background
    border: str         # CSS border style: the pattern that repeats the group without colour
    colour: str         # plot colour (Okabe-Ito; >= 3:1 against white)
    marker: str         # matplotlib marker
    linestyle: str      # matplotlib line style
    hatch: str          # matplotlib hatch for filled shapes


EARLY_ADOPTER = GroupStyle("Early Adopter", "early-adopter", "#6e3619", "#fcd6c3", "double",
                           "#d55e00", "^", ":", "xx")
TREATMENT = GroupStyle("Treatment", "treatment", "#0c2d4a", "#bbd4ea", "solid",
                       "#0072b2", "o", "-", "")
CONTROL = GroupStyle("Control", "control", "#282d30", "#e5e6e7", "dashed",
                     "#505a5f", "s", "--", "//")
NOT_IN_TRIAL = GroupStyle("Not in trial", "not-in-trial", "#0b0c0c", "#ffffff", "dotted",
                          "#949494", "x", "-.", "..")
GROUP_STYLES = (EARLY_ADOPTER, TREATMENT, CONTROL, NOT_IN_TRIAL)
RANDOMISED_COLOUR = TREATMENT.colour        # anything randomised that is not one group
NON_RANDOMISED_COLOUR = EARLY_ADOPTER.colour  # the purposive (non-randomised) comparison


def slug(text: Any) -> str:
    """'Early Adopter' -> 'early-adopter' (CSS class and id fragments)."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")


def group_style(name: Any) -> GroupStyle:
    """The style of a group by name; other designs' arm names by keyword, else Treatment's look."""
    key = slug(name)
    for style in GROUP_STYLES:
        if key == style.slug:
            return style
    if "control" in key or "wait" in key:
        return CONTROL
    if "early" in key:
        return EARLY_ADOPTER
    if "not-in" in key or key in {"excluded", "none"}:
        return NOT_IN_TRIAL
    return TREATMENT


def plot_style(name: Any) -> dict[str, str]:
    """matplotlib keyword arguments for a group's line or marker (colour, marker, line style)."""
    style = group_style(name)
    return {"color": style.colour, "marker": style.marker, "linestyle": style.linestyle}


def figure_to_svg(figure: Figure, title: str) -> str:
    """SVG markup of a figure with a <title> for screen readers; no XML prolog or metadata."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "evalkit"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight",
                       metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    title_tag = f"<title>{escape(title)}</title>"
    text = re.sub(r"(<svg[^>]*>)", lambda m: m.group(1) + title_tag, text, count=1)
    return text.replace("<svg ", '<svg role="img" ', 1)
