"""GET /runs filters a console needs: the plan's environment and a time window (since, until),
with the other filters and across pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Plan, Run, RunStatus
from tests.builders import API, make_plan, make_run

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


async def run_at(
    session: AsyncSession, plan: Plan, at: datetime, status: str = RunStatus.succeeded
) -> Run:
    run = await make_run(session, plan, status=status)
    run.created_at = at
    await session.flush()
    return run


async def plan_in(session: AsyncSession, environment: str | None) -> Plan:
    target: dict[str, Any] = {"base_url": "http://127.0.0.1:9"}
    if environment is not None:
        target["environment"] = environment
    return await make_plan(session, target=target)


async def listed(client: AsyncClient, **params: Any) -> list[str]:
    """Every run the list gives for these filters, following `next` to the end."""
    seen: list[str] = []
    response = await client.get(f"{API}/runs", params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [item["id"] for item in body["items"]]
        if body["next"] is None:
            return seen
        response = await client.get(body["next"])


def ids(*runs: Run) -> list[str]:
    return [str(run.id) for run in runs]


async def test_environment_is_the_plans_target_environment_staging_when_it_says_none(
    client: AsyncClient, session: AsyncSession
) -> None:
    prod = await plan_in(session, "prod-eu")
    staging = await plan_in(session, "staging")
    unsaid = await plan_in(session, None)
    # A plan stored before the field had a default: its spec has no environment at all.
    legacy = await plan_in(session, None)
    legacy.spec = {**legacy.spec, "target": {"base_url": "http://127.0.0.1:9"}}
    runs = {
        plan.name + str(i): await run_at(session, plan, T0 + timedelta(minutes=i))
        for i, plan in enumerate((prod, staging, unsaid, legacy))
    }
    await session.flush()
    [in_prod, in_staging, in_unsaid, in_legacy] = runs.values()

    assert await listed(client, environment="prod-eu") == ids(in_prod)
    assert await listed(client, environment="staging") == ids(in_legacy, in_unsaid, in_staging)
    assert await listed(client, environment="nowhere") == []
    assert await listed(client, environment="Prod-EU") == []  # as written, not folded
    assert len(await listed(client)) == 4


async def test_since_is_inclusive_until_exclusive_and_zones_are_honoured(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    runs = [await run_at(session, plan, T0 + timedelta(hours=h)) for h in range(4)]
    plus_two = timezone(timedelta(hours=2))

    assert await listed(client, since=(T0 + timedelta(hours=1)).isoformat()) == ids(
        runs[3], runs[2], runs[1]
    )
    assert await listed(client, until=(T0 + timedelta(hours=2)).isoformat()) == ids(
        runs[1], runs[0]
    )
    window = {
        "since": (T0 + timedelta(hours=1)).astimezone(plus_two).isoformat(),  # 15:00+02:00
        "until": "2026-11-02T15:00:00+00:00",
    }
    assert await listed(client, **window) == ids(runs[2], runs[1])
    # Z, and a microsecond either side of a run.
    assert await listed(client, since="2026-11-02T12:00:00.000001Z") == ids(
        runs[3], runs[2], runs[1]
    )
    assert await listed(client, until="2026-11-02T12:00:00.000001Z") == ids(runs[0])
    assert await listed(client, since="2026-11-03T00:00:00Z") == []


@pytest.mark.parametrize(
    ("since", "until"),
    [("2026-11-02T13:00:00Z", "2026-11-02T12:00:00Z"), ("2026-11-02T12:00:00Z",) * 2],
    ids=["since after until", "since equal to until"],
)
async def test_a_window_with_nothing_in_it_is_a_problem(
    client: AsyncClient, since: str, until: str
) -> None:
    response = await client.get(f"{API}/runs", params={"since": since, "until": until})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "runs.empty_window"


async def test_the_same_instant_written_in_two_zones_is_an_empty_window(
    client: AsyncClient,
) -> None:
    # 14:00+02:00 is 12:00Z: since == until, though the text of since sorts after.
    response = await client.get(
        f"{API}/runs",
        params={"since": "2026-11-02T14:00:00+02:00", "until": "2026-11-02T12:00:00Z"},
    )

    assert response.status_code == 422
    assert response.json()["code"] == "runs.empty_window"


@pytest.mark.parametrize(
    "params",
    [
        {"since": "2026-11-02T12:00:00"},
        {"until": "2026-11-02T12:00:00"},
        {"since": "2026-11-02"},
        {"since": "yesterday"},
        {"environment": "x" * 101},
    ],
    ids=["naive since", "naive until", "a date", "not a time", "environment too long"],
)
async def test_a_time_without_a_zone_or_an_odd_filter_is_refused(
    client: AsyncClient, params: dict[str, Any]
) -> None:
    response = await client.get(f"{API}/runs", params=params)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_filters_combine_with_plan_id_and_status_and_every_page_keeps_them(
    client: AsyncClient, session: AsyncSession
) -> None:
    prod_a = await plan_in(session, "prod")
    prod_b = await plan_in(session, "prod")
    staging = await plan_in(session, "staging")
    statuses = [RunStatus.succeeded, RunStatus.failed, RunStatus.succeeded]
    made: list[tuple[Run, Plan, str]] = []
    for i in range(24):
        plan = (prod_a, prod_b, staging)[i % 3]
        status = statuses[(i // 3) % 3]
        made.append((await run_at(session, plan, T0 + timedelta(minutes=i), status), plan, status))
    since, until = T0 + timedelta(minutes=4), T0 + timedelta(minutes=20)

    def expected(plan: Plan | None = None, status: str | None = None) -> list[str]:
        chosen = [
            run
            for run, of, state in made
            if of.spec["target"]["environment"] == "prod"
            and since <= run.created_at < until
            and (plan is None or of is plan)
            and (status is None or state == status)
        ]
        return ids(*sorted(chosen, key=lambda r: r.created_at, reverse=True))

    window = {"environment": "prod", "since": since.isoformat(), "until": until.isoformat()}
    everything = expected()
    assert len(everything) == 11
    assert await listed(client, **window, limit=2) == everything
    assert await listed(client, **window, limit=200) == everything
    assert await listed(client, **window, plan_id=str(prod_b.id), limit=1) == expected(prod_b)
    assert await listed(client, **window, status="failed", limit=3) == expected(status="failed")
    assert await listed(
        client, **window, plan_id=str(prod_a.id), status="succeeded", limit=2
    ) == expected(prod_a, "succeeded")
    # A staging plan's id with environment=prod: nothing.
    assert await listed(client, **window, plan_id=str(staging.id)) == []


async def test_the_next_link_carries_the_filters(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await plan_in(session, "prod")
    other = await plan_in(session, "staging")
    for i in range(5):
        await run_at(session, plan, T0 + timedelta(minutes=2 * i))
        await run_at(session, other, T0 + timedelta(minutes=2 * i + 1))
    params: dict[str, Any] = {"environment": "prod", "since": T0.isoformat(), "limit": 2}

    first = (await client.get(f"{API}/runs", params=params)).json()
    second = (await client.get(first["next"])).json()

    assert "environment=prod" in first["next"]
    assert "since=" in first["next"]
    assert {item["plan_id"] for item in first["items"] + second["items"]} == {str(plan.id)}
    assert len(first["items"]) == len(second["items"]) == 2
