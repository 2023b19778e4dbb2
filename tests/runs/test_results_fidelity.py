"""A real k6 run: the results read from the live histograms agree with k6's own summary."""

from __future__ import annotations

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.settings import Settings
from app.models import Run, RunEvent, RunHistogram, RunResult, RunSample, RunStatus
from app.runs.service import merge_windows
from app.runs.summary import parse_results
from app.runs.worker import Worker
from tests.builders import API, make_plan, make_run

pytestmark = pytest.mark.k6


async def test_per_endpoint_p95_and_p99_from_the_histograms_are_within_1_percent_of_k6s(
    committed: async_sessionmaker[AsyncSession],
    committed_client: AsyncClient,
    settings: Settings,
    demo_target: str,
) -> None:
    settings.histogram_window_s = 2
    plan = {
        "target": {"base_url": demo_target, "environment": "local"},
        "endpoints": [
            {"name": "product", "path": "/api/products/3"},
            {"name": "books", "path": "/api/products?category=books&limit=50"},
            {"name": "missing", "path": "/api/products/999999", "expect_status": 200},
        ],
        "load": {"profile": "load", "vus": 4, "duration": "5s"},
        "slos": ["p95 < 1000ms"],
    }
    async with committed() as session, session.begin():
        run = await make_run(session, await make_plan(session, **plan), status="queued")

    await Worker(committed, settings).run_once()

    async with committed() as session:
        finished = await session.get(Run, run.id)
        assert finished is not None
        assert finished.status == RunStatus.succeeded, finished.error
        results = {
            r.endpoint: r
            for r in await session.scalars(select(RunResult).where(RunResult.run_id == run.id))
        }
        windows = list(
            await session.scalars(select(RunHistogram).where(RunHistogram.run_id == run.id))
        )
        seconds = list(await session.scalars(select(RunSample).where(RunSample.run_id == run.id)))
        finished_event = await session.scalar(
            select(RunEvent.data).where(RunEvent.run_id == run.id, RunEvent.kind == "finished")
        )
    assert finished.summary is not None
    k6 = {row["endpoint"]: row for row in parse_results(finished.summary, list(results)[1:])}
    assert set(results) == {"*", "product", "books", "missing"}
    for endpoint, ours in results.items():
        theirs = k6[endpoint]
        assert ours.source == "histograms"
        assert (ours.requests, ours.failures) == (theirs["requests"], theirs["failures"])
        if endpoint == "missing":
            assert ours.failures == ours.requests > 0  # 404s: failures, no latency
            assert ours.p95_ms is None
            continue
        assert ours.requests > 300, endpoint
        for field in ("p95_ms", "p99_ms", "p50_ms", "p90_ms"):
            assert getattr(ours, field) == pytest.approx(theirs[field], rel=0.01), (endpoint, field)
        assert ours.min_ms == pytest.approx(theirs["min_ms"], rel=1e-6)
        assert ours.max_ms == pytest.approx(theirs["max_ms"], rel=1e-6)
        assert ours.avg_ms == pytest.approx(theirs["avg_ms"], rel=1e-6)
        assert ours.rps == pytest.approx(theirs["rps"], rel=1e-3)

    # The stored windows are those same histograms: merged, they give the same figures.
    product = merge_windows([w for w in windows if w.endpoint == "product"])
    assert len({w.start_s for w in windows}) >= 3  # 2 s windows over a 5 s test
    assert product.percentile(95) == pytest.approx(results["product"].p95_ms, rel=1e-9)
    late = finished_event["late_points"] if finished_event else 0
    assert sum(s.requests for s in seconds) + late == results["*"].requests

    # The same merge over the API, for the whole run and for a later span only.
    whole = (await committed_client.get(f"{API}/runs/{run.id}/latency?endpoint=product")).json()
    assert whole["latency_ms"]["p95"] == pytest.approx(results["product"].p95_ms, rel=1e-9)
    assert whole["requests"] == results["product"].requests
    later = (await committed_client.get(f"{API}/runs/{run.id}/latency?from_s=2")).json()
    assert (later["endpoint"], later["from_s"]) == ("*", 2)
    assert 0 < later["requests"] < results["*"].requests
    missing = await committed_client.get(f"{API}/runs/{run.id}/latency?endpoint=nope")
    assert missing.status_code == 404
    assert missing.json()["code"] == "run.no_histograms"
