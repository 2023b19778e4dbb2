"""A running test watched through k6's REST API: live samples and the cost budget.

Once a second the watcher reads k6's cumulative ``http_reqs``, failure rate and latency
aggregates and its current ``vus`` (the integral of which is VU-seconds), and hands them on
as a sample (stored, streamed to the UI). At 80 % of either budget it raises an alert (run event,
Prometheus counter, optional webhook); at 100 % it stops the test gracefully through
``PATCH /v1/status`` — k6 still writes its summary, and the run ends ``partial``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from app.core import metrics
from app.core.settings import Settings
from app.plans.schemas import Budget

log = logging.getLogger(__name__)

ALERT_SHARE = 0.8
POLL_INTERVAL_S = 1.0
STOP_BODY = {"data": {"type": "status", "id": "default", "attributes": {"stopped": True}}}

EventSink = Callable[[str, str, dict[str, Any]], Awaitable[None]]
SampleSink = Callable[[dict[str, Any]], Awaitable[None]]
# k6's REST API reports cumulative latency aggregates with these statistics only.
REST_TREND_STATS = ("avg", "min", "med", "max", "p(90)", "p(95)")


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


def _sample(payload: dict[str, Any], metric: str, key: str) -> float:
    for item in payload.get("data", []):
        if item.get("id") == metric:
            return float(item["attributes"]["sample"].get(key, 0))
    return 0.0


class BudgetWatch:
    def __init__(
        self,
        *,
        address: str,
        limits: Limits,
        settings: Settings,
        event: EventSink,
        run_id: str,
        on_sample: SampleSink | None = None,
    ) -> None:
        self.base = f"http://{address}/v1"
        self.limits = limits
        self.settings = settings
        self.event = event
        self.run_id = run_id
        self.on_sample = on_sample
        self.started = time.monotonic()
        self.spend = Spend()
        self.alerted: set[str] = set()
        self.exhausted: str | None = None

    def shares(self) -> dict[str, float]:
        return {
            "vu_seconds": self.spend.vu_seconds / self.limits.vu_seconds,
            "requests": self.spend.requests / self.limits.requests,
        }

    async def watch(self, on_exhausted: Callable[[], None]) -> None:
        """Poll until cancelled (k6 exits) or the budget is spent."""
        async with httpx.AsyncClient(timeout=2.0) as client:
            last = time.monotonic()
            while self.exhausted is None:
                await asyncio.sleep(POLL_INTERVAL_S)
                try:
                    payload = (await client.get(f"{self.base}/metrics")).json()
                except (httpx.HTTPError, ValueError):
                    continue  # k6 not listening yet, or already gone
                now = time.monotonic()
                vus = _sample(payload, "vus", "value")
                self.spend.vu_seconds += vus * (now - last)
                self.spend.requests = int(_sample(payload, "http_reqs", "count"))
                last = now
                if self.on_sample is not None:
                    await self.on_sample(self.sample(payload, vus, now))
                await self._judge(client, on_exhausted)

    def sample(self, payload: dict[str, Any], vus: float, now: float) -> dict[str, Any]:
        requests = self.spend.requests
        latency = {
            stat: round(_sample(payload, "http_req_duration", stat), 3) for stat in REST_TREND_STATS
        }
        return {
            "elapsed_s": round(now - self.started, 2),
            "vus": int(vus),
            "requests": requests,
            "failures": round(_sample(payload, "http_req_failed", "rate") * requests),
            "rps": round(_sample(payload, "http_reqs", "rate"), 2),
            "iterations": int(_sample(payload, "iterations", "count")),
            "latency_ms": latency,
            "vu_seconds": round(self.spend.vu_seconds, 1),
        }

    async def _judge(self, client: httpx.AsyncClient, on_exhausted: Callable[[], None]) -> None:
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
                on_exhausted()
                await self._stop(client)
                return

    async def _stop(self, client: httpx.AsyncClient) -> None:
        try:
            await client.patch(f"{self.base}/status", json=STOP_BODY)
        except httpx.HTTPError:
            log.warning("run %s: k6 REST stop failed; the run's stop signal follows", self.run_id)

    async def _webhook(self, client: httpx.AsyncClient, data: dict[str, Any]) -> None:
        if not self.settings.cost_alert_webhook:
            return
        try:
            await client.post(
                self.settings.cost_alert_webhook,
                json={"event": "budget_alert", "run_id": self.run_id, **data},
            )
        except httpx.HTTPError as exc:
            log.warning("run %s: budget webhook failed: %s", self.run_id, exc)
