"""Live samples of a running test, stored by the worker and streamed as server-sent events."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import datetime
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.settings import Settings
from app.runs.worker import Worker
from tests.builders import API, make_plan, make_run

pytestmark = pytest.mark.k6


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
        )
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_a_running_test_streams_about_one_sample_a_second(
    committed_client: AsyncClient,
    committed: async_sessionmaker[AsyncSession],
    settings: Settings,
    demo_target: str,
) -> None:
    plan = {
        "target": {"base_url": demo_target, "environment": "local"},
        "endpoints": [{"name": "product", "path": "/api/products/1", "think_time": 0.05}],
        "load": {"profile": "load", "vus": 2, "duration": "5s"},
        "slos": ["p95 < 1000ms"],
    }
    async with committed() as session, session.begin():
        run = await make_run(session, await make_plan(session, **plan), status="queued")
    worker = asyncio.create_task(Worker(committed, settings).run_once())

    response = await committed_client.get(f"{API}/runs/{run.id}/stream")
    await worker

    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.text)
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "end"
    assert events[-1][1]["status"] == "succeeded"
    samples = [data for kind, data in events if kind == "sample"]
    assert 4 <= len(samples) <= 7  # a 5 s test, one sample a second
    times = [datetime.fromisoformat(s["at"]) for s in samples]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert all(0.7 <= gap <= 1.5 for gap in gaps), gaps
    totals = [s["total_requests"] for s in samples]
    assert totals == sorted(totals)
    assert totals[-1] == sum(s["requests"] for s in samples) > 0
    assert samples[-1]["vus"] in (0, 1, 2)
    busy = samples[len(samples) // 2]
    assert busy["requests"] > 0
    assert {"p50", "p90", "p95", "p99", "max"} <= set(busy["latency_ms"])
    assert busy["endpoints"]["product"]["requests"] == busy["requests"]
    assert busy["endpoints"]["product"]["latency_ms"]["p95"] > 0
    assert "k6_started" in [data["kind"] for kind, data in events if kind == "event"]


async def test_streaming_an_unknown_run_is_a_404(committed_client: AsyncClient) -> None:
    response = await committed_client.get(f"{API}/runs/00000000-0000-0000-0000-000000000000/stream")

    assert response.status_code == 404
