"""Inline SVG line charts for the HTML report: no script, no network, any browser renders them.

A chart is a few series of (second, value) points on a time axis, optional vertical markers
(the knee) and dashed series (the baseline). The report gives all its charts one ``domain``
(first to last second) so that they line up, one above the other. The time axis is ticked at
exact multiples of a "nice" step (1, 2, 5, 10, 15, 30 s; 1, 2, 5, 10, 15, 30 min; 1, 2, 3, 6,
12 h; days), the value axis at multiples of 1, 2, 2.5 or 5 × 10ⁿ. The legend sits right of the
title, or on a row of its own when the title leaves no room. Every text goes through
``escape``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 860, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 36
MAX_TIME_TICKS = 10  # labels at most on a time axis (9 steps)
TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)
DAY = 86400

# Estimated text widths, to lay out the title row without a browser: generous for the fonts
# the page asks for (system-ui, DejaVu Sans in a bare Linux), so an estimate errs wide.
TITLE_EM, TICK_EM = 0.7, 0.7  # an average character's advance, in em (measured: ≤ 0.66)
TITLE_PX, TICK_PX = 13, 11  # font sizes (the template's CSS)
LEGEND_SWATCH, LEGEND_GAP, TITLE_GAP = 22, 14, 24
LEGEND_ROW = 18  # the extra height when the legend needs its own row


@dataclass
class Series:
    name: str
    color: str
    points: Sequence[tuple[float, float | None]]
    dashed: bool = False


@dataclass
class Marker:
    x: float
    label: str
    color: str = "#b91c1c"


@dataclass
class Chart:
    title: str
    unit: str
    series: list[Series]
    markers: list[Marker] = field(default_factory=list)
    domain: tuple[float, float] | None = None  # the time axis; None: the series' own span


def text_width(text: str, px: int, em: float) -> float:
    return len(text) * px * em


def time_step(span: float) -> int:
    """The smallest nice step that puts at most ``MAX_TIME_TICKS`` labels on ``span`` s."""
    for step in TIME_STEPS:
        if span / step <= MAX_TIME_TICKS - 1:
            return step
    return DAY * max(1, math.ceil(span / DAY / (MAX_TIME_TICKS - 1)))


def time_ticks(x0: float, x1: float) -> list[int]:
    """Every multiple of the nice step from ``x0`` to ``x1`` (seconds)."""
    step = time_step(x1 - x0)
    first, last = math.ceil(x0 / step - 1e-9), math.floor(x1 / step + 1e-9)
    return [k * step for k in range(first, last + 1)]


def time_label(seconds: int) -> str:
    """``45s``, ``1m30s``, ``2m``, ``1h``, ``1h30m``."""
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes}m{rest:02d}s" if rest else f"{minutes}m"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if rest >= 60 else f"{hours}h"


def value_ticks(maximum: float) -> list[float]:
    """0 up to the first tick at or above ``maximum``, at most 5 intervals of a nice step."""
    if maximum <= 0 or not math.isfinite(maximum):
        maximum = 1.0
    raw = maximum / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if raw <= m * magnitude * (1 + 1e-9))
    count = math.ceil(maximum / step - 1e-9)
    return [round(k * step, 12) for k in range(count + 1)]


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:g}" if value >= 1 else f"{value:.2g}"


def _paths(
    points: Sequence[tuple[float, float | None]],
    x: Callable[[float], float],
    y: Callable[[float], float],
) -> list[str]:
    """One path per unbroken run of points (a None value breaks the line)."""
    runs: list[list[str]] = [[]]
    for px, py in points:
        if py is None or not math.isfinite(py):
            runs.append([])
            continue
        runs[-1].append(f"{x(px):.1f},{y(py):.1f}")
    return [" ".join(run) for run in runs if len(run) >= 1]


def _legend(chart: Chart) -> tuple[list[str], bool]:
    """The legend, right-aligned on the title's row if it fits beside the title, else on a
    row of its own below it. Returns its SVG and whether it took a row of its own."""
    widths = [LEGEND_SWATCH + text_width(s.name, TICK_PX, TICK_EM) for s in chart.series]
    total = sum(widths) + LEGEND_GAP * max(0, len(widths) - 1)
    title_end = LEFT + text_width(chart.title, TITLE_PX, TITLE_EM)
    beside = title_end + TITLE_GAP + total <= WIDTH - RIGHT
    x = WIDTH - RIGHT - total if beside else float(LEFT)
    baseline = 18 if beside else 18 + LEGEND_ROW
    out = []
    for series, width in zip(chart.series, widths, strict=True):
        dash = ' stroke-dasharray="5 4"' if series.dashed else ""
        out.append(
            f'<g class="legend"><line x1="{x:.1f}" x2="{x + 18:.1f}" y1="{baseline - 4}" '
            f'y2="{baseline - 4}" stroke="{series.color}" stroke-width="3"{dash}/>'
            f'<text x="{x + LEGEND_SWATCH:.1f}" y="{baseline}" class="tick">'
            f"{escape(series.name)}</text></g>"
        )
        x += width + LEGEND_GAP
    return out, not beside


def render(chart: Chart) -> str:
    legend, own_row = _legend(chart)
    extra = LEGEND_ROW if own_row else 0
    top, height = TOP + extra, HEIGHT + extra
    plot_w, plot_h = WIDTH - LEFT - RIGHT, height - top - BOTTOM
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(chart.title)}">',
        f'<text x="{LEFT}" y="18" class="title">{escape(chart.title)}</text>',
    ]
    xs = [px for s in chart.series for px, py in s.points if py is not None]
    if chart.domain is not None:
        x0, x1 = chart.domain
    elif xs:
        x0, x1 = min(xs), max(xs)
    else:
        x0 = x1 = 0.0
    x1 = max(x1, x0 + 1)
    visible = [[(px, py) for px, py in s.points if x0 <= px <= x1] for s in chart.series]
    ys = [py for pts in visible for _, py in pts if py is not None and math.isfinite(py)]
    if not ys:
        out.append(f'<text x="{LEFT}" y="{top + 40}" class="empty">no data</text></svg>')
        return "".join(out)
    levels = value_ticks(max(ys))
    ceiling = levels[-1]

    def x(value: float) -> float:
        return LEFT + (value - x0) / (x1 - x0) * plot_w

    def y(value: float) -> float:
        return top + plot_h - min(value, ceiling) / ceiling * plot_h

    for level in levels:
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(level):.1f}" y2="{y(level):.1f}" '
            'class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y(level) + 4:.1f}" class="tick ytick" '
            f'text-anchor="end">{_fmt(level)}</text>'
        )
    for second in time_ticks(x0, x1):
        out.append(
            f'<line x1="{x(second):.1f}" x2="{x(second):.1f}" y1="{top + plot_h}" '
            f'y2="{top + plot_h + 4}" class="grid"/>'
            f'<text x="{x(second):.1f}" y="{height - 14}" class="tick xtick" '
            f'text-anchor="middle">{time_label(second)}</text>'
        )
    out.append(
        f'<text x="14" y="{top + plot_h / 2:.1f}" class="tick" '
        f'transform="rotate(-90 14 {top + plot_h / 2:.1f})" text-anchor="middle">'
        f"{escape(chart.unit)}</text>"
    )
    for marker in chart.markers:
        if not x0 <= marker.x <= x1:
            continue
        out.append(
            f'<line x1="{x(marker.x):.1f}" x2="{x(marker.x):.1f}" y1="{top}" '
            f'y2="{top + plot_h}" stroke="{marker.color}" stroke-width="2" '
            'stroke-dasharray="6 3" class="marker"/>'
            f'<text x="{x(marker.x) + 4:.1f}" y="{top + 12}" class="tick" '
            f'fill="{marker.color}">{escape(marker.label)}</text>'
        )
    for series, pts in zip(chart.series, visible, strict=True):
        dash = ' stroke-dasharray="5 4"' if series.dashed else ""
        for path in _paths(pts, x, y):
            out.append(
                f'<polyline points="{path}" fill="none" stroke="{series.color}" '
                f'stroke-width="2"{dash} class="series"/>'
            )
    out += legend
    out.append("</svg>")
    return "".join(out)
