"""A verdict, told where the team looks: ``PERF_AGENT_VERDICT_WEBHOOK_URL`` gets each
analysis' verdict as a Slack incoming-webhook message (``text`` and ``blocks``), with the same
facts as JSON under ``perf_agent`` for any other receiver. Sent after the analysis is stored,
with no transaction open, under the outbound address policy, within a few seconds or not at
all: a notification never fails or delays an analysis for long."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from app.analysis.schemas import Finding, SloResult
from app.client import API
from app.core import metrics
from app.core.errors import GuardrailViolation
from app.core.settings import Settings
from app.guardrails.network import check_outbound, pinned_client
from app.models import Analysis, Plan, Run

log = logging.getLogger(__name__)
TIMEOUT_S = 3.0
MARK = {"pass": ":white_check_mark:", "warning": ":warning:", "fail": ":x:"}


def _link(settings: Settings, path: str) -> str:
    return (settings.public_url or "").rstrip("/") + path


def payload(analysis: Analysis, plan: Plan, run: Run, settings: Settings) -> dict[str, Any]:
    report = _link(settings, f"{API}/analyses/{analysis.id}/report.html")
    failed = [SloResult.model_validate(r) for r in analysis.slo_results if r["status"] in ("fail",)]
    findings = [Finding.model_validate(f) for f in analysis.findings]
    top = [f.summary for f in findings if f.severity != "info"][:3]
    regressions = [
        f"{c['endpoint']} {c['sli']} {c['change'] * 100:+.1f}%"
        for c in analysis.comparisons
        if c["verdict"] == "regression" and c.get("change") is not None
    ]
    verdict = analysis.verdict
    headline = f"{MARK.get(verdict, ':grey_question:')} perf-agent: {plan.name} — {verdict.upper()}"
    lines = [f"*{headline}*  (<{report}|report>)"]
    lines += [
        f"• objective `{r.objective}` ({r.endpoint or 'all requests'}): measured "
        f"{r.measured if r.measured is not None else '–'} {r.unit}"
        for r in failed
    ]
    lines += [f"• regression: {text}" for text in regressions[:5]]
    lines += [f"• {text}" for text in top]
    return {
        "text": f"{headline}: {report}",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}],
        "perf_agent": {
            "event": "verdict",
            "verdict": verdict,
            "plan": plan.name,
            "plan_id": str(plan.id),
            "run_id": str(run.id),
            "analysis_id": str(analysis.id),
            "failed_objectives": [
                {"objective": r.objective, "endpoint": r.endpoint, "measured": r.measured}
                for r in failed
            ],
            "regressions": regressions,
            "findings": top,
            "report": report,
        },
    }


async def notify_verdict(
    analysis: Analysis, plan: Plan, run: Run, settings: Settings | None
) -> str | None:
    """POST the verdict to the webhook; the outcome (sent, failed, refused), or None when no
    webhook is set or this verdict is not among ``verdict_webhook_on``."""
    if settings is None or not settings.verdict_webhook_url:
        return None
    if analysis.verdict not in settings.verdict_webhook_on:
        return None
    try:
        hook = await check_outbound(
            settings.verdict_webhook_url, settings, purpose="verdict webhook", host_patterns=False
        )
    except GuardrailViolation as exc:
        log.warning("verdict webhook not called: %s", exc.detail)
        metrics.VERDICT_NOTIFICATIONS.labels(outcome="refused").inc()
        return "refused"
    outcome = "sent"
    try:
        async with pinned_client(hook, timeout=TIMEOUT_S) as client:
            response = await client.post(hook.url, json=payload(analysis, plan, run, settings))
            response.raise_for_status()
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        log.warning("verdict webhook failed: %s", exc)
        outcome = "failed"
    metrics.VERDICT_NOTIFICATIONS.labels(outcome=outcome).inc()
    return outcome
