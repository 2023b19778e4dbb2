"""POST /gate: one run per build, judged once; a retried CI job with the same Idempotency-Key
gets the same gate back and never starts a second load test."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.auth import Scope
from app.models import Plan, Run, RunResult, RunStatus
from tests.builders import (
    API,
    QUIET_GENERATOR,
    add_seconds,
    make_plan,
    plan_doc,
    result,
    skip_if_analysis_disturbed,
)
from tests.conftest import Clients, live_key, running_live_service

BUILD = {"commit": "3f2a9c1", "branch": "main", "pipeline_url": "https://ci.example.com/p/1"}


def gate_body(plan: Plan, **changes: Any) -> dict[str, Any]:
    return {"plan_id": str(plan.id), "build": BUILD, **changes}


async def runs_of(session: AsyncSession, plan: Plan) -> int:
    count = await session.scalar(
        select(func.count()).select_from(Run).where(Run.plan_id == plan.id)
    )
    return int(count or 0)


async def test_the_same_idempotency_key_twice_starts_one_run(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    headers = {"Idempotency-Key": "pipeline-41-job-7"}

    first = await client.post(f"{API}/gate", json=gate_body(plan), headers=headers)
    retry = await client.post(f"{API}/gate", json=gate_body(plan), headers=headers)

    assert first.status_code == retry.status_code == 202, first.text
    assert first.headers["location"] == f"{API}/gates/{first.json()['id']}"
    assert retry.json()["id"] == first.json()["id"]
    assert (first.json()["replayed"], retry.json()["replayed"]) == (False, True)
    assert retry.json()["run_id"] == first.json()["run_id"]
    assert first.json()["status"] == "queued"
    assert first.json()["build"] == BUILD
    assert await runs_of(session, plan) == 1
    other = await client.post(f"{API}/gate", json=gate_body(plan), headers={"Idempotency-Key": "b"})
    assert other.json()["id"] != first.json()["id"]
    assert await runs_of(session, plan) == 2


async def test_a_key_reused_for_another_request_is_refused(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    headers = {"Idempotency-Key": "k"}
    await client.post(f"{API}/gate", json=gate_body(plan), headers=headers)

    changed = await client.post(
        f"{API}/gate", json=gate_body(plan, allow_warning=True), headers=headers
    )

    assert changed.status_code == 422
    assert changed.json()["code"] == "gate.idempotency_key_reused"
    assert await runs_of(session, plan) == 1


async def test_concurrent_retries_with_one_key_start_one_run(
    committed_client: AsyncClient, committed: async_sessionmaker[AsyncSession]
) -> None:
    async with committed() as session:
        plan = await make_plan(session)
        await session.commit()
    headers = {"Idempotency-Key": "flaky-runner-retry"}

    answers = await asyncio.gather(
        *(
            committed_client.post(f"{API}/gate", json=gate_body(plan), headers=headers)
            for _ in range(5)
        )
    )

    assert {a.status_code for a in answers} == {202}, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert sorted(a.json()["replayed"] for a in answers) == [False] + [True] * 4
    async with committed() as session:
        assert await runs_of(session, plan) == 1


async def finish(session: AsyncSession, run_id: str, p95: float) -> None:
    """What a worker leaves behind: the run succeeded, with results and per-second samples."""
    run = await session.get(Run, uuid.UUID(run_id))
    assert run is not None
    run.status = RunStatus.succeeded
    for row in (result("*", p95=p95), result("list_orders", p95=p95)):
        session.add(RunResult(run_id=run.id, **row))
    await add_seconds(session, run, {"list_orders": [p95] * 10}, generator=QUIET_GENERATOR)
    await session.flush()


async def test_a_finished_run_is_judged_once_and_answers_the_gate(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session, slos=["p95 < 300ms"])
    opened = (await client.post(f"{API}/gate", json=gate_body(plan))).json()
    running = (await client.get(f"{API}/gates/{opened['id']}")).json()
    await finish(session, opened["run_id"], p95=120)

    decided = await client.get(f"{API}/gates/{opened['id']}")
    again = await client.get(f"{API}/gates/{opened['id']}")

    assert running["status"] == "queued"
    assert decided.status_code == 200
    body = decided.json()
    assert (body["status"], body["verdict"], body["passed"]) == ("decided", "pass", True)
    assert again.json()["analysis_id"] == body["analysis_id"]  # judged once
    assert body["links"]["junit"] == f"{API}/analyses/{body['analysis_id']}/junit.xml"
    junit = await client.get(body["links"]["junit"])
    assert junit.status_code == 200


async def test_a_gate_needs_the_execute_scope(clients: Clients, session: AsyncSession) -> None:
    plan = await make_plan(session)
    reader = await clients.scoped(Scope.read)

    refused = await reader.post(f"{API}/gate", json=gate_body(plan))

    assert refused.status_code == 403
    assert refused.json()["code"] == "auth.scope_missing"


@pytest.mark.k6
def test_with_wait_s_the_gate_answers_the_verdict_of_a_real_run(
    database_url: str,
    tmp_path: Path,
    committed: async_sessionmaker[AsyncSession],
    demo_target: str,
) -> None:
    key = live_key(database_url)
    plan = {
        "name": "gate-over-http",
        "target": {"base_url": demo_target, "environment": "local"},
        "endpoints": [{"name": "product", "path": "/api/products/1"}],
        "load": {"vus": 2, "duration": "3s"},
        "slos": ["p95 < 0.001ms"],
    }
    with running_live_service(database_url, tmp_path / "service") as url:
        http = httpx.Client(base_url=url + API, headers={"Authorization": f"Bearer {key}"})
        created = http.post(
            "/plan", content=yaml.safe_dump(plan), headers={"Content-Type": "application/yaml"}
        ).json()
        answer = http.post(
            "/gate",
            json={"plan_id": created["id"], "auto_approve": True, "wait_s": 120, "build": BUILD},
            headers={"Idempotency-Key": "job-1"},
            timeout=180,
        )
        retried = http.post(
            "/gate",
            json={"plan_id": created["id"], "auto_approve": True, "wait_s": 120, "build": BUILD},
            headers={"Idempotency-Key": "job-1"},
            timeout=30,
        )
        runs = http.get("/runs", params={"plan_id": created["id"]}).json()["items"]
        analysis_id = answer.json().get("analysis_id") if answer.status_code == 200 else None
        analysis = http.get(f"/analyses/{analysis_id}").json() if analysis_id else {}

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert retried.json()["id"] == body["id"]
    assert retried.json()["replayed"] is True
    assert len(runs) == 1
    assert body["status"] == "decided"
    skip_if_analysis_disturbed(analysis)
    assert (body["verdict"], body["passed"]) == ("fail", False)


async def test_a_plan_sent_with_the_gate_is_stored_only_for_a_new_gate(
    client: AsyncClient, session: AsyncSession
) -> None:
    document = plan_doc(name="gated-inline")
    headers = {"Idempotency-Key": "inline-1"}

    first = await client.post(
        f"{API}/gate", json={"plan": document, "auto_approve": True}, headers=headers
    )
    retry = await client.post(
        f"{API}/gate", json={"plan": document, "auto_approve": True}, headers=headers
    )
    next_build = await client.post(
        f"{API}/gate",
        json={"plan": document, "plan_id": first.json()["plan_id"], "auto_approve": True},
        headers={"Idempotency-Key": "inline-2"},
    )

    assert first.status_code == 202, first.text
    assert retry.json()["id"] == first.json()["id"]
    versions = await client.get(f"{API}/plans/{first.json()['plan_id']}/versions")
    assert [v["version"] for v in versions.json()["items"]] == [2, 1]  # the retry stored nothing
    assert next_build.json()["plan_id"] != first.json()["plan_id"]
    plans = await session.scalar(
        select(func.count()).select_from(Plan).where(Plan.name == "gated-inline")
    )
    assert plans == 2


async def test_a_gate_needs_a_plan(client: AsyncClient) -> None:
    response = await client.post(f"{API}/gate", json={"build": BUILD})

    assert response.status_code == 422
    assert "give plan_id, plan, or both" in response.text


@pytest.mark.parametrize("key", [None, "build-77"])
async def test_a_gate_for_an_unknown_plan_is_a_404_with_or_without_a_key(
    client: AsyncClient, key: str | None
) -> None:
    headers = {"Idempotency-Key": key} if key else {}

    response = await client.post(
        f"{API}/gate", json={"plan_id": str(uuid.uuid4()), "build": BUILD}, headers=headers
    )

    assert response.status_code == 404
    assert response.json()["code"] == "plan.not_found"
