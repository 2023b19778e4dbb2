"""The Markdown report, in the format of the Performance Benchmarker's §6.

Text the report does not write itself — the plan's name, description, environment, URL and
paths, data set and endpoint names (a hand-written script names its own), findings, warnings
and the model's narrative — enters the Markdown only through :func:`_code` or :func:`_text`,
so no renderer finds HTML, an autolink, a link or an image in it: ``<img src=x onerror=…>`` in
a description reads as that text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from app.analysis.ci import shown, shown_change, shown_interval
from app.analysis.narrative import Narrative
from app.analysis.saturation import Saturation
from app.analysis.schemas import (
    Comparison,
    Finding,
    LoadComparison,
    LoadGenerator,
    RunComparison,
    SloResult,
)
from app.core import slis
from app.models import Plan, Run, RunResult
from app.plans.schemas import PlanSpec, format_duration


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} ms"


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.2f}%"


def _measured(res: SloResult) -> str:
    if res.measured is None:
        return "no data"
    if res.sli == "error_rate":
        return f"{res.measured * 100:.2f}%"
    if res.sli == "rps":
        return f"{res.measured:.1f}/s"
    return _ms(res.measured)


_LINE_BREAKS = re.compile(r"\r\n?|\n")


def _code(text: str, *, cell: bool = False) -> str:
    """``text`` as one code span: literal in every renderer (no HTML, no emphasis).

    A backtick would end the span early and a line break could start a new block (an HTML
    block needs no closing span), so they become ``'`` and a space; in a table cell (``cell``)
    a ``|`` would end the cell, and the span with it, so it is escaped (GFM reads ``\\|``
    inside a cell's code span as ``|``)."""
    text = _LINE_BREAKS.sub(" ", text).replace("`", "'")
    return "`" + (text.replace("|", "\\|") if cell else text) + "`"


# Outside code spans: what could start HTML (or an autolink) or an entity, links and images,
# and the characters that would change which spans a renderer sees. ``<``/``>`` followed by
# whitespace start nothing anywhere, so 'p95 < 300ms' stays as it is.
_SPAN = re.compile(r"`([^`\r\n]+)`")
_UNSAFE = re.compile(r"&|<(?!\s)|>(?![\s=])|[\\`\[\]|]")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_FENCE = re.compile(r"^~", re.MULTILINE)


def _escape(text: str) -> str:
    return _UNSAFE.sub(lambda m: _ENTITIES.get(m[0][0]) or "\\" + m[0], text)


def _text(text: str, *, lines: bool = False) -> str:
    """Text from outside the report as Markdown that shows it as it is.

    ``&``, ``<`` and ``>`` become entities (``<`` and ``>`` unless a space follows), and
    ``\\ ` [ ] |`` are backslash-escaped, except in the text's own single-line code spans
    (findings and the narrative quote names in them), which are rebuilt with :func:`_code`.
    Line breaks become spaces unless ``lines`` (a description keeps its paragraphs and lists,
    but no line is indented into a code block or opens a ``~~~`` fence over the report)."""
    if lines:
        text = "\n".join(line.strip() for line in _LINE_BREAKS.split(text))
    else:
        text = _LINE_BREAKS.sub(" ", text)
    out, end = [], 0
    for span in _SPAN.finditer(text):
        out += [_escape(text[end : span.start()]), _code(span[1])]
        end = span.end()
    out.append(_escape(text[end:]))
    return _FENCE.sub(r"\\~", "".join(out))


# What each profile is, as the subject of the report's first sentence ("A ramp (the `ramp`
# profile, k6 `ramping-vus`: …)"): a profile's name alone is no noun ("A load load profile").
PROFILE_NOUNS = {
    "smoke": "A smoke test",
    "load": "A constant load",
    "ramp": "A ramp",
    "spike": "A spike",
    "stress": "A stress test in steps",
    "soak": "A soak test",
    "constant-arrival": "A constant arrival rate",
    "ramping-arrival": "A ramping arrival rate",
    "breakpoint": "A breakpoint test",
}


def _vus(count: int) -> str:
    return f"{count} VU" if count == 1 else f"{count} VUs"


def load_text(spec: PlanSpec) -> str:
    load = spec.load_profile
    if spec.is_raw:
        return (
            f"A hand-written k6 script (its own options: at most {_vus(load.vus_at_peak)}, "
            f"{format_duration(load.total_duration_s)} with graceful stops)"
        )
    executor = load.executor()
    per = executor.get("timeUnit", "1s")
    rate = "iterations/s" if per == "1s" else f"iterations per {per}"
    if "stages" in executor:
        arrival = "arrival" in executor["executor"]
        shape = "stages " + ", ".join(
            (f"{s['target']} {rate}" if arrival else _vus(s["target"])) + f" over {s['duration']}"
            for s in executor["stages"]
        )
    elif "rate" in executor:
        shape = f"{executor['rate']} {rate} for {executor['duration']}"
    else:
        users = "virtual user" if executor["vus"] == 1 else "virtual users"
        shape = f"{executor['vus']} {users} for {executor['duration']}"
    noun = PROFILE_NOUNS.get(load.profile, "A load")
    return (
        f"{noun} (the {_code(load.profile)} profile, k6 `{executor['executor']}`: {shape}; "
        f"at most {_vus(load.vus_at_peak)}, {format_duration(load.total_duration_s)})"
    )


def scenario_text(spec: PlanSpec) -> str:
    lines = [
        f"{load_text(spec)} against {_code(spec.target.base_url)} "
        f"({_text(spec.target.environment)})."
    ]
    total_weight = sum(s.weight for s in spec.scenarios)
    for sc in spec.scenarios:
        calls = " → ".join(f"{st.method} {_code(st.path)}" for st in sc.steps)
        data = f", one {_code(sc.data)} row per iteration" if sc.data else ""
        share = (
            f"{100 * sc.weight / total_weight:.0f}% of iterations"
            if len(spec.scenarios) > 1
            else "every iteration"
        )
        lines.append(f"*   Workflow {_code(sc.name)} ({share}{data}): {calls}")
    text = "\n".join(lines)
    if spec.description:
        text = f"{_text(spec.description.strip(), lines=True)}\n\n{text}"
    return text


def _per_s(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f}/s"


def _load_lines(load: LoadComparison | None, generator: LoadGenerator | None) -> list[str]:
    lines: list[str] = []
    if load is not None and load.baseline is not None:
        cur, base = load.current, load.baseline
        change = load.change.get("rps")
        lines += [
            "",
            f"**Load** ({load.model} model): {_per_s(cur.rps)} against the baseline's "
            f"{_per_s(base.rps)}"
            + (f" ({change * 100:+.0f}%)" if change is not None else "")
            + f"; peak VUs {cur.vus_max if cur.vus_max is not None else '—'} vs "
            f"{base.vus_max if base.vus_max is not None else '—'}; dropped iterations "
            f"{cur.dropped_iterations} vs {base.dropped_iterations}"
            + (
                " — **the load changed**: " + _text("; ".join(load.reasons))
                if load.changed
                else " — the same load."
            ),
        ]
    if generator is not None and generator.status != "unknown":
        k6 = generator.k6_cpu_percent or {}
        other = generator.other_cpu_percent or {}
        lines += [
            "",
            f"**Load generator:** {generator.status} — k6 {k6.get('median', 0) / 100:.2f} "
            f"cores (median; p95 {k6.get('p95', 0) / 100:.2f}) of {generator.cores}, other "
            f"processes {other.get('mean', 0) / 100:.2f} cores on average"
            + (": " + _text("; ".join(generator.reasons)) if generator.reasons else "")
            + ".",
        ]
    return lines


def _profile_lines(profile: Mapping[str, Any] | None) -> list[str]:
    if not profile:
        return []
    window = profile.get("window") or {}
    lines = [
        "",
        f"**Profile** of the target, {window.get('seconds', 0):g} s from "
        f"{window.get('start_s', 0):g} s into the test ({profile.get('requests') or 0} "
        "requests):",
    ]
    for source in profile.get("sources") or []:
        if source.get("status") != "ok":
            lines.append(
                f"*   {_text(str(source.get('source')))}: {_text(str(source.get('status')))} — "
                f"{_text(str(source.get('reason')))}"
            )
            continue
        if source.get("functions"):
            lines += [
                "",
                f"| Function ({_text(str(source['source']))}, {source.get('samples')} samples) "
                "| Self | Total | Where |",
                "|---|---:|---:|---|",
            ]
            for f in source["functions"][:5]:
                lines.append(
                    f"| {_code(str(f['name']).rsplit('.', 1)[-1], cell=True)} | "
                    f"{f['self_share']:.0%} | {f['total_share']:.0%} | "
                    f"{_code(str(f['location']), cell=True)} |"
                )
        if source.get("queries"):
            lines += ["", "| Query | Calls | Mean | Share |", "|---|---:|---:|---:|"]
            for q in source["queries"][:5]:
                lines.append(
                    f"| {_code(' '.join(str(q['query']).split())[:120], cell=True)} | "
                    f"{q['calls']} | {q['mean_ms']:.2f} ms | {q['share']:.0%} |"
                )
    for spot in (profile.get("hot_spots") or [])[:3]:
        lines.append(
            f"*   Hot line {_code(str(spot['location']).rsplit('/', 1)[-1])} in "
            f"{_code(str(spot['function']))}: {_code(str(spot['code']))}"
            + (f" runs {_code(str(spot['sql']))}" if spot.get("sql") else "")
            + (" inside a loop" if spot.get("in_loop") else "")
        )
    return lines


def render_markdown(
    *,
    plan: Plan,
    spec: PlanSpec,
    run: Run,
    results: Mapping[str, RunResult],
    slo_results: list[SloResult],
    findings: list[Finding],
    warnings: list[str],
    verdict: str,
    baseline_run_ids: list[object],
    comparisons: list[Comparison],
    knee: Saturation | None = None,
    narrative: Narrative | None = None,
    narrative_meta: dict[str, Any] | None = None,
    load: LoadComparison | None = None,
    generator: LoadGenerator | None = None,
    profile: Mapping[str, Any] | None = None,
) -> str:
    total = results.get(RunResult.ALL)
    failed = [r for r in slo_results if r.status != "pass"]
    test_date = (run.started_at or run.created_at).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"### Performance Test Report: {_code(plan.name)}",
        "",
        f"**Test Date:** {test_date}",
        "",
        f"**Run:** {_code(str(run.id))} · plan version {run.plan_version} · "
        f"{_text(run.k6_version or 'k6')} · script sha256 {_code(run.script_sha256[:12])}"
        + (
            " · compared with " + ", ".join(f"run {_code(str(b))}" for b in baseline_run_ids)
            if baseline_run_ids
            else ""
        ),
        "",
    ]
    if warnings:
        lines += [f"> **Warning:** {_text(w)}" for w in warnings] + [""]
    lines += ["**Scenario:**", scenario_text(spec), "", "**Performance SLOs:**"]
    for res in slo_results:
        scope = _code(res.endpoint) if res.endpoint else "all requests"
        lines.append(f"*   {res.objective} — {scope}")
    lines += ["", "**Results:**"]
    if verdict == "inconclusive":
        lines.append(
            f"*   **INCONCLUSIVE:** the load generator was not healthy (see below); "
            f"{len(slo_results) - len(failed)} of {len(slo_results)} objectives passed as "
            "measured, but the measurement itself is in doubt: run it again."
        )
    elif verdict == "pass":
        lines.append(f"*   **SLO MET:** all {len(slo_results)} objectives passed under this load.")
    else:
        names = ", ".join(f"{_code(r.endpoint or 'all requests')} {r.objective}" for r in failed)
        lines.append(
            f"*   **SLO NOT MET:** {len(failed)} of {len(slo_results)} objectives failed: {names}."
        )
    if total is not None:
        lines += [
            f"*   **p99 Latency:** {_ms(total.p99_ms)}",
            f"*   **p95 Latency:** {_ms(total.p95_ms)}",
            f"*   **Average Latency:** {_ms(total.avg_ms)}",
            f"*   **Error Rate:** {total.error_rate * 100:.2f}% "
            f"({total.failures} of {total.requests} requests)",
            f"*   **Requests per Second:** {total.rps:.1f}",
        ]
    lines += [
        "",
        "| Objective | Scope | Measured | Result | k6 threshold |",
        "|---|---|---|---|---|",
    ]
    for res in slo_results:
        k6 = {True: "ok", False: "failed", None: "—"}[res.k6_threshold_ok]
        result = {
            "pass": "✅ pass",
            "warning": "⚠️ warning",
            "fail": "❌ fail",
            "no_data": "❌ no data",
        }[res.status]
        scope = _code(res.endpoint, cell=True) if res.endpoint else "all"
        lines.append(f"| {res.objective} | {scope} | {_measured(res)} | {result} | {k6} |")
    lines += [
        "",
        "| Endpoint | Requests | RPS | Errors | p50 | p90 | p95 | p99 | max |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in results.items():
        label = "**all**" if name == RunResult.ALL else _code(name, cell=True)
        lines.append(
            f"| {label} | {row.requests} | {row.rps:.1f} | {row.error_rate * 100:.2f}% | "
            f"{_ms(row.p50_ms)} | {_ms(row.p90_ms)} | {_ms(row.p95_ms)} | {_ms(row.p99_ms)} | "
            f"{_ms(row.max_ms)} |"
        )
    lines += [
        "",
        "Latencies are k6's `http_req_duration` over responses with the expected status.",
    ]
    lines += _load_lines(load, generator)
    lines += _profile_lines(profile)
    moved = [c for c in comparisons if c.verdict in ("regression", "improvement")]
    if comparisons:
        lines += [
            "",
            f"**Against the baseline** ({len(baseline_run_ids)} run"
            f"{'s' if len(baseline_run_ids) != 1 else ''}): "
            + (
                f"{len(moved)} of {len(comparisons)} comparisons moved."
                if moved
                else f"none of {len(comparisons)} comparisons moved beyond noise."
            ),
            "",
            "| Scope | SLI | Baseline | Run | Change | 99 % interval | Needed | Effect | p "
            "| Verdict |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for c in comparisons:
            if c.verdict == "insufficient_data":
                continue
            scope = "**all**" if c.endpoint == RunResult.ALL else _code(c.endpoint, cell=True)
            value = {"error_rate": _rate, "rps": _per_s}.get(c.sli, _ms)
            change = "—" if c.change is None else f"{c.change * 100:+.1f}%"
            effect = (
                "—" if c.effect_size is None or c.sli == "error_rate" else (f"{c.effect_size:+.2f}")
            )
            p_value = "—" if c.p_value is None else f"{c.p_value:.2g}"
            interval = (
                "—"
                if c.interval is None
                else f"{c.interval[0] * 100:+.1f}% … {c.interval[1] * 100:+.1f}%"
            )
            needed = "—" if c.threshold is None else f"±{c.threshold * 100:.0f}%"
            verdict = c.verdict.replace("_", " ") + (" (watch)" if c.watch else "")
            lines.append(
                f"| {scope} | {c.sli} | {value(c.baseline)} | {value(c.current)} | {change} | "
                f"{interval} | {needed} | {effect} | {p_value} | {verdict} |"
            )
        lines += [
            "",
            "Against baseline runs — latency: p from Mood's quantile test on the responses "
            "(how many of each run's were slower than the pooled percentile; Fisher's exact "
            "test), effect = Cliff's δ of the per-second values, and a 99 % block-bootstrap "
            "interval of the change; a regression needs p under 0.01 divided by the number of "
            "latency tests in the analysis, the per-second values' Mann-Whitney p under 0.01, "
            "|δ| ≥ 0.33, an interval that excludes zero and a "
            "practical change of the whole-run value at least the one in 'Needed' (p50/p95 "
            "10 %, p99 20 %, or the baselines' own run-to-run spread when there are several); "
            "'watch': a change that is there but under that or within the noise. Error rate: "
            "Fisher's exact test. Against history — effect = robust z (median, 1.4826 × MAD) "
            "of the past values, |z| ≥ 3 plus a practical change (p50/p95 25 %, p99 40 %).",
        ]
        watched = [c for c in comparisons if c.watch]
        if watched:
            lines += [
                "",
                "**Watch** (near the threshold, not judged): "
                + "; ".join(
                    f"{_code(c.endpoint if c.endpoint != RunResult.ALL else 'all')} {c.sli} "
                    f"{(c.change or 0) * 100:+.1f}% (needed ±{(c.threshold or 0) * 100:.0f}%)"
                    for c in watched
                ),
            ]
    if knee is not None:
        unit = "VUs" if knee.load_metric == "vus" else "req/s offered"
        lines += [
            "",
            "**Load levels** (the load varied; p95 is the median of each level's seconds):",
            "",
            f"| Load ({unit}) | Seconds | RPS | p95 | Errors |",
            "|---:|---:|---:|---:|---:|",
        ]
        for level in knee.levels:
            mark = " ← knee" if knee.knee_load == level.load else ""
            lines.append(
                f"| {level.load:g}{mark} | {level.seconds} | {level.rps:.1f} | "
                f"{_ms(level.p95_ms)} | {level.error_rate * 100:.2f}% |"
            )
        if knee.max_sustainable_rps is not None:
            lines += ["", f"Maximum sustainable throughput: {knee.max_sustainable_rps:.1f} req/s."]
    if narrative is not None and narrative_meta:
        lines += [
            "",
            f"**Root cause** (written by {_text(str(narrative_meta.get('provider')))} "
            f"{_text(str(narrative_meta.get('model')))}; every number in it is one of the "
            "data's):",
            "",
            _text(narrative.summary),
        ]
        for cause in narrative.root_causes:
            scope = f" ({_code(cause.endpoint)})" if cause.endpoint else ""
            lines.append(
                f"*   **{_text(cause.title)}**{scope}, {_text(cause.confidence)} confidence: "
                f"{_text(cause.explanation)}"
            )
        lines += [f"*   Next: {_text(step)}" for step in narrative.next_steps]
    elif narrative_meta and narrative_meta.get("status") not in (None, "ok"):
        lines += [
            "",
            f"*No narrative: {_text(str(narrative_meta.get('status', '')).replace('_', ' '))}"
            + (f" — {_text(str(narrative_meta['reason']))}" if narrative_meta.get("reason") else "")
            + ". The observations below are computed from the raw metrics alone.*",
        ]
    lines += ["", "**Analysis & Observations:**"]
    if findings:
        lines += [f"*   {_text(f.summary)}." for f in findings]
    else:
        lines.append("*   No endpoint stood out: latency, errors and tails are unremarkable.")
    lines += ["", "**Recommendations:**"]
    recommendations = [f.recommendation for f in findings if f.recommendation]
    if not recommendations:
        peak = spec.load_profile.vus_at_peak
        recommendations.append(
            f"Run a ramp from {peak} to {peak * 2} virtual users to find the load at which "
            "p95 or the error rate breaks away."
        )
    for text in dict.fromkeys(recommendations):
        lines.append(f"*   **[RECOMMENDATION]** {_text(text)}")
    return "\n".join(lines) + "\n"


def comparison_markdown(cmp: RunComparison) -> str:
    """Two runs side by side: per endpoint and SLI, both values, the change, its interval,
    p and verdict; the load of each."""
    lines = [
        f"# Run {cmp.b} against run {cmp.a}",
        "",
        f"{cmp.regressions} regression(s), {cmp.improvements} improvement(s).",
        "",
    ]
    if cmp.doubt:
        lines += [f"> Inconclusive: {cmp.doubt}.", ""]
    if cmp.load is not None and cmp.load.reasons:
        lines += ["Load: " + "; ".join(cmp.load.reasons), ""]
    lines += [
        "| Scope | SLI | a | b | Change | 99 % interval | p | Verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in cmp.comparisons:
        unit = slis.BY_NAME[c.sli].unit
        p = "–" if c.p_value is None else f"{c.p_value:.3g}"
        lines.append(
            f"| {c.endpoint} | {c.sli} | {shown(c.baseline, unit)} | {shown(c.current, unit)} "
            f"| {shown_change(c.change)} | {shown_interval(c.interval)} | {p} "
            f"| {c.verdict.replace('_', ' ')} |"
        )
    for warning in cmp.warnings:
        lines += ["", f"- {warning}"]
    return "\n".join(lines) + "\n"
