"""LLM-assisted planning through the real openai/anthropic SDKs against a local fake server."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.settings import Settings
from app.models import LLMCall, Plan
from tests.builders import API
from tests.llm.fake_llm import FakeLLM, Reply

TARGET = {"base_url": "http://127.0.0.1:8001", "environment": "local"}
INTENT = {"intent": "browse products then check out, 10 users for 2 minutes", "target": TARGET}


def model_plan(**changes: Any) -> dict[str, Any]:
    plan: dict[str, Any] = {
        "name": "checkout",
        # The model names some other host: the request's target must win.
        "target": {"base_url": "https://api.example.com"},
        "scenarios": [
            {
                "name": "buyer",
                "steps": [
                    {"name": "products", "path": "/api/products"},
                    {"name": "order", "method": "POST", "path": "/api/orders",
                     "body": {"items": [{"product_id": 1, "quantity": 1}]},
                     "expect_status": 201},
                ],
            }
        ],
        "load": {"profile": "load", "vus": 10, "duration": "2m"},
        "slos": ["p95 < 300ms", "error_rate < 1%"],
    }  # fmt: skip
    plan.update(changes)
    return plan


def use_openai(settings: Settings, fake: FakeLLM) -> None:
    settings.openai_api_key = SecretStr("test-key")
    settings.openai_base_url = fake.openai_base_url
    settings.llm_timeout_s = 1.0


async def stored_plans(session: AsyncSession) -> list[Plan]:
    return list((await session.scalars(select(Plan))).all())


async def llm_calls(session: AsyncSession) -> list[LLMCall]:
    return list((await session.scalars(select(LLMCall))).all())


async def test_an_intent_becomes_a_validated_draft_plan_on_the_requested_target(
    client: AsyncClient, settings: Settings, fake_llm: FakeLLM, session: AsyncSession
) -> None:
    use_openai(settings, fake_llm)
    fake_llm.enqueue(Reply(json=model_plan(), input_tokens=812, output_tokens=230))

    response = await client.post(f"{API}/plan", json=INTENT)

    assert response.status_code == 201, response.text
    plan = response.json()
    assert plan["status"] == "draft"
    assert plan["spec"]["target"]["base_url"] == TARGET["base_url"]
    assert "api.example.com" not in plan["script"]
    sent = fake_llm.requests[0].body
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"]["$id"] == "urn:perf-agent:plan:v1"
    assert "browse products" in sent["messages"][1]["content"]
    [call] = await llm_calls(session)
    assert (call.purpose, call.provider, call.outcome) == ("plan", "openai", "ok")
    assert (call.input_tokens, call.output_tokens) == (812, 230)
    assert str(call.subject_id) == plan["id"]


async def test_a_slow_model_times_out_and_nothing_is_stored(
    client: AsyncClient, settings: Settings, fake_llm: FakeLLM, session: AsyncSession
) -> None:
    use_openai(settings, fake_llm)
    settings.llm_timeout_s = 0.5
    fake_llm.enqueue(Reply(json=model_plan(), delay_s=3))

    response = await client.post(f"{API}/plan", json=INTENT)

    assert response.status_code == 504
    assert response.json()["code"] == "llm.timeout"
    assert "nothing was stored" in response.json()["detail"]
    assert await stored_plans(session) == []
    assert [c.outcome for c in await llm_calls(session)] == ["timeout"]


async def test_a_failing_model_is_a_502_problem(
    client: AsyncClient, settings: Settings, fake_llm: FakeLLM, session: AsyncSession
) -> None:
    use_openai(settings, fake_llm)
    fake_llm.enqueue(Reply(status=500))

    response = await client.post(f"{API}/plan", json=INTENT)

    assert response.status_code == 502
    assert response.json()["code"] == "llm.provider_error"
    assert await stored_plans(session) == []


async def test_an_invalid_plan_from_the_model_is_refused_with_its_errors(
    client: AsyncClient, settings: Settings, fake_llm: FakeLLM, session: AsyncSession
) -> None:
    use_openai(settings, fake_llm)
    broken = model_plan()
    del broken["load"]
    fake_llm.enqueue(Reply(json=broken))

    response = await client.post(f"{API}/plan", json=INTENT)

    assert response.status_code == 502
    problem = response.json()
    assert problem["code"] == "llm.invalid_output"
    assert "load" in problem["detail"]
    assert await stored_plans(session) == []


async def test_text_instead_of_json_is_invalid_output(
    client: AsyncClient, settings: Settings, fake_llm: FakeLLM
) -> None:
    use_openai(settings, fake_llm)
    fake_llm.enqueue(Reply(text="import http from 'k6/http'; export default function () {}"))

    response = await client.post(f"{API}/plan", json=INTENT)

    assert response.status_code == 502
    assert response.json()["code"] == "llm.provider_error"
    assert "not JSON" in response.json()["detail"]


async def test_without_a_key_the_intent_is_refused_clearly(
    client: AsyncClient, settings: Settings
) -> None:
    settings.openai_api_key = None

    response = await client.post(f"{API}/plan", json=INTENT)

    assert response.status_code == 503
    assert response.json()["code"] == "llm.not_configured"


async def test_a_refused_host_is_refused_before_the_model_is_asked(
    client: AsyncClient, settings: Settings, fake_llm: FakeLLM
) -> None:
    use_openai(settings, fake_llm)

    response = await client.post(
        f"{API}/plan", json={**INTENT, "target": {"base_url": "https://shop.prod.example.com"}}
    )

    assert response.status_code == 422
    assert response.json()["code"] == "guardrail.host_denied"
    assert fake_llm.requests == []


async def test_claude_can_plan_through_a_forced_tool_call(
    client: AsyncClient, settings: Settings, fake_llm: FakeLLM, session: AsyncSession
) -> None:
    settings.llm_planning_provider = "anthropic"
    settings.anthropic_api_key = SecretStr("test-key")
    settings.anthropic_base_url = fake_llm.anthropic_base_url
    fake_llm.enqueue(Reply(json=model_plan(), input_tokens=900, output_tokens=300))

    response = await client.post(f"{API}/plan", json=INTENT)

    assert response.status_code == 201, response.text
    sent = fake_llm.requests[0].body
    assert sent["tool_choice"] == {"type": "tool", "name": "PlanSpec"}
    [call] = await llm_calls(session)
    assert (call.provider, call.input_tokens, call.output_tokens) == ("anthropic", 900, 300)
