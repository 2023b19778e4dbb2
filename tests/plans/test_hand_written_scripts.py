"""Hand-written k6 scripts are stored only where they can run confined: inside the sandbox, or
where an administrator explicitly allowed them without one."""

from __future__ import annotations

from httpx import AsyncClient

from app.core.settings import Settings
from tests.builders import API

SCRIPT = "export const options = { vus: 2, duration: '3s' };\nexport default function () {}\n"


def script_plan() -> dict[str, object]:
    return {
        "name": "hand-written",
        "target": {"base_url": "http://127.0.0.1:9", "environment": "local"},
        "script": SCRIPT,
    }


async def test_without_a_sandbox_a_hand_written_script_is_refused(
    client: AsyncClient, settings: Settings
) -> None:
    settings.sandbox = "off"

    response = await client.post(f"{API}/plan", json=script_plan())

    assert response.status_code == 422
    assert response.json()["code"] == "guardrail.unsandboxed_script"
    assert "PERF_AGENT_ALLOW_UNSANDBOXED_SCRIPTS" in response.json()["detail"]


async def test_without_a_sandbox_generated_plans_are_still_stored(
    client: AsyncClient, settings: Settings
) -> None:
    settings.sandbox = "off"
    plan = {**script_plan(), "endpoints": [{"name": "home", "path": "/"}]}
    plan.pop("script")
    plan["load"] = {"profile": "smoke"}

    response = await client.post(f"{API}/plan", json=plan)

    assert response.status_code == 201, response.text


async def test_an_administrator_may_allow_unsandboxed_scripts(
    client: AsyncClient, settings: Settings
) -> None:
    settings.sandbox = "off"
    settings.allow_unsandboxed_scripts = True

    response = await client.post(f"{API}/plan", json=script_plan())

    assert response.status_code == 201, response.text
    assert response.json()["spec"]["load"]["max_vus"] == 2


async def test_a_required_sandbox_that_is_missing_is_a_503_not_a_500(
    client: AsyncClient, settings: Settings, monkeypatch: object
) -> None:
    from app.k6 import sandbox

    settings.sandbox = "required"
    missing = sandbox.SandboxStatus(False, "bwrap not installed (test)")
    monkeypatch.setattr(sandbox, "status", lambda _settings: missing)  # type: ignore[attr-defined]

    response = await client.post(f"{API}/plan", json=script_plan())

    assert response.status_code == 503
    assert response.json()["code"] == "sandbox.unavailable"
