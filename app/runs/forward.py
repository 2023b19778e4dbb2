"""A run's k6 series, forwarded to the user's Prometheus as they arrive (remote write).

Each push the worker's receiver takes in from k6 is re-encoded with the run's labels —
``testid`` (the run id: the label k6's Grafana dashboards filter on), ``plan``, ``plan_id`` and
``environment`` — and sent on to every configured endpoint: the deployment's
(``PERF_AGENT_REMOTE_WRITE_URL``, with its bearer token) and the plan's own
(``remote_write.url``, under the same host rules as its target). Only ``k6_*`` series go out.

Forwarding never slows the run: pushes wait in a bounded queue, one sender per endpoint drains
it, and when an endpoint cannot keep up the oldest pushes are dropped and counted. Connections
go to the addresses the outbound policy checked, never re-resolved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.core import metrics
from app.core.errors import GuardrailViolation
from app.core.settings import Settings
from app.guardrails.network import ResolvedTarget, check_outbound, pinned_client
from app.k6.remote_write import relabel
from app.plans.schemas import PlanSpec

log = logging.getLogger(__name__)

QUEUE = 120  # pushes (about two minutes) an endpoint may fall behind before the oldest go
TIMEOUT_S = 5.0
HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": "perf-agent",
}


@dataclass
class Endpoint:
    target: ResolvedTarget
    source: str  # "deployment" | "plan"
    token: str | None = None
    queue: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(QUEUE))
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    last_error: str | None = None

    def report(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "host": self.target.host,
            "sent": self.sent,
            "failed": self.failed,
            "dropped": self.dropped,
            "last_error": self.last_error,
        }


def run_labels(spec: PlanSpec, run_id: str, plan_id: str) -> dict[str, str]:
    return {
        "testid": run_id,
        "plan": spec.name,
        "plan_id": plan_id,
        "environment": spec.target.environment,
    }


async def endpoints_for(
    spec: PlanSpec, settings: Settings
) -> tuple[list[Endpoint], list[dict[str, Any]]]:
    """The endpoints this run forwards to, each checked now; and the refusals, for events."""
    wanted: list[tuple[str, str, bool, str | None]] = []
    if settings.remote_write_url:
        secret = settings.remote_write_token
        wanted.append(
            (
                settings.remote_write_url,
                "deployment",
                False,  # the operator's URL: denied networks hold, the target patterns don't
                secret.get_secret_value() if secret else None,
            )
        )
    if spec.remote_write is not None:
        wanted.append((spec.remote_write.url, "plan", True, None))
    found, refused = [], []
    for url, source, patterns, token in wanted:
        try:
            target = await check_outbound(
                url, settings, purpose=f"{source} remote_write", host_patterns=patterns
            )
        except GuardrailViolation as exc:
            refused.append({"source": source, "code": exc.code, "detail": exc.detail})
            continue
        found.append(Endpoint(target, source, token))
    return found, refused


class Forwarder:
    """Queue each push for every endpoint; ``run()`` sends them; ``close()`` drains."""

    def __init__(self, endpoints: list[Endpoint], labels: dict[str, str]) -> None:
        self.endpoints = endpoints
        self.labels = labels
        self.tasks: list[asyncio.Task[None]] = []

    def send(self, request: Any) -> None:
        if not self.endpoints:
            return
        body = relabel(request, self.labels)
        for endpoint in self.endpoints:
            if endpoint.queue.full():
                endpoint.queue.get_nowait()
                endpoint.queue.task_done()
                endpoint.dropped += 1
                metrics.FORWARDED_PUSHES.labels(outcome="dropped").inc()
            endpoint.queue.put_nowait(body)

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._drain(e)) for e in self.endpoints]

    async def _drain(self, endpoint: Endpoint) -> None:
        headers = dict(HEADERS)
        if endpoint.token:
            headers["Authorization"] = f"Bearer {endpoint.token}"
        async with pinned_client(endpoint.target, timeout=TIMEOUT_S) as client:
            while True:
                body = await endpoint.queue.get()
                try:
                    answer = await client.post(endpoint.target.url, content=body, headers=headers)
                    if answer.status_code >= 300:
                        raise httpx.HTTPStatusError(
                            f"{answer.status_code} {answer.text[:200]}",
                            request=answer.request,
                            response=answer,
                        )
                    endpoint.sent += 1
                    metrics.FORWARDED_PUSHES.labels(outcome="sent").inc()
                except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
                    endpoint.failed += 1
                    endpoint.last_error = str(exc)[:300] or type(exc).__name__
                    metrics.FORWARDED_PUSHES.labels(outcome="failed").inc()
                    if endpoint.failed in (1, 10, 100):
                        log.warning("forwarding to %s failed: %s", endpoint.target.host, exc)
                finally:
                    endpoint.queue.task_done()

    async def close(self, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """Send what is queued (at most ``timeout_s``), stop, and say how it went."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(e.queue.join() for e in self.endpoints)), timeout_s
            )
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for endpoint in self.endpoints:
            left = endpoint.queue.qsize()
            if left:
                endpoint.dropped += left
                metrics.FORWARDED_PUSHES.labels(outcome="dropped").inc(left)
        return [endpoint.report() for endpoint in self.endpoints]
