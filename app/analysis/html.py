"""The self-contained HTML report: the analysis, and charts of the run second by second.

Latency percentiles, throughput with errors, the target's CPU (when the worker could sample
it) and VUs over the test's whole seconds, all on one time axis, the first baseline run's p95
overlaid (dashed) and the knee marked. Markdown code spans in the prose become ``<code>``.
Charts are inline SVG (``charts.py``), styles inline: the file opens anywhere, offline, and
prints.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from app.analysis import charts
from app.analysis.repository import Second
from app.analysis.saturation import Saturation
from app.analysis.schemas import Comparison, SloResult
from app.models import Analysis, Plan, Run, RunResult

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
    markers = []
    if knee is not None and knee.knee_load is not None:
        level = knee.knee_load
        first = next(
            (
                p.elapsed
                for p in series
                if (p.vus if knee.load_metric == "vus" else p.requests) >= level
            ),
            None,
        )
        if first is not None:
            unit = "VUs" if knee.load_metric == "vus" else "req/s"
            markers.append(charts.Marker(first, f"knee: {knee.knee_load:g} {unit}"))

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


def render_html(
    *,
    analysis: Analysis,
    plan: Plan,
    run: Run,
    results: Sequence[RunResult],
    series: Sequence[Second],
    baseline_series: Sequence[Second] | None,
) -> str:
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
        slo_results=slo_results,
        results=results,
        comparisons=comparisons,
        ms=_ms,
    )
