from __future__ import annotations

import uuid

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import RunStatus
from tests.builders import API, make_plan, make_run


async def test_promoted_runs_are_listed_newest_first(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    first, second = await make_run(session, plan), await make_run(session, plan)
    for run in (first, second):
        response = await client.post(f"{API}/baselines", json={"run_id": str(run.id)})
        assert response.status_code == 201
        assert response.json()["environment"] == "local"

    listed = (await client.get(f"{API}/baselines", params={"plan_id": str(plan.id)})).json()

    assert [b["run_id"] for b in listed] == [str(second.id), str(first.id)]


async def test_only_a_succeeded_run_can_be_a_baseline(
    client: AsyncClient, session: AsyncSession
) -> None:
    run = await make_run(session, await make_plan(session), status=RunStatus.failed)

    response = await client.post(f"{API}/baselines", json={"run_id": str(run.id)})

    assert response.status_code == 409
    assert response.json()["code"] == "baseline.run_not_succeeded"


async def test_unknown_run_cannot_be_promoted(client: AsyncClient) -> None:
    response = await client.post(f"{API}/baselines", json={"run_id": str(uuid.uuid4())})

    assert response.status_code == 404
