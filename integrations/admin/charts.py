"""Bar charts drawn as inline SVG on the server (the dashboard, an integration's charts).

A chart is a row of slots (days, hours), each with one bar per series side by side, a
value axis with three ticks and a label under some slots. The template
``admin/integrations/bar_chart.html`` draws what ``bar_chart`` returns; every chart is
shown with a table of the same numbers, so the SVG carries titles for hovering only.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# The chart's geometry, in SVG user units.
WIDTH, HEIGHT, LEFT, TOP, BOTTOM = 760, 240, 56, 12, 36
GROUP = 0.72  # the share of a slot its bars take


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str  # the series' kind: its CSS class is bar-<kind>
    label: str


@dataclass(frozen=True)
class Series:
    kind: str  # events, delivered, failed, retrying, rate, latency
    label: str  # in the legend and the bars' titles
    values: Sequence[float | None]  # one per slot; None: nothing to measure
    unit: str = ""  # after each value: "%", " ms"


def nice_ceiling(value: float) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50... at least ``value``."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(int(step * power) for step in (1, 2, 5, 10) if step * power >= value)


def format_value(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:.0f}" if value >= 10 or float(value).is_integer() else f"{value:.1f}"
    return f"{text}{unit}"


def bar_chart(
    chart_id: str,
    title: str,
    slots: Sequence[str],
    series: Sequence[Series],
    axis_labels: Sequence[str] | None = None,
    top: float | None = None,
) -> dict[str, Any]:
    """Bars of every series side by side in each slot (``slots`` are their long names, for
    titles), axis ticks, and ``axis_labels`` (the slots' short names; "" leaves a slot
    unlabelled). ``top`` fixes the axis' maximum (100 for a percentage)."""
    highest = max([v or 0 for s in series for v in s.values] + [1])
    top = top or nice_ceiling(highest)
    plot_height = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT) / max(len(slots), 1)
    bar_width = slot * GROUP / max(len(series), 1)
    bars, labels = [], []
    for index, name in enumerate(slots):
        start = LEFT + index * slot + slot * (1 - GROUP) / 2
        for offset, line in enumerate(series):
            value = line.values[index]
            height = plot_height * (value or 0) / top
            bars.append(
                Bar(
                    x=round(start + offset * bar_width, 1),
                    y=round(TOP + plot_height - height, 1),
                    width=round(max(bar_width - 2, 1), 1),
                    height=round(height, 1),
                    kind=line.kind,
                    label=f"{name}: {format_value(value, line.unit)} {line.label.lower()}",
                )
            )
        text = (axis_labels or slots)[index]
        if text:
            labels.append({"x": round(LEFT + (index + 0.5) * slot, 1), "text": text})
    unit = series[0].unit if len({s.unit for s in series}) == 1 else ""
    ticks = [
        {
            "y": round(TOP + plot_height * (1 - fraction), 1),
            "value": format_value(top * fraction, unit),
        }
        for fraction in (0, 0.5, 1)
    ]
    return {
        "id": chart_id,
        "title": title,
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH,
        "baseline": TOP + plot_height,
        "label_y": HEIGHT - 12,
        "bars": bars,
        "labels": labels,
        "ticks": ticks,
        "legend": [{"kind": s.kind, "label": s.label} for s in series],
    }
