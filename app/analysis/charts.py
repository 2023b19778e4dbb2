"""Inline SVG line charts for the HTML report: no script, no network, any browser renders them.

A chart is a few series of (second, value) points on a shared time axis, optional vertical
markers (the knee) and dashed series (the baseline). Every text goes through ``escape``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 860, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 36


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


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:g}" if value >= 1 else f"{value:.2g}"


def _paths(points: Sequence[tuple[float, float | None]], x: object, y: object) -> list[str]:
    """One path per unbroken run of points (a None value breaks the line)."""
    runs: list[list[str]] = [[]]
    for px, py in points:
        if py is None or not math.isfinite(py):
            runs.append([])
            continue
        runs[-1].append(f"{x(px):.1f},{y(py):.1f}")  # type: ignore[operator]
    return [" ".join(run) for run in runs if len(run) >= 1]


def render(chart: Chart) -> str:
    xs = [px for s in chart.series for px, py in s.points if py is not None]
    ys = [py for s in chart.series for _, py in s.points if py is not None and math.isfinite(py)]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(chart.title)}">',
        f'<text x="{LEFT}" y="18" class="title">{escape(chart.title)}</text>',
    ]
    if not xs or not ys:
        out.append(f'<text x="{LEFT}" y="{TOP + 40}" class="empty">no data</text></svg>')
        return "".join(out)
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    top = _nice_max(max(ys))

    def x(value: float) -> float:
        return LEFT + (value - x0) / (x1 - x0) * plot_w

    def y(value: float) -> float:
        return TOP + plot_h - min(value, top) / top * plot_h

    for i in range(5):
        level = top * i / 4
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(level):.1f}" y2="{y(level):.1f}" '
            'class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y(level) + 4:.1f}" class="tick" text-anchor="end">'
            f"{_fmt(level)}</text>"
        )
    for i in range(6):
        second = x0 + (x1 - x0) * i / 5
        out.append(
            f'<text x="{x(second):.1f}" y="{HEIGHT - 14}" class="tick" text-anchor="middle">'
            f"{second:.0f}s</text>"
        )
    out.append(
        f'<text x="14" y="{TOP + plot_h / 2:.1f}" class="tick" '
        f'transform="rotate(-90 14 {TOP + plot_h / 2:.1f})" text-anchor="middle">'
        f"{escape(chart.unit)}</text>"
    )
    for marker in chart.markers:
        out.append(
            f'<line x1="{x(marker.x):.1f}" x2="{x(marker.x):.1f}" y1="{TOP}" '
            f'y2="{TOP + plot_h}" stroke="{marker.color}" stroke-width="2" '
            'stroke-dasharray="6 3" class="marker"/>'
            f'<text x="{x(marker.x) + 4:.1f}" y="{TOP + 12}" class="tick" '
            f'fill="{marker.color}">{escape(marker.label)}</text>'
        )
    legend_x = LEFT + 220
    for series in chart.series:
        dash = ' stroke-dasharray="5 4"' if series.dashed else ""
        for path in _paths(series.points, x, y):
            out.append(
                f'<polyline points="{path}" fill="none" stroke="{series.color}" '
                f'stroke-width="2"{dash} class="series"/>'
            )
        out.append(
            f'<line x1="{legend_x}" x2="{legend_x + 18}" y1="14" y2="14" '
            f'stroke="{series.color}" stroke-width="3"{dash}/>'
            f'<text x="{legend_x + 22}" y="18" class="tick">{escape(series.name)}</text>'
        )
        legend_x += 30 + 7 * len(series.name)
    out.append("</svg>")
    return "".join(out)
