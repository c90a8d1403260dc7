"""The monitoring page's completion chart: inline SVG written straight from the weekly arrays.

No plotting library: importing matplotlib took longer (about 0.3-0.6 s) than comparing a
national export. The chart fills the page's width: across it, positions are percentages
(the step lines are drawn in a nested SVG stretched to the plot's width, their strokes kept
unscaled), while text and heights stay in CSS pixels, so labels read the same on a phone as
on a desktop. Only weekly percentages per group and dates are written: no personal data, and
the same arrays always give the same bytes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
from markupsafe import escape

from evalkit.io.figures import plot_style

TITLE = "Cumulative percentage of each group's staff who have completed"
AXIS_TITLE = "% of staff completed"
Series = list[tuple[str, np.ndarray]]

LEFT, RIGHT = 8.0, 96.0  # the plot's edges, % of the chart's width
PLOT_HEIGHT = 240        # px
LEGEND_ROW = 22          # px per legend entry
SPAN = 1000.0            # the nested SVG's user units across the plot
MAX_TICKS = 7            # date labels across the plot (room for short ones on a phone)
WEEK = np.timedelta64(7, "D")
LINE_WIDTH = 2.5
# matplotlib line styles as SVG dash patterns (drawn with round caps: "0.1" is a dot)
DASHES = {"-": "", "--": "7 6", ":": "0.1 5", "-.": "9 6 0.1 6"}
TEXT = "#0b0c0c"
GRID = "#dcdcdc"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def chart_svg(weeks: np.ndarray, series: Series) -> str:
    """The completion curve as an inline SVG (no XML header): a step line per group in its
    own colour and line style, y 0-100 % with grid lines, dates across, a legend."""
    days = np.asarray(weeks).astype("datetime64[D]")
    legend_height = LEGEND_ROW * len(series) + (8 if series else 0)
    top = legend_height + 30
    height = top + PLOT_HEIGHT + 44
    parts = [
        f'<svg role="img" xmlns="http://www.w3.org/2000/svg" width="100%" height="{height}" '
        f'style="display:block;width:100%;max-width:50rem;height:{height}px;'
        f'font-family:Arial,Helvetica,sans-serif" font-size="13" fill="{TEXT}">',
        f"<title>{escape(TITLE)}</title>",
        f"<desc>{escape(_description(days, series))}</desc>",
        *_legend(series),
        f'<text x="0" y="{top - 12}" font-size="14">{escape(AXIS_TITLE)}</text>',
        *_y_axis(top),
    ]
    if len(days):
        start, end = days[0], days[-1] + WEEK
        parts += _x_axis(start, end, top)
        parts += _lines(days, series, start, end, top)
    else:
        parts.append(f'<text x="{(LEFT + RIGHT) / 2:g}%" y="{top + PLOT_HEIGHT / 2:g}" '
                     'text-anchor="middle" font-size="14">No completions yet</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _description(days: np.ndarray, series: Series) -> str:
    """What the chart shows, in words, for screen readers: the span and each latest value."""
    if not len(days) or not series:
        return "No one has completed yet."
    latest = "; ".join(f"{group} {float(values[-1]):.1f}%" for group, values in series)
    span = (f"Weekly from {_long_date(days[0])} to the week of {_long_date(days[-1])}"
            if len(days) > 1 else f"The week of {_long_date(days[0])}")
    return f"{span}. Latest: {latest}."


def _long_date(day: np.datetime64) -> str:
    date = day.astype(dt.date)
    return f"{date.day} {MONTHS[date.month - 1]} {date.year}"


def _legend(series: Series) -> Iterator[str]:
    """One row per group: a sample of its line, then its name."""
    for row, (group, _) in enumerate(series):
        y = 14 + LEGEND_ROW * row
        yield (f'<line x1="2" x2="34" y1="{y - 4.5:g}" y2="{y - 4.5:g}" '
               f"{_stroke(group)}/>")
        yield f'<text x="42" y="{y}" font-size="14">{escape(group)}</text>'


def _stroke(group: str) -> str:
    """The SVG stroke attributes of a group's line (colour, width, dashes)."""
    style = plot_style(group)
    dashes = DASHES.get(style["linestyle"], "")
    dash = f' stroke-dasharray="{dashes}"' if dashes else ""
    return (f'fill="none" stroke="{style["color"]}" stroke-width="{LINE_WIDTH:g}" '
            f'stroke-linecap="round" stroke-linejoin="round"{dash}')


def _y_axis(top: int) -> Iterator[str]:
    """Grid lines and labels at every 20 %; the 0 % line is the dark x axis."""
    for percent in range(0, 101, 20):
        y = top + PLOT_HEIGHT * (1 - percent / 100)
        colour = TEXT if percent == 0 else GRID
        yield (f'<line x1="{LEFT:g}%" x2="{RIGHT:g}%" y1="{y:g}" y2="{y:g}" '
               f'stroke="{colour}" stroke-width="1"/>')
        yield (f'<text x="{LEFT:g}%" dx="-6" y="{y + 4.5:g}" '
               f'text-anchor="end">{percent}</text>')


def _x_axis(start: np.datetime64, end: np.datetime64, top: int) -> Iterator[str]:
    """A tick, a faint grid line and a label at each date tick; the year under the first
    tick and wherever it changes."""
    bottom = top + PLOT_HEIGHT
    previous_year = None
    for day, label in _date_ticks(start, end):
        x = f"{_across(day, start, end):.2f}%"
        yield f'<line x1="{x}" x2="{x}" y1="{top}" y2="{bottom}" stroke="{GRID}"/>'
        yield f'<line x1="{x}" x2="{x}" y1="{bottom}" y2="{bottom + 5}" stroke="{TEXT}"/>'
        yield f'<text x="{x}" y="{bottom + 19}" text-anchor="middle">{label}</text>'
        year = day.astype(dt.date).year
        if year != previous_year:
            yield f'<text x="{x}" y="{bottom + 35}" text-anchor="middle">{year}</text>'
        previous_year = year


def _date_ticks(start: np.datetime64, end: np.datetime64) -> list[tuple[np.datetime64, str]]:
    """Month starts every 1, 2, 3, 6 or 12+ months ('Mar'), at most MAX_TICKS of them; over
    less than two months, week starts ('7 Mar')."""
    first = start.astype("datetime64[M]")
    months = np.arange(first, end.astype("datetime64[M]") + 1)
    months = months[(months.astype("datetime64[D]") >= start)
                    & (months.astype("datetime64[D]") <= end)]
    if len(months) >= 2:
        step = next(s for s in (1, 2, 3, 6, 12, 24, 60, 120, 600)
                    if np.count_nonzero(months.astype(int) % s == 0) <= MAX_TICKS)
        chosen = months[months.astype(int) % step == 0]
        return [(m.astype("datetime64[D]"), MONTHS[m.astype(dt.date).month - 1])
                for m in chosen]
    weeks = np.arange(start, end, WEEK)
    step = -(-len(weeks) // MAX_TICKS)
    return [(day, f"{day.astype(dt.date).day} {MONTHS[day.astype(dt.date).month - 1]}")
            for day in weeks[::step]]


def _across(day: np.datetime64, start: np.datetime64, end: np.datetime64) -> float:
    """Where a date falls across the chart, in % of its width."""
    fraction = (day - start) / (end - start)
    return LEFT + (RIGHT - LEFT) * float(fraction)


def _lines(days: np.ndarray, series: Series, start: np.datetime64, end: np.datetime64,
           top: int) -> Iterator[str]:
    """Each group's steps (a week's value holds until the next week) in a nested SVG that
    stretches across the plot; strokes keep their width and dashes however wide it is."""
    x = SPAN * ((np.append(days, end) - start) / (end - start)).astype(float)
    yield (f'<svg x="{LEFT:g}%" y="{top}" width="{RIGHT - LEFT:g}%" height="{PLOT_HEIGHT}" '
           f'viewBox="0 0 {SPAN:g} {PLOT_HEIGHT}" preserveAspectRatio="none" '
           'overflow="visible">')
    for group, values in series:
        y = PLOT_HEIGHT * (1 - np.clip(np.asarray(values, dtype=float), 0, 100) / 100)
        steps = "".join(f"V{level:.1f}H{right:.1f}" for level, right in zip(y[1:], x[2:],
                                                                           strict=True))
        yield (f'<path d="M{x[0]:.1f} {y[0]:.1f}H{x[1]:.1f}{steps}" {_stroke(group)} '
               'vector-effect="non-scaling-stroke"/>')
    yield "</svg>"
