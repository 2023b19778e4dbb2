"""A YAML workflow with login → token → authenticated calls, driven by CSV users (real k6)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.settings import Settings
from app.runs.worker import Worker
from tests.builders import API, approve

pytestmark = pytest.mark.k6
WORKFLOW = Path(__file__).resolve().parents[2] / "app" / "demo" / "workflow.yaml"


def workflow_yaml(base_url: str, **changes: object) -> str:
    plan = yaml.safe_load(WORKFLOW.read_text())
    plan["target"]["base_url"] = base_url
    plan["load"] = {"profile": "load", "vus": 2, "duration": "2s"}
    plan.update(changes)
    return yaml.safe_dump(plan)


async def post_yaml(client: AsyncClient, text: str) -> dict[str, object]:
    response = await client.post(
        f"{API}/plan", content=text, headers={"Content-Type": "application/yaml"}
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    await approve(client, body)
    return body


async def test_login_token_workflow_runs_with_every_check_passing(
    committed_client: AsyncClient,
    committed: async_sessionmaker[AsyncSession],
    settings: Settings,
    demo_target: str,
) -> None:
    plan = await post_yaml(committed_client, workflow_yaml(demo_target))
    queued = await committed_client.post(f"{API}/execute", json={"plan_id": plan["id"]})

    await Worker(committed, settings).run_once()

    run = (await committed_client.get(queued.headers["location"])).json()
    assert run["status"] == "succeeded", run["error"]
    assert run["exit_code"] == 0
    steps = {r["endpoint"]: r for r in run["results"]}
    assert {"login", "my_orders", "place_order"} <= set(steps)
    for name in ("login", "my_orders", "place_order"):
        assert steps[name]["requests"] > 0
        assert steps[name]["failures"] == 0
    checks = {c["name"]: c for c in run["checks"]}
    assert "login: extracted token" in checks
    assert checks['place_order: #1 customer == "{{data.username}}"']["group"] == "checkout"
    assert all(c["fails"] == 0 and c["passes"] > 0 for c in run["checks"]), run["checks"]


async def test_dry_run_reports_each_step_of_a_working_workflow(
    client: AsyncClient, demo_target: str
) -> None:
    plan = await post_yaml(client, workflow_yaml(demo_target))

    response = await client.post(f"{API}/plans/{plan['id']}/dry-run")

    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True, body
    assert [(s["name"], s["status"]) for s in body["steps"]] == [
        ("login", 200),
        ("my_orders", 200),
        ("place_order", 201),
    ]
    assert all(c["passed"] for c in body["checks"])


async def test_a_dry_run_ignores_slo_thresholds_that_one_iteration_cannot_meet(
    client: AsyncClient, demo_target: str
) -> None:
    # The demo's recent_orders is slow on purpose: its p95 < 100ms objective fails under load,
    # and a single iteration would cross it too. A dry run checks the steps, not the SLOs.
    plan = await post_yaml(
        client, workflow_yaml(demo_target, slos=["p95 < 1ms", {"objective": "p99 < 1ms"}])
    )

    body = (await client.post(f"{API}/plans/{plan['id']}/dry-run")).json()

    assert body["ok"] is True, body
    assert body["exit_code"] == 0
    assert body["error"] is None


async def test_dry_run_shows_where_a_workflow_breaks(client: AsyncClient, demo_target: str) -> None:
    broken = yaml.safe_load(workflow_yaml(demo_target))
    broken["data"]["users"]["inline"] = "username,password\nuser1,wrong\n"
    plan = await post_yaml(client, yaml.safe_dump(broken))

    body = (await client.post(f"{API}/plans/{plan['id']}/dry-run")).json()

    assert body["ok"] is False
    assert body["steps"][0] == {**body["steps"][0], "name": "login", "status": 401}
    failed = {c["name"] for c in body["checks"] if not c["passed"]}
    assert {"login: status in [200]", "login: extracted token"} <= failed


async def test_a_plan_whose_secret_is_missing_fails_its_run_clearly(
    committed_client: AsyncClient,
    committed: async_sessionmaker[AsyncSession],
    settings: Settings,
    demo_target: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PERF_AGENT_SECRET_SHOP_TOKEN", raising=False)
    target = {
        "base_url": demo_target,
        "environment": "local",
        "auth": {"type": "bearer", "secret": "SHOP_TOKEN"},
    }
    plan = await post_yaml(committed_client, workflow_yaml(demo_target, target=target))
    queued = await committed_client.post(f"{API}/execute", json={"plan_id": plan["id"]})

    await Worker(committed, settings).run_once()

    run = (await committed_client.get(queued.headers["location"])).json()
    assert run["status"] == "failed"
    assert "PERF_AGENT_SECRET_SHOP_TOKEN is not set" in run["error"]


async def test_a_secret_reaches_k6_only_at_run_time(
    client: AsyncClient, demo_target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERF_AGENT_SECRET_SHOP_TOKEN", "s3cr3t-value")
    target = {
        "base_url": demo_target,
        "environment": "local",
        "auth": {"type": "bearer", "secret": "SHOP_TOKEN"},
    }
    plan = await post_yaml(client, workflow_yaml(demo_target, target=target))

    dry = (await client.post(f"{API}/plans/{plan['id']}/dry-run")).json()

    assert "s3cr3t-value" not in str(plan)
    assert dry["exit_code"] == 0  # authHeaders() found the secret in k6's environment
    assert dry["steps"][0]["status"] == 200
