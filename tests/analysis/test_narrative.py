"""The root-cause narrative through the real openai/anthropic SDKs against a local fake server:
a good answer, a slow one, an error, and one citing a number that is not in the data."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.analysis.narrative import Narrative, unsupported_numbers
from app.core.settings import Settings
from app.models import LLMCall
from tests.builders import API, add_seconds, make_plan, make_run, noisy, result
from tests.llm.fake_llm import FakeLLM, Reply


async def regressed_run(
    session: AsyncSession, *, slow: tuple[str, ...] = ("list_orders",)
) -> dict[str, str]:
    """A baseline and a run in which the ``slow`` endpoints' p95 went from 100 to 210 ms."""
    plan = await make_plan(session)
    names = ("list_orders", "create_order")
    before = await make_run(session, plan, results=[result("*", p95=100)] + [
        result(n, p95=100) for n in names])  # fmt: skip
    await add_seconds(session, before, {n: noisy(100, i) for i, n in enumerate(names)})
    after = await make_run(session, plan, results=[result("*", p95=210)] + [
        result(n, p95=210 if n in slow else 100) for n in names])  # fmt: skip
    await add_seconds(
        session, after, {n: noisy(210 if n in slow else 100, 10 + i) for i, n in enumerate(names)}
    )
    return {"run_id": str(after.id), "baseline_run_ids": [str(before.id)]}  # type: ignore[dict-item]


def good_story(**changes: Any) -> dict[str, Any]:
    story: dict[str, Any] = {
        "summary": "list_orders got slower: its p95 rose from 100 ms to 210 ms (+110%) while "
        "create_order stayed at 100 ms.",
        "root_causes": [
            {
                "title": "A change confined to list_orders",
                "endpoint": "list_orders",
                "explanation": "Only this endpoint moved (Cliff's δ 1.0), so the cause is in its "
                "own path, such as a new query or a lost index.",
                "confidence": "high",
                "evidence": [
                    {"value": 210.0, "meaning": "p95 of list_orders in ms"},
                    {"value": 100.0, "meaning": "baseline p95 of list_orders in ms"},
                ],
            }
        ],
        "next_steps": ["Compare the queries list_orders runs with the baseline's."],
    }
    story.update(changes)
    return story


def use_openai(settings: Settings, fake: FakeLLM, timeout_s: float = 2.0) -> None:
    settings.openai_api_key = SecretStr("test-key")
    settings.openai_base_url = fake.openai_base_url
    settings.llm_timeout_s = timeout_s


async def calls(session: AsyncSession) -> list[LLMCall]:
    return list((await session.scalars(select(LLMCall).where(LLMCall.purpose == "analysis"))).all())


async def test_a_good_answer_becomes_the_narrative_with_its_usage_recorded(
    client: AsyncClient, settings: Settings, fake_llm: FakeLLM, session: AsyncSession
) -> None:
    use_openai(settings, fake_llm)
    fake_llm.enqueue(Reply(json=good_story(), input_tokens=1450, output_tokens=310))

    response = await client.post(f"{API}/analyse", json=await regressed_run(session))

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["narrative"]["root_causes"][0]["endpoint"] == "list_orders"
    meta = body["narrative_meta"]
    assert (meta["status"], meta["provider"], meta["input_tokens"]) == ("ok", "openai", 1450)
    sent = fake_llm.requests[0].body
    assert sent["response_format"]["json_schema"]["name"] == "Narrative"
    facts = sent["messages"][1]["content"]
    assert '"list_orders"' in facts
    assert '"regression"' in facts
    [call] = await calls(session)
    assert (call.outcome, call.output_tokens, str(call.subject_id)) == ("ok", 310, body["id"])
    report = (await client.get(f"{API}/analyses/{body['id']}/report.md")).text
    assert "**Root cause** (written by openai" in report
    assert "A change confined to list_orders" in report
    page = (await client.get(body["links"]["report_html"])).text
    assert "A change confined to list_orders" in page


async def test_a_slow_model_times_out_and_the_analysis_stands_on_its_findings(
    client: AsyncClient, settings: Settings, fake_llm: FakeLLM, session: AsyncSession
) -> None:
    use_openai(settings, fake_llm, timeout_s=0.5)
    fake_llm.enqueue(Reply(json=good_story(), delay_s=3))

    response = await client.post(f"{API}/analyse", json=await regressed_run(session))

    assert response.status_code == 201
    body = response.json()
    assert body["narrative"] is None
    assert body["narrative_meta"]["status"] == "timeout"
    assert any(w.startswith("No narrative (timeout") for w in body["warnings"])
    # Still a useful analysis: the verdict, the regression and its numbers.
    assert body["verdict"] == "fail"
    assert [f["endpoint"] for f in body["findings"] if f["kind"] == "regression"] == ["list_orders"]
    assert [c.outcome for c in await calls(session)] == ["timeout"]
    report = (await client.get(f"{API}/analyses/{body['id']}/report.md")).text
    assert "*No narrative: timeout" in report


async def test_a_failing_model_leaves_the_deterministic_findings(
    client: AsyncClient, settings: Settings, fake_llm: FakeLLM, session: AsyncSession
) -> None:
    use_openai(settings, fake_llm)
    fake_llm.enqueue(Reply(status=500))

    body = (await client.post(f"{API}/analyse", json=await regressed_run(session))).json()

    assert body["narrative"] is None
    assert body["narrative_meta"]["status"] == "provider_error"
    assert any(f["kind"] == "regression" for f in body["findings"])


async def test_an_answer_citing_a_number_not_in_the_data_is_rejected(
    client: AsyncClient, settings: Settings, fake_llm: FakeLLM, session: AsyncSession
) -> None:
    use_openai(settings, fake_llm)
    invented = good_story(summary="list_orders' p95 rose to 742.5 ms under 37 concurrent users.")
    fake_llm.enqueue(Reply(json=invented))

    body = (await client.post(f"{API}/analyse", json=await regressed_run(session))).json()

    assert body["narrative"] is None
    meta = body["narrative_meta"]
    assert meta["status"] == "rejected"
    assert meta["unsupported_numbers"] == [37.0, 742.5]
    assert "742.5" in meta["reason"]
    [call] = await calls(session)
    assert call.outcome == "rejected"


async def test_a_multi_factor_regression_goes_to_claude(
    client: AsyncClient, settings: Settings, fake_llm: FakeLLM, session: AsyncSession
) -> None:
    use_openai(settings, fake_llm)
    settings.anthropic_api_key = SecretStr("test-key")
    settings.anthropic_base_url = fake_llm.anthropic_base_url
    fake_llm.enqueue(Reply(json=good_story()))

    body = (
        await client.post(
            f"{API}/analyse",
            json=await regressed_run(session, slow=("list_orders", "create_order")),
        )
    ).json()

    assert fake_llm.requests[0].path == "/v1/messages"
    assert fake_llm.requests[0].body["tool_choice"] == {"type": "tool", "name": "Narrative"}
    assert body["narrative_meta"]["provider"] == "anthropic"
    assert body["narrative"] is not None


async def test_without_a_key_there_is_no_call_and_no_warning(
    client: AsyncClient, fake_llm: FakeLLM, session: AsyncSession
) -> None:
    body = (await client.post(f"{API}/analyse", json=await regressed_run(session))).json()

    assert body["narrative_meta"]["status"] == "not_configured"
    assert not any("narrative" in w for w in body["warnings"])
    assert fake_llm.requests == []


def test_numbers_are_checked_as_written_rounded_or_as_percentages() -> None:
    facts = {"p95_ms": 210.37, "change": 1.1037, "error_rate": 0.0523, "name": "p95 of e07"}
    story = Narrative(
        summary="p95 went to 210.4 ms (210 ms), +110% — errors at 5.2% on e07; p99 2 runs.",
        root_causes=[],
        next_steps=["Look at step 3."],
    )

    assert unsupported_numbers(story, facts) == []
    assert unsupported_numbers(Narrative(summary="p95 is 250 ms"), facts) == [250.0]
