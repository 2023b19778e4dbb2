from __future__ import annotations

import uuid

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from app.models import RunStatus
from tests.builders import API, approve, make_plan, make_run, plan_doc, result


async def test_execute_queues_a_run_and_points_at_it(client: AsyncClient) -> None:
    plan = (await client.post(f"{API}/plan", json=plan_doc())).json()
    await approve(client, plan)

    response = await client.post(f"{API}/execute", json={"plan_id": plan["id"]})

    assert response.status_code == 202
    run = response.json()
    assert run["status"] == "queued"
    assert run["plan_id"] == plan["id"]
    assert run["script_sha256"] == plan["script_sha256"]
    assert response.headers["location"] == f"{API}/runs/{run['id']}"
    fetched = await client.get(response.headers["location"])
    assert fetched.json()["status"] == "queued"


async def test_execute_unknown_plan_is_404(client: AsyncClient) -> None:
    response = await client.post(f"{API}/execute", json={"plan_id": str(uuid.uuid4())})

    assert response.status_code == 404
    assert response.json()["code"] == "plan.not_found"


async def test_execute_without_plan_id_is_422(client: AsyncClient) -> None:
    response = await client.post(f"{API}/execute", json={"plan": "x"})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_execute_rechecks_guardrails_that_tightened(
    client: AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    plan = await make_plan(session, load={"vus": 50, "duration": "5s"})
    settings.max_vus = 10

    response = await client.post(f"{API}/execute", json={"plan_id": str(plan.id)})

    assert response.status_code == 422
    assert response.json()["code"] == "guardrail.vu_ceiling"


async def test_runs_are_listed_by_plan(client: AsyncClient, session: AsyncSession) -> None:
    plan, other = await make_plan(session), await make_plan(session)
    mine = await make_run(session, plan, results=[result("*", p95=10)])
    await make_run(session, other)

    response = await client.get(f"{API}/runs", params={"plan_id": str(plan.id)})

    assert response.status_code == 200
    runs = response.json()["items"]
    assert [r["id"] for r in runs] == [str(mine.id)]
    assert runs[0]["p95_ms"] == 10
    assert runs[0]["links"]["self"] == f"{API}/runs/{mine.id}"
    assert "results" not in runs[0]


async def test_runs_filter_by_status(client: AsyncClient, session: AsyncSession) -> None:
    plan = await make_plan(session)
    queued = await make_run(session, plan, status=RunStatus.queued)
    await make_run(session, plan, status=RunStatus.failed)

    response = await client.get(f"{API}/runs", params={"plan_id": str(plan.id), "status": "queued"})

    assert [r["id"] for r in response.json()["items"]] == [str(queued.id)]


async def test_unknown_status_filter_is_422(client: AsyncClient) -> None:
    response = await client.get(f"{API}/runs", params={"status": "exploded"})

    assert response.status_code == 422


async def test_unknown_run_is_404(client: AsyncClient) -> None:
    response = await client.get(f"{API}/runs/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.json()["code"] == "run.not_found"
