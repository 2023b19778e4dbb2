"""GET /runs/{id}/distribution: each endpoint's whole-run latency histogram, coarsened for
drawing — counts that add up to the run's responses, bins that hold the values they say."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import Plan, Run, RunHistogram
from app.runs import retention
from app.runs.histogram import GAMMA, Histogram
from tests.builders import API, make_plan, make_run
from tests.runs.test_retention import ENDPOINTS, finished_run, live_records

START = datetime(2026, 11, 25, tzinfo=UTC)


async def store_windows(
    session: AsyncSession,
    run: Run,
    latencies: dict[str, np.ndarray],
    *,
    window_s: int = 10,
    windows: int = 3,
    attempt: int = 1,
    failures: int = 0,
) -> None:
    """The run's histogram windows as the live path stores them: each endpoint's latencies
    split over ``windows`` windows, and '*' holding them all."""
    every = {**latencies, "*": np.concatenate(list(latencies.values()))}
    for endpoint, values in every.items():
        for i, part in enumerate(np.array_split(values, windows)):
            histogram = Histogram()
            histogram.record(part)
            session.add(
                RunHistogram(
                    run_id=run.id,
                    attempt=attempt,
                    endpoint=endpoint,
                    at=START + timedelta(seconds=i * window_s),
                    start_s=i * window_s,
                    seconds=window_s,
                    requests=int(part.size) + failures,
                    failures=failures,
                    **histogram.to_record(),
                    counts=histogram.encode(),
                )
            )
    await session.flush()


def binned(upper_ms: list[float], values: np.ndarray) -> list[int]:
    """Each value put in the first bin whose upper bound is at or above it (so above the
    previous bin's), counted per bin."""
    at = np.searchsorted(np.array(upper_ms), values, side="left")
    assert int(at.max()) < len(upper_ms), "a value lies above the last bin's upper bound"
    return [int(c) for c in np.bincount(at, minlength=len(upper_ms))]


async def distribution(client: AsyncClient, run: Run, **params: int) -> dict[str, Any]:
    response = await client.get(f"{API}/runs/{run.id}/distribution", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_counts_add_up_to_the_runs_responses_and_each_bin_holds_its_values(
    client: AsyncClient, session: AsyncSession
) -> None:
    rng = np.random.default_rng(7)
    latencies = {
        "list_orders": rng.lognormal(np.log(20), 0.6, 12_000),
        "create_order": rng.lognormal(np.log(80), 0.3, 8_000),
    }
    run = await make_run(session, await make_plan(session))
    await store_windows(session, run, latencies)
    every = {**latencies, "*": np.concatenate(list(latencies.values()))}

    for step in (1, 10, 50):
        body = await distribution(client, run, step=step)

        assert body["run_id"] == str(run.id)
        assert body["bin_width"] == pytest.approx(GAMMA**step - 1)
        endpoints = {e["endpoint"]: e for e in body["endpoints"]}
        assert [e["endpoint"] for e in body["endpoints"]] == ["*", "create_order", "list_orders"]
        for name, values in every.items():
            shown = endpoints[name]
            assert shown["requests"] == sum(shown["counts"]) == values.size
            assert all(c > 0 for c in shown["counts"])  # empty bins are left out
            upper = shown["upper_ms"]
            assert all(a < b for a, b in itertools.pairwise(upper)), step
            # Every value at or below its bin's upper bound and above the previous bin's.
            assert binned(upper, values) == shown["counts"], (name, step)
            # Bins are bin_width wide: no value below the first bin's lower bound.
            assert float(values.min()) > upper[0] / (1 + body["bin_width"])


async def test_a_known_set_of_latencies_gives_known_bins(
    client: AsyncClient, session: AsyncSession
) -> None:
    run = await make_run(session, await make_plan(session))
    values = np.array([1.0, 1.05, 2.0, 2.1, 2.1, 100.0, 105.0])
    await store_windows(session, run, {"list_orders": values}, windows=2)

    body = await distribution(client, run, step=10)

    [everything, orders] = body["endpoints"]
    assert everything["endpoint"] == "*"
    assert orders == {
        "endpoint": "list_orders",
        "requests": 7,
        # 10 buckets of 1.005/0.995 per bin (~10.5 % wide): 1.0 and 1.05 share the bin up
        # to 1.0858 ms, 2.0 and the 2.1s the one up to 2.1865 ms, 100 and 105 the one up to
        # 108.02 ms.
        "upper_ms": pytest.approx([1.0858, 2.1865, 108.0227], abs=1e-4),
        "counts": [2, 3, 2],
    }
    assert everything["counts"] == orders["counts"]
    assert body["bin_width"] == pytest.approx(0.10517, abs=1e-5)


async def test_p95_read_from_the_coarse_bins_is_within_a_bin_of_the_exact_one(
    client: AsyncClient, session: AsyncSession
) -> None:
    rng = np.random.default_rng(11)
    # 2,001 responses: k6's p95 (rank 0.95·(n−1) = 1900) is one of the values, exactly.
    values = rng.lognormal(np.log(40), 0.5, 2_001)
    run = await make_run(session, await make_plan(session))
    await store_windows(session, run, {"list_orders": values})
    exact = float(np.percentile(values, 95))

    for step in (1, 10, 40):
        body = await distribution(client, run, step=step)
        width: float = body["bin_width"]
        shown = next(e for e in body["endpoints"] if e["endpoint"] == "list_orders")
        cumulative = np.cumsum(shown["counts"])
        # The bin holding the response of rank 1900 (the 1901st fastest).
        at = int(np.searchsorted(cumulative, 1901))
        estimate = shown["upper_ms"][at]

        assert estimate / (1 + width) < exact <= estimate, step
        assert abs(estimate - exact) <= width * exact


async def test_only_the_latest_attempts_windows_are_counted(
    client: AsyncClient, session: AsyncSession
) -> None:
    run = await make_run(session, await make_plan(session))
    await store_windows(session, run, {"list_orders": np.full(500, 900.0)}, attempt=1)
    await store_windows(session, run, {"list_orders": np.full(200, 30.0)}, attempt=2)

    body = await distribution(client, run)

    shown = {e["endpoint"]: (e["requests"], e["counts"]) for e in body["endpoints"]}
    assert shown == {"*": (200, [200]), "list_orders": (200, [200])}


async def test_a_run_without_histograms_has_no_endpoints_and_an_unknown_run_is_404(
    client: AsyncClient, session: AsyncSession
) -> None:
    run = await make_run(session, await make_plan(session))

    empty = await client.get(f"{API}/runs/{run.id}/distribution")
    unknown = await client.get(f"{API}/runs/{uuid.uuid4()}/distribution")

    assert empty.status_code == 200
    assert empty.json() == {
        "run_id": str(run.id),
        "bin_width": pytest.approx(GAMMA**10 - 1),
        "endpoints": [],
    }
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert unknown.json()["code"] == "run.not_found"


@pytest.mark.parametrize("step", [0, -1, 201, "ten"])
async def test_a_step_outside_1_to_200_is_refused(
    client: AsyncClient, session: AsyncSession, step: Any
) -> None:
    run = await make_run(session, await make_plan(session))

    response = await client.get(f"{API}/runs/{run.id}/distribution", params={"step": step})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_packed_run_has_the_distribution_it_had_from_its_rows(
    client: AsyncClient, session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    records, results, fed = live_records(60)
    run = await finished_run(session, (records, results, fed))
    await session.commit()
    before = {step: await distribution(client, run, step=step) for step in (1, 10)}

    packed = await retention.archive_finished_runs(sessionmaker, after_s=1, limit=10)

    assert list(packed) == [run.id]
    left = select(func.count()).select_from(RunHistogram).where(RunHistogram.run_id == run.id)
    assert await session.scalar(left) == 0
    for step, was in before.items():
        assert await distribution(client, run, step=step) == was
    # What was fed in: every expected response of each endpoint, in the bin it belongs to.
    body = before[1]
    for name in ENDPOINTS:
        values = np.concatenate(fed[name])
        shown = next(e for e in body["endpoints"] if e["endpoint"] == name)
        assert shown["requests"] == values.size == 60 * (20 if name == "catalog" else 18)
        assert binned(shown["upper_ms"], values) == shown["counts"]
    # The histograms hold expected responses: the run's requests less its failures.
    plan = await session.get(Plan, run.plan_id)
    assert plan is not None
    run_body = (await client.get(f"{API}/runs/{run.id}")).json()
    figures = {r["endpoint"]: r["requests"] - r["failures"] for r in run_body["results"]}
    for shown in body["endpoints"]:
        assert shown["requests"] == figures[shown["endpoint"]]
