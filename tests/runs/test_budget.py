"""Cost budgets with real k6: an alert at 80 %, a graceful stop at 100 %, partial results."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.settings import Settings
from app.runs.worker import Worker
from tests.builders import API, make_plan, make_run

pytestmark = pytest.mark.k6


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


async def test_a_run_spending_its_budget_is_alerted_then_stopped_with_partial_results(
    committed_client: AsyncClient,
    committed: async_sessionmaker[AsyncSession],
    settings: Settings,
    demo_target: str,
    webhook: tuple[str, list[dict[str, Any]]],
) -> None:
    hook_url, received = webhook
    settings.cost_alert_webhook = hook_url
    plan = {
        "target": {"base_url": demo_target, "environment": "local"},
        "endpoints": [{"name": "product", "path": "/api/products/1", "think_time": 0.1}],
        "load": {"profile": "load", "vus": 2, "duration": "60s"},
        "budget": {"requests": 60},
        "slos": ["p95 < 1000ms"],
    }
    async with committed() as session, session.begin():
        run = await make_run(session, await make_plan(session, **plan), status="queued")

    await Worker(committed, settings).run_once()

    body = (await committed_client.get(f"{API}/runs/{run.id}")).json()
    assert body["status"] == "partial", body["error"]
    assert body["exit_code"] == 103  # stopped through k6's REST API, summary written
    kinds = [e["kind"] for e in body["events"]]
    assert kinds.index("budget_alert") < kinds.index("budget_exhausted") < kinds.index("finished")
    alert = next(e for e in body["events"] if e["kind"] == "budget_alert")["data"]
    assert alert["resource"] == "requests"
    assert alert["requests"] >= 48  # 80 % of 60 (k6 is polled once a second)
    assert received
    assert received[0]["event"] == "budget_alert"
    assert received[0]["run_id"] == str(run.id)
    total = next(r for r in body["results"] if r["endpoint"] == "*")
    assert 60 <= total["requests"] < 120  # stopped soon after the limit, far before 60 s
    metrics = (await committed_client.get("/metrics")).text
    assert 'perf_agent_budget_stops_total{resource="requests"}' in metrics


async def test_a_plan_cannot_raise_the_servers_budget(settings: Settings) -> None:
    from app.plans.schemas import Budget
    from app.runs.budget import Limits

    settings.cost_max_requests = 1000

    limits = Limits.of(Budget(requests=10**9, vu_seconds=5), settings)

    assert (limits.requests, limits.vu_seconds) == (1000, 5)
