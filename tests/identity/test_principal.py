"""What a key's owner is recorded as doing: the reviewer of a plan, the approver of a draft
run with auto_approve (only with execute and approve)."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient

from app.core.auth import Scope
from tests.builders import API, plan_doc
from tests.conftest import Clients


async def stored_plan(clients: Clients) -> dict[str, Any]:
    planner = await clients.scoped(Scope.plan, owner="planner@example.com")
    response = await planner.post(f"{API}/plan", json=plan_doc())
    assert response.status_code == 201, response.text
    plan: dict[str, Any] = response.json()
    return plan


async def current(clients: Clients, plan: dict[str, Any]) -> dict[str, Any]:
    reader = await clients.scoped(Scope.read)
    body: dict[str, Any] = (await reader.get(plan["links"]["self"])).json()
    return body


async def test_approving_records_the_keys_owner_never_the_bodys_reviewer(
    clients: Clients,
) -> None:
    plan = await stored_plan(clients)
    reviewer = await clients.scoped(Scope.approve, owner="ana@example.com")

    approved = await reviewer.post(
        plan["links"]["review"],
        json={"action": "approve", "reviewer": "the-ceo@example.com", "comment": "ok"},
    )
    archived = await reviewer.post(plan["links"]["review"], json={"action": "archive"})

    assert approved.status_code == 200, approved.text
    assert approved.json()["reviewed_by"] == "ana@example.com"
    assert approved.json()["review_comment"] == "ok"
    assert archived.json()["reviewed_by"] == "ana@example.com"


async def test_a_planner_cannot_approve_its_own_plan(clients: Clients) -> None:
    plan = await stored_plan(clients)
    planner = await clients.scoped(Scope.plan, Scope.read, Scope.execute)

    response = await planner.post(plan["links"]["review"], json={"action": "approve"})

    assert response.status_code == 403
    assert (response.json()["code"], response.json()["scope"]) == ("auth.scope_missing", "approve")
    assert (await current(clients, plan))["status"] == "draft"


async def execute(client: AsyncClient, plan: dict[str, Any], **extra: Any) -> Any:
    return await client.post(f"{API}/execute", json={"plan_id": plan["id"], **extra})


async def test_auto_approve_needs_execute_and_approve(clients: Clients) -> None:
    plan = await stored_plan(clients)
    runner = await clients.scoped(Scope.execute, owner="runner")
    approver = await clients.scoped(Scope.approve, owner="approver")
    ci = await clients.scoped(Scope.execute, Scope.approve, owner="ci-checkout")

    only_execute = await execute(runner, plan, auto_approve=True)
    only_approve = await execute(approver, plan, auto_approve=True)
    still = await current(clients, plan)
    both = await execute(ci, plan, auto_approve=True)
    approved = await current(clients, plan)

    assert only_execute.status_code == 403
    problem = only_execute.json()
    assert (problem["code"], problem["scope"]) == ("auth.scope_missing", "approve")
    assert "auto_approve" in problem["detail"]
    assert only_approve.status_code == 403
    assert only_approve.json()["scope"] == "execute"
    assert still["status"] == "draft"
    assert both.status_code == 202, both.text
    assert (approved["status"], approved["reviewed_by"]) == ("approved", "ci-checkout")


async def test_an_approved_plan_runs_with_execute_alone(clients: Clients) -> None:
    plan = await stored_plan(clients)
    reviewer = await clients.scoped(Scope.approve)
    await reviewer.post(plan["links"]["review"], json={"action": "approve"})
    runner = await clients.scoped(Scope.execute)

    queued = await execute(runner, plan)
    # auto_approve on an approved plan approves nothing: execute is enough.
    again = await execute(runner, plan, auto_approve=True)

    assert queued.status_code == 202, queued.text
    assert again.status_code == 202, again.text
