"""The verdict webhook: a Slack incoming-webhook message with the verdict, failed objectives,
regressions, findings and the report link, sent after the analysis is stored, under the
outbound address policy; it never fails the analysis."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from tests.analysis.test_ci import analysed


class Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[dict[str, Any]] = []
        self.status = 200

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/T000/B000"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        self.server.received.append(
            json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        )
        self.send_response(self.server.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def receiver(settings: Settings) -> Iterator[Receiver]:
    server = Receiver()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.verdict_webhook_url = server.url
    settings.public_url = "https://perf.example.com"
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


async def test_a_failed_verdict_is_posted_as_a_slack_message_with_its_reasons(
    client: AsyncClient, session: AsyncSession, receiver: Receiver
) -> None:
    analysis = await analysed(client, session, slow_p95=210, slos=["p95 < 150ms"])

    (message,) = receiver.received
    facts = message["perf_agent"]
    assert facts["verdict"] == analysis["verdict"] == "fail"
    assert facts["analysis_id"] == analysis["id"]
    assert facts["failed_objectives"] == [
        {"objective": "p95 < 150ms", "endpoint": None, "measured": 210.0}
    ]
    assert "list_orders p95 +110.0%" in facts["regressions"]
    assert facts["report"] == (
        f"https://perf.example.com/api/agents/performance-agent/analyses/{analysis['id']}/report.html"
    )
    assert message["text"].startswith(":x: perf-agent: orders-api — FAIL")
    section = message["blocks"][0]
    assert section["type"] == "section"
    assert section["text"]["type"] == "mrkdwn"
    assert "objective `p95 < 150ms`" in section["text"]["text"]


async def test_only_the_chosen_verdicts_are_posted(
    client: AsyncClient, session: AsyncSession, receiver: Receiver, settings: Settings
) -> None:
    settings.verdict_webhook_on = ["fail", "inconclusive"]

    passed = await analysed(client, session, slow_p95=100, slos=["p95 < 150ms"])

    assert passed["verdict"] == "pass"
    assert receiver.received == []


async def test_a_refused_or_failing_webhook_never_fails_the_analysis(
    client: AsyncClient, session: AsyncSession, receiver: Receiver, settings: Settings
) -> None:
    receiver.status = 500
    failing = await analysed(client, session, slow_p95=210, slos=["p95 < 150ms"])
    settings.denied_networks = ["127.0.0.0/8"]
    refused = await analysed(client, session, slow_p95=210, slos=["p95 < 150ms"])

    assert failing["verdict"] == refused["verdict"] == "fail"
    assert len(receiver.received) == 1  # the failing receiver got it; the refused URL did not
    metrics = (await client.get("/metrics")).text
    assert 'perf_agent_verdict_notifications_total{outcome="failed"}' in metrics
    assert 'perf_agent_verdict_notifications_total{outcome="refused"}' in metrics
