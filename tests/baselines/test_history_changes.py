"""The history export's change points: a lasting step in a p95 or error-rate series is found
and dated at the first run after it; a flat series has none; an exported document (with its
`changes`) imports again."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Plan
from tests.builders import API, make_plan, make_run, result

START = datetime(2026, 10, 1, 6, 0, tzinfo=UTC)


def day(i: int) -> datetime:
    return START + timedelta(days=i)


def series(endpoint: str, sli: str, values: list[float]) -> dict[str, Any]:
    return {
        "endpoint": endpoint,
        "sli": sli,
        "points": [
            {"at": day(i).isoformat(), "value": v, "label": f"build {i}"}
            for i, v in enumerate(values)
        ],
    }


def around(center: float, count: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [round(rng.gauss(center, center * 0.03), 3) for _ in range(count)]


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def export(client: AsyncClient, plan: Plan) -> dict[str, Any]:
    response = await client.get(f"{API}/plans/{plan.id}/history")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_step_in_p95_is_one_change_dated_at_the_first_run_after_it(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    before, after = around(100, 12, seed=1), around(180, 10, seed=2)
    document = {"series": [series("*", "p95", before + after)]}
    assert (await client.post(f"{API}/plans/{plan.id}/history", json=document)).status_code == 201

    [change] = (await export(client, plan))["changes"]

    assert (change["endpoint"], change["sli"]) == ("*", "p95")
    assert when(change["at"]) == day(12)
    assert (change["points_before"], change["points_after"]) == (12, 10)
    assert change["before"] == pytest.approx(sorted(before)[5] / 2 + sorted(before)[6] / 2)
    assert change["after"] == pytest.approx(sorted(after)[4] / 2 + sorted(after)[5] / 2)
    assert change["change"] == pytest.approx(
        (change["after"] - change["before"]) / change["before"]
    )
    assert 0.7 < change["change"] < 0.9


async def test_flat_series_and_unwatched_slis_have_no_change(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    document = {
        "series": [
            series("*", "p95", around(100, 30, seed=3)),
            series("*", "error_rate", [0.01] * 30),
            # p50 steps, but the export watches p95 and the error rate only.
            series("*", "p50", around(40, 15, seed=4) + around(90, 15, seed=5)),
        ]
    }
    assert (await client.post(f"{API}/plans/{plan.id}/history", json=document)).status_code == 201

    assert (await export(client, plan))["changes"] == []


async def test_too_short_a_series_has_no_change_and_a_plan_without_history_none(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan, empty = await make_plan(session), await make_plan(session)
    # Seven points: fewer than the eight a change needs.
    document = {"series": [series("*", "p95", [100.0] * 4 + [300.0] * 3)]}
    await client.post(f"{API}/plans/{plan.id}/history", json=document)

    assert (await export(client, plan))["changes"] == []
    assert (await export(client, empty))["changes"] == []


async def test_an_error_rate_step_on_one_endpoint_is_found_there(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    rates = [0.001, 0.0012, 0.0009, 0.0011, 0.001, 0.0012, 0.0008, 0.001, 0.0011]
    steady_p95 = around(120, 18, seed=6)
    document = {
        "series": [
            series(
                "create_order",
                "error_rate",
                [*rates, 0.05, 0.052, 0.049, 0.05, 0.051, 0.048, 0.05, 0.05, 0.049],
            ),
            series("create_order", "p95", steady_p95),
        ]
    }
    await client.post(f"{API}/plans/{plan.id}/history", json=document)

    changes = (await export(client, plan))["changes"]

    assert [(c["endpoint"], c["sli"], when(c["at"])) for c in changes] == [
        ("create_order", "error_rate", day(9))
    ]
    assert changes[0]["before"] == pytest.approx(0.001)
    assert changes[0]["after"] == pytest.approx(0.05)


async def test_the_plans_own_runs_date_a_change_at_the_first_slow_run(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    p95s = around(100, 8, seed=7) + around(200, 8, seed=8)
    runs = []
    for i, p95 in enumerate(p95s):
        run = await make_run(session, plan, results=[result("*", p95=p95)])
        run.created_at = run.finished_at = day(i)
        runs.append(run)
    await session.flush()

    exported = await export(client, plan)
    p95 = next(c for c in exported["changes"] if c["sli"] == "p95")

    assert (p95["endpoint"], when(p95["at"])) == ("*", day(8))
    point = next(
        p
        for s in exported["series"]
        if (s["endpoint"], s["sli"]) == ("*", "p95")
        for p in s["points"]
        if when(p["at"]) == day(8)
    )
    assert point["run_id"] == str(runs[8].id)  # the change names the run that moved
    assert [c["sli"] for c in exported["changes"]] == ["p95"]


async def test_an_exported_document_with_its_changes_imports_and_exports_the_same(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    document = {"series": [series("*", "p95", around(100, 10, seed=9) + around(250, 10, seed=10))]}
    await client.post(f"{API}/plans/{plan.id}/history", json=document)
    exported = await export(client, plan)
    assert len(exported["changes"]) == 1

    again = await client.post(f"{API}/plans/{plan.id}/history", json=exported)

    assert again.status_code == 201, again.text
    assert again.json()["points"] == 20
    assert await export(client, plan) == exported
    # Into another plan of the same endpoints, as another tool would bring it.
    other = await make_plan(session)
    moved = await client.post(f"{API}/plans/{other.id}/history", json=exported)
    assert moved.status_code == 201, moved.text
    assert (await export(client, other))["changes"] == exported["changes"]


async def test_changes_sent_on_import_are_ignored(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    made_up = {
        "endpoint": "*",
        "sli": "p95",
        "at": day(3).isoformat(),
        "before": 1.0,
        "after": 1000.0,
        "change": 999.0,
        "points_before": 3,
        "points_after": 9,
    }
    document = {"series": [series("*", "p95", around(100, 12, seed=11))], "changes": [made_up]}

    response = await client.post(f"{API}/plans/{plan.id}/history", json=document)

    assert response.status_code == 201, response.text
    assert (await export(client, plan))["changes"] == []
