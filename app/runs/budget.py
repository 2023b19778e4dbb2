"""The cost budget of a running test: VU-seconds and requests, judged every second.

Each second of live metrics (app/runs/live.py) brings the run's requests so far and its
VU-seconds (the sum of each second's VUs). At 80 % of either budget the watch raises an alert
(run event, Prometheus counter, optional webhook); at 100 % it stops the test gracefully
through k6's REST API (``PATCH /v1/status``) — k6 still writes its summary, and the run ends
``partial``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from app.core import metrics
from app.core.errors import GuardrailViolation
from app.core.settings import Settings
from app.guardrails.network import check_outbound, pinned_client
from app.plans.schemas import Budget

log = logging.getLogger(__name__)

ALERT_SHARE = 0.8
STOP_BODY = {"data": {"type": "status", "id": "default", "attributes": {"stopped": True}}}

EventSink = Callable[[str, str, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Limits:
    vu_seconds: float
    requests: int

    @classmethod
    def of(cls, budget: Budget | None, settings: Settings) -> Limits:
        plan = budget or Budget()
        return cls(
            vu_seconds=min(plan.vu_seconds or float("inf"), settings.cost_max_vu_seconds),
            requests=min(plan.requests or 2**62, settings.cost_max_requests),
        )


@dataclass
class Spend:
    vu_seconds: float = 0.0
    requests: int = 0


class BudgetWatch:
    """Judges each second of live metrics against the run's budget."""

    def __init__(
        self,
        *,
        address: str,
        limits: Limits,
        settings: Settings,
        event: EventSink,
        run_id: str,
        on_exhausted: Callable[[], None],
    ) -> None:
        self.base = f"http://{address}/v1"
        self.limits = limits
        self.settings = settings
        self.event = event
        self.run_id = run_id
        self.on_exhausted = on_exhausted
        self.spend = Spend()
        self.alerted: set[str] = set()
        self.exhausted: str | None = None

    def shares(self) -> dict[str, float]:
        return {
            "vu_seconds": self.spend.vu_seconds / self.limits.vu_seconds,
            "requests": self.spend.requests / self.limits.requests,
        }

    async def observe(self, sample: dict[str, Any]) -> None:
        """Account one second (a sample of app/runs/live.py): VU-seconds and requests so far."""
        if self.exhausted is not None:
            return
        self.spend.vu_seconds = float(sample["vu_seconds"])
        self.spend.requests = int(sample["total_requests"])
        due = [
            resource
            for resource, share in self.shares().items()
            if share >= 1 or (share >= ALERT_SHARE and resource not in self.alerted)
        ]
        if not due:
            return
        async with httpx.AsyncClient(timeout=2.0) as client:
            await self._judge(client)

    async def _judge(self, client: httpx.AsyncClient) -> None:
        for resource, share in self.shares().items():
            data = {
                "resource": resource,
                "share": round(share, 3),
                "vu_seconds": round(self.spend.vu_seconds, 1),
                "requests": self.spend.requests,
                "limit_vu_seconds": self.limits.vu_seconds,
                "limit_requests": self.limits.requests,
            }
            # The alert comes first even when one poll jumps from below 80 % past 100 %.
            if share >= ALERT_SHARE and resource not in self.alerted:
                self.alerted.add(resource)
                metrics.BUDGET_ALERTS.labels(resource=resource).inc()
                await self.event(
                    "budget_alert", f"{share:.0%} of the {resource.replace('_', '-')} budget", data
                )
                await self._webhook(client, data)
            if share >= 1 and self.exhausted is None:
                self.exhausted = resource
                metrics.BUDGET_STOPS.labels(resource=resource).inc()
                await self.event(
                    "budget_exhausted",
                    f"{resource.replace('_', '-')} budget spent; stopping k6 gracefully",
                    data,
                )
                self.on_exhausted()
                await self._stop(client)
                return

    async def _stop(self, client: httpx.AsyncClient) -> None:
        try:
            await client.patch(f"{self.base}/status", json=STOP_BODY)
        except httpx.HTTPError:
            log.warning("run %s: k6 REST stop failed; the run's stop signal follows", self.run_id)

    async def _webhook(self, client: httpx.AsyncClient, data: dict[str, Any]) -> None:
        """POST the alert to ``PERF_AGENT_COST_ALERT_WEBHOOK`` — only once its URL passed the
        outbound policy (the operator's URL: not the host patterns, but every address outside
        the denied networks), to the addresses that were checked. ``client`` (k6's REST API
        on loopback) is not used for it."""
        if not self.settings.cost_alert_webhook:
            return
        try:
            hook = await check_outbound(
                self.settings.cost_alert_webhook,
                self.settings,
                purpose="cost-alert webhook",
                host_patterns=False,
            )
        except GuardrailViolation as exc:
            log.warning("run %s: budget webhook not called: %s", self.run_id, exc.detail)
            await self.event(
                "budget_webhook_refused",
                f"the cost-alert webhook was not called: {exc.detail}",
                {"code": exc.code, **exc.extra},
            )
            return
        try:
            async with pinned_client(hook, timeout=2.0) as pinned:
                await pinned.post(
                    hook.url, json={"event": "budget_alert", "run_id": self.run_id, **data}
                )
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            log.warning("run %s: budget webhook failed: %s", self.run_id, exc)
