"""A plan's history: exported and imported as a JSON time series, and used to detect regressions
and lasting shifts from the first run."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.baselines.history import shifts
from tests.builders import API, make_plan, make_run, result

START = datetime(2026, 10, 1, tzinfo=UTC)


def series(endpoint: str, sli: str, values: list[float]) -> dict[str, Any]:
    return {
        "endpoint": endpoint,
        "sli": sli,
        "points": [
            {"at": (START + timedelta(days=i)).isoformat(), "value": v, "label": f"build {i}"}
            for i, v in enumerate(values)
        ],
    }


def steady(center: float, count: int = 10, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [round(rng.gauss(center, center * 0.03), 2) for _ in range(count)]


async def test_history_round_trips_and_includes_the_plans_own_runs(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    run = await make_run(session, plan, results=[result("*", p95=120)])
    document = {"series": [series("*", "p95", [100.0, 110.0, 105.0])]}

    imported = await client.post(f"{API}/plans/{plan.id}/history", json=document)
    exported = (await client.get(f"{API}/plans/{plan.id}/history")).json()

    assert imported.status_code == 201
    assert imported.json() == {"points": 3, "series": 1, "environment": "local"}
    assert exported["format"] == "perf-agent.history/v1"
    p95 = next(s for s in exported["series"] if (s["endpoint"], s["sli"]) == ("*", "p95"))
    assert p95["unit"] == "ms"
    assert [p["value"] for p in p95["points"]] == [100.0, 110.0, 105.0, 120.0]
    assert p95["points"][-1]["run_id"] == str(run.id)
    assert p95["points"][0]["label"] == "build 0"
    # The export imports as it is; its runs' points are not duplicated, its own points replace.
    again = await client.post(f"{API}/plans/{plan.id}/history", json=exported)
    assert again.json()["points"] == 3
    exported_again = (await client.get(f"{API}/plans/{plan.id}/history")).json()
    assert exported_again == exported


async def test_bad_history_is_refused_with_a_reason(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    url = f"{API}/plans/{plan.id}/history"
    unknown = {"series": [series("nope", "p95", [1.0])]}
    naive = {
        "series": [
            {"endpoint": "*", "sli": "p95", "points": [{"at": "2026-10-01T10:00:00", "value": 1}]}
        ]
    }
    negative = {"series": [series("*", "p95", [-1.0])]}
    bad_sli = {"series": [series("*", "p42", [1.0])]}

    responses = [await client.post(url, json=doc) for doc in (unknown, naive, negative, bad_sli)]

    assert [r.status_code for r in responses] == [422, 422, 422, 422]
    assert responses[0].json()["code"] == "history.unknown_endpoint"
    assert "time zone" in responses[1].json()["detail"]
    assert all(r.headers["content-type"] == "application/problem+json" for r in responses)
    assert (await client.get(f"{API}/plans/{plan.id}/history")).json()["series"] == []


async def test_imported_history_detects_a_regression_on_the_first_run(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    document = {
        "series": [
            series("*", "p95", steady(100)),
            series("list_orders", "p95", steady(100, seed=2)),
            series("create_order", "p95", steady(140, seed=3)),
        ]
    }
    assert (await client.post(f"{API}/plans/{plan.id}/history", json=document)).status_code == 201
    slower = [result("*", p95=200), result("list_orders", p95=210), result("create_order", p95=141)]
    run = await make_run(session, plan, results=slower)

    body = (await client.post(f"{API}/analyse", json={"run_id": str(run.id)})).json()

    assert body["baseline_source"] == "history"
    moved = {
        (c["endpoint"], c["sli"]): c
        for c in body["comparisons"]
        if c["verdict"] in ("regression", "improvement")
    }
    assert set(moved) == {("*", "p95"), ("list_orders", "p95")}
    assert moved[("list_orders", "p95")]["verdict"] == "regression"
    assert moved[("list_orders", "p95")]["n_baseline"] == 10
    assert body["verdict"] == "fail"
    assert [f["endpoint"] for f in body["findings"] if f["kind"] == "regression"] == ["list_orders"]


async def test_a_lasting_shift_in_the_history_is_reported_with_its_date(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    values = steady(100, 6) + steady(150, 6, seed=4)
    await client.post(
        f"{API}/plans/{plan.id}/history", json={"series": [series("*", "p95", values)]}
    )
    run = await make_run(session, plan, results=[result("*", p95=151)])

    body = (await client.post(f"{API}/analyse", json={"run_id": str(run.id)})).json()

    [shift] = body["history_shifts"]
    assert (shift["endpoint"], shift["sli"]) == ("*", "p95")
    assert shift["at"].startswith("2026-10-07")
    assert 0.4 < shift["change"] < 0.6
    assert any(f["kind"] == "history_shift" for f in body["findings"])


def test_a_steady_noisy_history_has_no_shift() -> None:
    for seed in range(50):
        points = [(START + timedelta(days=i), v) for i, v in enumerate(steady(100, 30, seed))]
        assert shifts({("*", "p95"): points}) == [], seed


async def test_an_import_too_large_is_refused_whole(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    big = {
        "series": [
            series("*", p, [1.0] * 10_000) for p in ("p50", "p90", "p95", "p99", "avg", "max")
        ]
    }

    response = await client.post(f"{API}/plans/{plan.id}/history", json=big)

    assert response.status_code == 422
    assert "at most 50000" in response.json()["detail"]
