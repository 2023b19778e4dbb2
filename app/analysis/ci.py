"""An analysis in the formats CI systems read: JUnit XML (test reports in every CI), a Markdown
summary (``$GITHUB_STEP_SUMMARY``, a pull-request comment) and GitLab's Load Performance
report (``load-performance.json``, k6's ``--summary-export`` shape).

Every renderer reads a stored analysis and its run only, so ``gate``, ``budget`` and the API
write the same bytes for the same analysis.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from typing import Any

from app.analysis.schemas import Comparison, Finding, SloResult
from app.core import slis
from app.models import Analysis, Plan, Run

# Which comparisons make a JUnit test case fail, and which say nothing either way.
FAILING = {"regression"}
UNDECIDED = {"insufficient_data", "inconclusive"}
# The PR-comment marker a CI step finds its own earlier comment by (one sticky comment per
# plan: its family, so every version of the plan updates the same comment).
COMMENT_MARKER = "<!-- perf-agent:{plan_id} -->"
VERDICT_MARK = {"pass": "✅", "warning": "⚠️", "fail": "❌", "inconclusive": "❔"}


def shown(value: float | None, unit: str = "") -> str:
    """A value in its SLI's unit (``slis.SLI.unit``): ms, % (of a fraction) or /s."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if unit == "%":
        return f"{value * 100:.2f}%"
    if unit == "/s":
        return f"{value:,.1f}/s"
    return f"{value:,.2f} ms" if unit == "ms" else f"{value:,.4g}"


def shown_change(change: float | None) -> str:
    return "–" if change is None else f"{change * 100:+.1f}%"


def shown_interval(interval: list[float] | None) -> str:
    return f"{shown_change(interval[0])} … {shown_change(interval[1])}" if interval else "–"


def _scope(endpoint: str | None) -> str:
    return endpoint if endpoint and endpoint != "*" else "all requests"


def slo_results(analysis: Analysis) -> list[SloResult]:
    return [SloResult.model_validate(r) for r in analysis.slo_results]


def comparisons(analysis: Analysis) -> list[Comparison]:
    return [Comparison.model_validate(c) for c in analysis.comparisons]


def slo_message(r: SloResult) -> str:
    parts = [f"measured {shown(r.measured, r.unit)}"]
    if r.target is not None:
        parts.append(f"target {r.op} {shown(r.target, r.unit)}")
    if r.baseline is not None:
        parts.append(f"baseline {shown(r.baseline, r.unit)} ({shown_change(r.change)})")
    if r.note:
        parts.append(r.note)
    return f"{_scope(r.endpoint)}: {r.objective}: " + ", ".join(parts)


def comparison_message(c: Comparison) -> str:
    unit = slis.BY_NAME[c.sli].unit
    text = (
        f"{_scope(c.endpoint)} {c.sli}: {shown(c.current, unit)} against the baseline's "
        f"{shown(c.baseline, unit)} ({shown_change(c.change)})"
    )
    if c.interval:
        text += f", 99 % interval {shown_change(c.interval[0])} to {shown_change(c.interval[1])}"
    if c.p_value is not None:
        text += f", p = {c.p_value:.3g}"
    if c.explained_by_load:
        text += ", explained by the change in load"
    return text + f" ({c.verdict.replace('_', ' ')})"


def junit(analysis: Analysis, run: Run, plan: Plan, *, report_url: str | None = None) -> str:
    """One test case per objective × scope and one per baseline comparison (regressions fail;
    comparisons without a decision are skipped), in the Ant/Jenkins JUnit format."""
    suite_name = f"perf-agent: {plan.name}"
    duration = float(run.test_duration_s or 0.0)
    suites = ET.Element("testsuites", name="perf-agent")
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=suite_name,
        timestamp=(run.started_at or run.created_at).strftime("%Y-%m-%dT%H:%M:%S"),
        hostname="perf-agent",
        time=f"{duration:.3f}",
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("verdict", analysis.verdict),
        ("analysis_id", str(analysis.id)),
        ("run_id", str(run.id)),
        ("plan_id", str(plan.id)),
        ("report", report_url or ""),
    ):
        ET.SubElement(properties, "property", name=name, value=value)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}

    def case(classname: str, name: str) -> ET.Element:
        counts["tests"] += 1
        return ET.SubElement(suite, "testcase", classname=classname, name=name, time="0")

    for r in slo_results(analysis):
        test = case(f"{plan.name}.objectives", f"{_scope(r.endpoint)}: {r.objective}")
        message = slo_message(r)
        if r.status == "fail":
            counts["failures"] += 1
            ET.SubElement(test, "failure", message=message, type="objective").text = message
        elif r.status == "no_data":
            counts["skipped"] += 1
            ET.SubElement(test, "skipped", message=f"no data: {message}")
        elif r.status == "warning":
            ET.SubElement(test, "system-out").text = f"warning: {message}"
    for c in comparisons(analysis):
        test = case(f"{plan.name}.baseline", f"{_scope(c.endpoint)} {c.sli} against the baseline")
        message = comparison_message(c)
        if c.verdict in FAILING:
            counts["failures"] += 1
            ET.SubElement(test, "failure", message=message, type="regression").text = message
        elif c.verdict in UNDECIDED:
            counts["skipped"] += 1
            ET.SubElement(test, "skipped", message=message)
    if analysis.verdict == "inconclusive":
        # Nothing failed, yet nothing may be trusted: an error, so no CI reads it as green.
        test = case(f"{plan.name}.load_generator", "the load generator was healthy")
        counts["errors"] += 1
        reason = next((w for w in analysis.warnings if w.startswith("Inconclusive")), "")
        ET.SubElement(test, "error", message=reason or "inconclusive", type="inconclusive")
    for key, count in counts.items():
        suite.set(key, str(count))
        if key != "skipped":
            suites.set(key, str(count))
    suites.set("time", f"{duration:.3f}")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode")


_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")


def _md(text: str) -> str:
    """Text for a Markdown table cell or list item: no pipes, no newlines, nothing a renderer
    takes for HTML (``p95 < 300ms`` stays as it is; ``<script`` does not)."""
    escaped = text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    return _TAG_START.sub("&lt;", escaped)


def markdown_summary(
    analysis: Analysis, run: Run, plan: Plan, *, report_url: str | None = None
) -> str:
    """For ``$GITHUB_STEP_SUMMARY`` and a pull-request comment: the verdict, the objectives
    that failed, the significant changes against the baseline, the top findings, the report."""
    results = slo_results(analysis)
    changed = [c for c in comparisons(analysis) if c.verdict in ("regression", "improvement")]
    findings = [Finding.model_validate(f) for f in analysis.findings]
    failed = [r for r in results if r.status in ("fail", "warning")]
    mark = VERDICT_MARK.get(analysis.verdict, "")
    score = analysis.score or {}
    lines = [
        COMMENT_MARKER.format(plan_id=plan.family_id),
        f"### {mark} perf-agent: {_md(plan.name)} — **{analysis.verdict.upper()}**",
        "",
        f"Score {score.get('value', 0):.0f}/100 · {sum(r.status == 'pass' for r in results)} "
        f"of {len(results)} objectives met · run `{run.id}`"
        + (f" · [full report]({report_url})" if report_url else ""),
        "",
    ]
    if failed:
        lines += [
            "| Objective | Scope | Measured | Target | Baseline | Status |",
            "|---|---|---|---|---|---|",
        ]
        for r in failed:
            target = f"{r.op} {shown(r.target, r.unit)}" if r.target is not None else "–"
            baseline = "–"
            if r.baseline is not None:
                baseline = f"{shown(r.baseline, r.unit)} ({shown_change(r.change)})"
            lines.append(
                f"| {_md(r.objective)} | {_md(_scope(r.endpoint))} | {shown(r.measured, r.unit)} "
                f"| {target} | {baseline} | {r.status} |"
            )
        lines.append("")
    else:
        lines += ["Every objective was met.", ""]
    if changed:
        lines += [
            "**Significant changes against the baseline**",
            "",
            "| Scope | SLI | Baseline | Run | Change | 99 % interval | p |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in changed:
            unit = slis.BY_NAME[c.sli].unit
            interval = shown_interval(c.interval)
            p = f"{c.p_value:.3g}" if c.p_value is not None else "–"
            arrow = "🔺" if c.verdict == "regression" else "🔻"
            lines.append(
                f"| {_md(_scope(c.endpoint))} | {c.sli} | {shown(c.baseline, unit)} "
                f"| {shown(c.current, unit)} | {arrow} {shown_change(c.change)} | {interval} "
                f"| {p} |"
            )
        lines.append("")
    elif analysis.baseline_run_ids:
        lines += ["No significant change against the baseline.", ""]
    else:
        lines += ["No baseline to compare with yet.", ""]
    top = [f for f in findings if f.severity != "info"][:3]
    if top:
        lines += ["**Findings**", ""]
        lines += [f"- **{f.severity}** {_md(f.summary)}" for f in top]
        lines.append("")
    if analysis.verdict == "inconclusive":
        lines += [
            "> The load generator was unhealthy in this run or its baseline: nothing here is a "
            "regression or an all-clear. Run it again.",
            "",
        ]
    return "\n".join(lines)


def _export_metric(entry: dict[str, Any]) -> dict[str, Any]:
    """A handleSummary metric → its ``--summary-export`` form (values flat, a Rate's value)."""
    values = dict(entry.get("values", {}))
    # A Rate has passes/fails beside its rate (entries converted from an export have no type).
    if "rate" in values and ("passes" in values or "fails" in values):
        values["value"] = values.pop("rate")
        values.setdefault("passes", 0)
        values.setdefault("fails", 0)
    thresholds = entry.get("thresholds") or {}
    if thresholds:
        values["thresholds"] = {k: not v.get("ok", True) for k, v in thresholds.items()}
    return values


def gitlab_load_performance(run: Run) -> dict[str, Any]:
    """GitLab's Load Performance report: k6's ``--summary-export`` JSON, from which the merge
    request widget reads ``checks`` (passes, fails), ``http_req_waiting`` (``p(90)``,
    ``p(95)``: TTFB) and ``http_reqs`` (``rate``: RPS)."""
    summary = run.summary or {}
    metrics = {
        name: _export_metric(entry) for name, entry in (summary.get("metrics") or {}).items()
    }
    # A script without checks has no ``checks`` metric; GitLab then shows no pass rate.
    return {"metrics": metrics, "root_group": summary.get("root_group") or {}}


def gitlab_json(run: Run) -> str:
    return json.dumps(gitlab_load_performance(run), indent=2, sort_keys=True) + "\n"
