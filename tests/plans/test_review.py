from __future__ import annotations

from typing import Any

from httpx import AsyncClient

from tests.builders import API, TEST_KEY_OWNER, approve, plan_doc


async def new_plan(client: AsyncClient, **changes: Any) -> dict[str, Any]:
    response = await client.post(f"{API}/plan", json=plan_doc(**changes))
    assert response.status_code == 201
    body: dict[str, Any] = response.json()
    return body


async def review(client: AsyncClient, plan: dict[str, Any], action: str) -> Any:
    return await client.post(
        plan["links"]["review"],
        json={"action": action, "reviewer": "ana@example.com", "comment": "looks right"},
    )


async def execute(client: AsyncClient, plan: dict[str, Any], **extra: Any) -> Any:
    return await client.post(f"{API}/execute", json={"plan_id": plan["id"], **extra})


async def test_a_new_plan_is_a_draft_that_cannot_run(client: AsyncClient) -> None:
    plan = await new_plan(client)

    response = await execute(client, plan)

    assert (plan["status"], plan["version"], plan["family_id"]) == ("draft", 1, plan["id"])
    assert response.status_code == 409
    assert response.json()["code"] == "plan.draft"


async def test_an_approved_plan_runs_and_records_its_reviewer(client: AsyncClient) -> None:
    plan = await new_plan(client)

    approved = (await review(client, plan, "approve")).json()
    run = await execute(client, plan)

    assert approved["status"] == "approved"
    # The key's owner, not the body's free-text reviewer (accepted, ignored).
    assert approved["reviewed_by"] == TEST_KEY_OWNER
    assert approved["review_comment"] == "looks right"
    assert run.status_code == 202


async def test_review_refuses_impossible_transitions(client: AsyncClient) -> None:
    plan = await new_plan(client)
    await review(client, plan, "approve")

    again = await review(client, plan, "approve")
    archived = await review(client, plan, "archive")
    revived = await review(client, plan, "approve")
    run = await execute(client, plan)

    assert again.status_code == 409
    assert again.json()["code"] == "review.invalid_transition"
    assert archived.json()["status"] == "archived"
    assert revived.status_code == 409
    assert run.status_code == 409
    assert run.json()["code"] == "plan.archived"


async def test_an_edit_is_a_new_draft_version_and_runs_keep_their_version(
    client: AsyncClient,
) -> None:
    v1 = await new_plan(client)
    await approve(client, v1)
    edited = plan_doc(load={"vus": 3, "duration": "5s"})

    response = await client.post(v1["links"]["versions"], json=edited)
    v2 = response.json()
    history = (await client.get(v2["links"]["versions"])).json()["items"]
    run_v1 = (await execute(client, v1)).json()
    run_v2 = await execute(client, v2)

    assert response.status_code == 201
    assert (v2["version"], v2["status"], v2["family_id"]) == (2, "draft", v1["family_id"])
    assert "version 2" in v2["script"]
    assert [(p["version"], p["status"]) for p in history] == [(2, "draft"), (1, "approved")]
    assert (run_v1["plan_version"], run_v1["script_sha256"]) == (1, v1["script_sha256"])
    assert run_v2.status_code == 409


async def test_a_bad_edit_is_refused_and_changes_nothing(client: AsyncClient) -> None:
    v1 = await new_plan(client)

    response = await client.post(v1["links"]["versions"], json={"name": "broken"})
    history = (await client.get(v1["links"]["versions"])).json()["items"]

    assert response.status_code == 422
    assert [p["version"] for p in history] == [1]


async def test_auto_approve_approves_the_draft_as_the_keys_owner(client: AsyncClient) -> None:
    # The client's key is an admin's: it may execute and approve (tests/identity has the rest).
    plan = await new_plan(client)

    run = await execute(client, plan, auto_approve=True)
    stored = (await client.get(plan["links"]["self"])).json()

    assert run.status_code == 202
    assert (stored["status"], stored["reviewed_by"]) == ("approved", TEST_KEY_OWNER)
    assert stored["review_comment"] == "auto-approved on execute"


async def test_review_needs_a_known_action_and_a_reviewer(client: AsyncClient) -> None:
    plan = await new_plan(client)

    response = await client.post(plan["links"]["review"], json={"action": "bless"})

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
