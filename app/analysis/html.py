"""The self-contained HTML report: the analysis, and charts of the run second by second.

Latency percentiles, throughput with errors, the target's CPU (when the worker could sample
it) and VUs over the test's whole seconds, all on one time axis, the first baseline run's p95
overlaid (dashed) and the knee marked. Markdown code spans in the prose become ``<code>``.

The charts are interactive (uPlot, vendored in ``app.core.vendor`` and inlined: hover legend,
drag to zoom, double-click to reset), with each endpoint's seconds and its latency
distribution against the baseline's behind a select. Every figure reaches the page as one
JSON island (``<script type="application/json">``, every ``<`` escaped: no data can close
the element or be read as markup) that ``report.js.j2`` reads and draws; nothing from data is
ever written into a script. A Content-Security-Policy lets only the page's two scripts (by
hash) run and nothing load. The static inline SVG charts (``charts.py``) stay in the page:
shown when scripting is off and when printing. One file, no network: it opens from disk.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from app.analysis import charts
from app.analysis.repository import EndpointTimeline, Second
from app.analysis.saturation import Saturation
from app.analysis.schemas import Comparison, SloResult
from app.core import vendor
from app.models import Analysis, Plan, Run, RunResult
from app.runs.histogram import GAMMA, MIN_MS, Histogram

_ENV = Environment(
    loader=PackageLoader("app.analysis", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_CODE_SPAN = re.compile(r"`([^`\n]+)`")


def inline_code(text: str | None) -> Markup:
    """Prose whose Markdown code spans (`` `name` ``, as findings write them) become ``<code>``;
    everything, inside a span or not, is escaped: no HTML from data reaches the page."""
    if not text:
        return Markup("")
    parts: list[Markup] = []
    at = 0
    for span in _CODE_SPAN.finditer(text):
        parts.append(escape(text[at : span.start()]))
        parts.append(Markup("<code>{}</code>").format(span.group(1)))
        at = span.end()
    parts.append(escape(text[at:]))
    return Markup("").join(parts)


_ENV.filters["code"] = inline_code


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} ms"


def _value(sli: str, value: float | None) -> str:
    if value is None:
        return "—"
    if sli == "rps":
        return f"{value:,.1f}/s"
    return f"{value * 100:.2f}%" if sli in ("error_rate",) else _ms(value)


def complete_seconds(series: Sequence[Second]) -> list[Second]:
    """The seconds the run lasted whole: every second but its last.

    The live path (``runs.live``) bins k6's points by wall-clock second and closes a second
    once points half a second past its end arrive, and, when k6 exits, closes whatever is
    still open. The second in which k6 stopped holds only the fraction of a second the run
    had left, and in it only the responses still in flight at the end, the slow ones: its
    throughput drops and its percentiles jump (a p50 of about a second where every other
    second had tens of ms). A second followed by another one ended while the run went on, so
    it is whole; the last one is not known to be, and is left out of the charts (not of the
    tables: those count every response).
    """
    return list(series[:-1])


def time_domain(*runs: Sequence[Second]) -> tuple[float, float] | None:
    """One time axis for every chart: from the first to the last second any run has."""
    seconds = [s.elapsed for run in runs for s in run]
    return (min(seconds), max(seconds)) if seconds else None


def knee_marker(series: Sequence[Second], knee: Saturation | None) -> charts.Marker | None:
    """The knee at the first second whose load reached it, if the analysis found one."""
    if knee is None or knee.knee_load is None:
        return None
    level = knee.knee_load
    first = next(
        (
            p.elapsed
            for p in series
            if (p.vus if knee.load_metric == "vus" else p.requests) >= level
        ),
        None,
    )
    if first is None:
        return None
    unit = "VUs" if knee.load_metric == "vus" else "req/s"
    return charts.Marker(first, f"knee: {knee.knee_load:g} {unit}")


def build_charts(
    series: Sequence[Second], baseline: Sequence[Second] | None, knee: Saturation | None
) -> list[str]:
    """The report's charts, on one time axis, of the run's (and the baseline's) whole seconds.

    Every chart spans the same seconds (``time_domain``), so they line up and a series starts
    where its data starts: a second with no response has no latency, and its latency line
    begins at the first second with one, while throughput (0 then) is drawn from the start.
    """
    series = complete_seconds(series)
    baseline = complete_seconds(baseline) if baseline else None
    domain = time_domain(series, baseline or [])
    cpu = [
        (s.elapsed, float(s.system["cpu_percent"]))
        for s in series
        if s.system and s.system.get("cpu_percent") is not None
    ]
    marker = knee_marker(series, knee)
    markers = [marker] if marker is not None else []

    def chart(title: str, unit: str, lines: list[charts.Series]) -> str:
        return charts.render(charts.Chart(title, unit, lines, markers, domain))

    latency = [
        charts.Series("p50", "#2563eb", [(p.elapsed, p.p50) for p in series]),
        charts.Series("p95", "#d97706", [(p.elapsed, p.p95) for p in series]),
        charts.Series("p99", "#7c3aed", [(p.elapsed, p.p99) for p in series]),
    ]
    if baseline:
        latency.append(
            charts.Series("baseline p95", "#6b7280", [(p.elapsed, p.p95) for p in baseline], True)
        )
    load = [charts.Series("RPS", "#059669", [(p.elapsed, float(p.requests)) for p in series])]
    if baseline:
        load.append(
            charts.Series(
                "baseline RPS", "#6b7280", [(p.elapsed, float(p.requests)) for p in baseline], True
            )
        )
    return [
        chart("Latency (all requests)", "ms", latency),
        chart("Throughput", "requests/s", load),
        chart(
            "Errors",
            "failed requests/s",
            [charts.Series("errors", "#dc2626", [(p.elapsed, float(p.failures)) for p in series])],
        ),
        *(
            [
                chart(
                    "Target CPU (its processes on the worker's machine)",
                    "% of one core",
                    [charts.Series("CPU", "#be185d", cpu)],
                )
            ]
            if cpu
            else []
        ),
        chart(
            "Virtual users",
            "VUs",
            [charts.Series("VUs", "#0891b2", [(p.elapsed, float(p.vus)) for p in series])],
        ),
    ]


# -- the interactive charts' data ------------------------------------------------------------

DISTRIBUTION_BINS = 60  # at most, over the span the run's and the baseline's responses cover


def _n(value: float | None) -> float | int | None:
    """A figure for the page: four significant digits (the hover legend shows them; the
    tables keep the exact ones), integers bare, no NaN (JSON has none: ``null``)."""
    if value is None or not math.isfinite(value):
        return None
    short = float(f"{value:.4g}")
    return int(short) if short.is_integer() and abs(short) < 2**53 else short


def _on_axis(
    axis: Mapping[int, int], points: Sequence[tuple[int, float | None]]
) -> list[float | int | None]:
    """Values at their seconds' places on the shared axis (``None`` where a second has none)."""
    out: list[float | int | None] = [None] * len(axis)
    for elapsed, value in points:
        place = axis.get(elapsed)
        if place is not None:
            out[place] = _n(value)
    return out


def _whole(timeline: EndpointTimeline, last: int | None) -> list[int]:
    """The indexes of a timeline's seconds other than the run's last (cut short: see
    ``complete_seconds``)."""
    return [i for i, elapsed in enumerate(timeline[0]) if elapsed != last]


def distribution(run: Histogram | None, base: Histogram | None) -> dict[str, Any] | None:
    """The share of responses (%) per latency bin, the run's and the baseline's on the same
    logarithmic bins: the histograms' 1 % buckets merged into at most ``DISTRIBUTION_BINS``
    over the span either one has responses in. ``x`` is each bin's geometric middle (ms)."""
    present = [h for h in (run, base) if h is not None and h.total > 0]
    if not present:
        return None
    nonzero = np.flatnonzero(sum(h.counts for h in present))
    lo, hi = int(nonzero[0]), int(nonzero[-1])
    width = max(1, math.ceil((hi - lo + 1) / DISTRIBUTION_BINS))
    bins = math.ceil((hi - lo + 1) / width)
    # Bucket i > 0 holds (MIN_MS·γ^(i−1), MIN_MS·γ^i]: a bin of buckets lo+k·w … lo+k·w+w−1.
    middle = [MIN_MS * GAMMA ** (lo + k * width + width / 2 - 1) for k in range(bins)]

    def shares(h: Histogram | None) -> list[float | int | None] | None:
        if h is None or h.total == 0:
            return None
        counts = np.zeros(bins * width, dtype=np.int64)
        counts[: hi - lo + 1] = h.counts[lo : hi + 1]
        per_bin = counts.reshape(bins, width).sum(axis=1)
        return [_n(100.0 * c / h.total) for c in per_bin.tolist()]

    return {"x": [_n(m) for m in middle], "run": shares(run), "base": shares(base)}


def chart_data(
    series: Sequence[Second],
    baseline: Sequence[Second] | None,
    knee: Saturation | None,
    timelines: Mapping[str, EndpointTimeline] | None = None,
    baseline_timelines: Mapping[str, EndpointTimeline] | None = None,
    histograms: Mapping[str, tuple[Histogram | None, Histogram | None]] | None = None,
) -> dict[str, Any]:
    """What the interactive charts draw, as plain JSON: one time axis (``x``: the whole
    seconds of the run and the baseline, as the SVG charts have), the run's overall figures
    on it, each endpoint's (``None`` where it had no response that second) and each
    endpoint's latency distribution against the baseline's."""
    last = series[-1].elapsed if series else None
    base_last = baseline[-1].elapsed if baseline else None
    series = complete_seconds(series)
    baseline = complete_seconds(baseline) if baseline else None
    xs = sorted({s.elapsed for s in series} | {s.elapsed for s in baseline or []})
    axis = {elapsed: i for i, elapsed in enumerate(xs)}

    def line(points: Sequence[Second], value: Any) -> list[float | int | None]:
        return _on_axis(axis, [(p.elapsed, value(p)) for p in points])

    overall: dict[str, Any] = {
        "p50": line(series, lambda p: p.p50),
        "p95": line(series, lambda p: p.p95),
        "p99": line(series, lambda p: p.p99),
        "rps": line(series, lambda p: p.requests),
        "errors": line(series, lambda p: p.failures),
        "vus": line(series, lambda p: p.vus),
    }
    if any(s.system and s.system.get("cpu_percent") is not None for s in series):
        overall["cpu"] = line(series, lambda p: (p.system or {}).get("cpu_percent"))
    if baseline:
        overall["base_p95"] = line(baseline, lambda p: p.p95)
        overall["base_rps"] = line(baseline, lambda p: p.requests)
    marker = knee_marker(series, knee)

    endpoints = []
    for name in sorted(n for n in timelines or {} if n != "*"):
        timeline = (timelines or {})[name]
        keep = _whole(timeline, last)
        elapsed, requests, failures, p50, p95, p99 = timeline

        def at(
            column: Sequence[float], keep: list[int] = keep, elapsed: Sequence[int] = elapsed
        ) -> list[float | int | None]:
            return _on_axis(axis, [(elapsed[i], column[i]) for i in keep])

        entry: dict[str, Any] = {
            "name": name,
            "p50": at(p50),
            "p95": at(p95),
            "p99": at(p99),
            "rps": at(requests),
        }
        if any(failures[i] for i in keep):
            entry["errors"] = at(failures)
        theirs = (baseline_timelines or {}).get(name)
        if baseline and theirs is not None:
            ours = _whole(theirs, base_last)
            entry["base_p95"] = _on_axis(axis, [(theirs[0][i], theirs[4][i]) for i in ours])
        endpoints.append(entry)
    known = {e["name"] for e in endpoints}
    distributions = {}
    for name, (ours_h, theirs_h) in (histograms or {}).items():
        if name != "*" and name not in known:
            continue
        found = distribution(ours_h, theirs_h)
        if found is not None:
            distributions[name] = found
    return {
        "x": xs,
        "overall": overall,
        "baseline": bool(baseline),
        "knee": None if marker is None else {"x": marker.x, "label": marker.label},
        "endpoints": endpoints,
        "distributions": distributions,
    }


def json_island(data: Any) -> Markup:
    """``data`` as the text of a ``<script type="application/json">``: every ``<`` escaped
    (``\\u003c``, which JSON.parse reads back as ``<``), so no value can end the element
    (``</script>``) or open a comment; ASCII only; no NaN."""
    text = json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c"))


def _script(text: str) -> str:
    if re.search(r"</script|<!--", text, re.IGNORECASE):
        raise ValueError("an inlined script must not contain </script or <!--")
    return text


@cache
def assets() -> dict[str, str]:
    """uPlot's code and styles, its licence, the page's drawing script, and the CSP hashes
    of the two scripts (the only ones the page lets run)."""
    uplot = _script(vendor.read("uplot.iife.min.js"))
    draw = _script(
        resources.files("app.analysis")
        .joinpath("templates/report.js.j2")
        .read_text(encoding="utf-8")
    )

    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    licence = vendor.read("uplot.LICENSE").replace("--", "- -")  # inside an HTML comment
    return {
        "uplot_js": uplot,
        "uplot_css": vendor.read("uplot.min.css").replace("</", "<\\/"),
        "uplot_licence": licence,
        "draw_js": draw,
        "script_hashes": f"{digest(uplot)} {digest(draw)}",
    }


def render_html(
    *,
    analysis: Analysis,
    plan: Plan,
    run: Run,
    results: Sequence[RunResult],
    series: Sequence[Second],
    baseline_series: Sequence[Second] | None,
    timelines: Mapping[str, EndpointTimeline] | None = None,
    baseline_timelines: Mapping[str, EndpointTimeline] | None = None,
    histograms: Mapping[str, tuple[Histogram | None, Histogram | None]] | None = None,
) -> str:
    """The page. ``timelines`` (per endpoint, ``AnalysisRepository.endpoint_timelines``) and
    ``histograms`` (per endpoint: the run's and the baseline's merged histograms) add the
    per-endpoint charts; without them the page has the overall ones only."""
    knee = Saturation.model_validate(analysis.saturation) if analysis.saturation else None
    slo_results: list[dict[str, Any]] = []
    for raw in analysis.slo_results:
        slo = SloResult.model_validate(raw)
        measured = _value(slo.sli, slo.measured) if slo.sli != "rps" else f"{slo.measured}/s"
        slo_results.append({**slo.model_dump(), "measured_text": measured})
    comparisons = []
    for raw in analysis.comparisons:
        c = Comparison.model_validate(raw)
        if c.verdict == "insufficient_data":
            continue
        comparisons.append(
            {
                **c.model_dump(),
                "baseline_text": _value(c.sli, c.baseline),
                "current_text": _value(c.sli, c.current),
                "change_text": "—" if c.change is None else f"{c.change * 100:+.1f}%",
                "effect_text": "—"
                if c.effect_size is None or c.sli == "error_rate"
                else f"{c.effect_size:+.2f}",
                "p_text": "—" if c.p_value is None else f"{c.p_value:.2g}",
            }
        )
    return _ENV.get_template("report.html.j2").render(
        analysis=analysis,
        plan=plan,
        run=run,
        test_date=(run.started_at or run.created_at).strftime("%Y-%m-%d %H:%M UTC"),
        baseline_run_ids=analysis.baseline_run_ids,
        charts=build_charts(series, baseline_series, knee),
        data=json_island(
            chart_data(series, baseline_series, knee, timelines, baseline_timelines, histograms)
        ),
        **assets(),
        slo_results=slo_results,
        results=results,
        comparisons=comparisons,
        ms=_ms,
    )
