"""Every change of state is an audit event: who (key and owner), what, which object, when."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.auth import Scope
from app.identity import service
from app.models import ApiKey
from tests.builders import API, plan_doc
from tests.conftest import Clients

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


async def events(clients: Clients, **params: Any) -> list[dict[str, Any]]:
    admin = await clients.scoped(Scope.admin, owner="auditor")
    response = await admin.get(f"{API}/audit", params=params)
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


async def test_each_change_of_state_is_an_audit_event(
    clients: Clients, session: AsyncSession
) -> None:
    ana_key = await clients.key(Scope.plan, Scope.approve, Scope.execute, owner="ana@example.com")
    ana = clients.using(ana_key)
    ci = await clients.scoped(Scope.plan, Scope.execute, Scope.approve, owner="ci-checkout")

    plan = (await ana.post(f"{API}/plan", json=plan_doc())).json()
    v2 = (
        await ana.post(plan["links"]["versions"], json=plan_doc(load={"vus": 3, "duration": "5s"}))
    ).json()
    imported = await ana.post(
        f"{API}/plans/import/openapi",
        params={"base_url": "http://127.0.0.1:8080"},
        content=(FIXTURES / "openapi" / "petstore.yaml").read_bytes(),
        headers={"Content-Type": "application/yaml"},
    )
    await ana.post(plan["links"]["review"], json={"action": "approve", "comment": "fine"})
    run = (await ana.post(f"{API}/execute", json={"plan_id": plan["id"]})).json()
    aborted = await ana.post(f"{API}/runs/{run['id']}/abort")
    auto = (
        await ci.post(f"{API}/execute", json={"plan_id": v2["id"], "auto_approve": True})
    ).json()
    await ana.post(plan["links"]["review"], json={"action": "archive"})
    key, _ = await service.create_key(
        session, owner="new@example.com", scopes=[Scope.read], actor=service.CLI_ACTOR
    )
    await service.revoke_key(session, key.id, actor=service.CLI_ACTOR)
    await session.commit()

    trail = list(reversed(await events(clients)))  # oldest first

    assert aborted.status_code == 202
    assert [(e["action"], e["actor"], e["object_id"]) for e in trail] == [
        ("plan.created", "ana@example.com", plan["id"]),
        ("plan.version_created", "ana@example.com", v2["id"]),
        ("plan.created", "ana@example.com", imported.json()["id"]),
        ("plan.approved", "ana@example.com", plan["id"]),
        ("run.queued", "ana@example.com", run["id"]),
        ("run.aborted", "ana@example.com", run["id"]),
        ("plan.approved", "ci-checkout", v2["id"]),
        ("run.queued", "ci-checkout", auto["id"]),
        ("plan.archived", "ana@example.com", plan["id"]),
        ("key.created", "cli (local)", str(key.id)),
        ("key.revoked", "cli (local)", str(key.id)),
    ]
    by_action = {(e["action"], e["object_id"]): e for e in trail}
    created = by_action[("plan.created", plan["id"])]
    assert created["object_type"] == "plan"
    assert created["detail"] == {
        "family_id": plan["id"],
        "version": 1,
        "name": "orders-api",
        "via": "plan",
    }
    assert by_action[("plan.version_created", v2["id"])]["detail"]["version"] == 2
    assert by_action[("plan.created", imported.json()["id"])]["detail"]["via"] == "import/openapi"
    assert by_action[("plan.approved", plan["id"])]["detail"]["comment"] == "fine"
    assert by_action[("plan.approved", v2["id"])]["detail"]["auto_approve"] is True
    assert by_action[("run.queued", run["id"])]["detail"] == {
        "plan_id": plan["id"],
        "plan_version": 1,
    }
    assert by_action[("run.aborted", run["id"])]["detail"]["status"] == "aborted"
    assert by_action[("key.created", str(key.id))]["detail"]["owner"] == "new@example.com"
    ana_events = [e for e in trail if e["actor"] == "ana@example.com"]
    by_hash = select(ApiKey.id).where(ApiKey.key_hash == service.hash_key(ana_key))
    assert {e["actor_key_id"] for e in ana_events} == {str(await session.scalar(by_hash))}
    assert all(e["at"] for e in trail)


async def test_a_refused_change_leaves_no_event(clients: Clients) -> None:
    ana = await clients.scoped(Scope.plan)

    refused = await ana.post(f"{API}/plan", json={"name": "broken"})

    assert refused.status_code == 422
    assert await events(clients) == []


async def test_the_trail_pages_back_and_needs_admin(clients: Clients) -> None:
    ana = await clients.scoped(Scope.plan)
    for n in range(5):
        await ana.post(f"{API}/plan", json=plan_doc(name=f"plan-{n}"))
    everyone_else = await clients.scoped(Scope.read, Scope.plan, Scope.approve, Scope.execute)

    first = await events(clients, limit=2)
    second = await events(clients, limit=2, before=first[-1]["id"])
    rest = await events(clients, before=second[-1]["id"])
    refused = await everyone_else.get(f"{API}/audit")

    names = [e["detail"]["name"] for e in first + second + rest]
    assert names == [f"plan-{n}" for n in (4, 3, 2, 1, 0)]
    assert refused.status_code == 403
    assert refused.json()["scope"] == "admin"
