"""The real ``openai`` and ``anthropic`` SDKs accept the fake server's answers and errors."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.llm.fake_llm import FakeLLM, Reply

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "vus": {"type": "integer"}},
    "required": ["name", "vus"],
    "additionalProperties": False,
}
ANSWER = {"name": "checkout", "vus": 20}
MESSAGES: list[Any] = [{"role": "user", "content": "plan a load test"}]
TOOL: Any = {"name": "emit", "description": "Emit the plan.", "input_schema": SCHEMA}


@pytest.fixture
async def oai(fake_llm: FakeLLM) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(
        api_key="test-key", base_url=fake_llm.openai_base_url, max_retries=0, timeout=5.0
    )
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def claude(fake_llm: FakeLLM) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(
        api_key="test-key", base_url=fake_llm.anthropic_base_url, max_retries=0, timeout=5.0
    )
    try:
        yield client
    finally:
        await client.close()


async def ask_openai(client: openai.AsyncOpenAI, **options: Any) -> Any:
    return await client.chat.completions.create(
        model="gpt-test",
        messages=MESSAGES,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "plan", "schema": SCHEMA, "strict": True},
        },
        **options,
    )


async def ask_anthropic(client: anthropic.AsyncAnthropic, **options: Any) -> Any:
    return await client.messages.create(
        model="claude-test",
        max_tokens=1024,
        system="You plan load tests.",
        messages=MESSAGES,
        tools=[TOOL],
        tool_choice={"type": "tool", "name": "emit"},
        **options,
    )


async def test_openai_structured_answer_and_recorded_request(
    fake_llm: FakeLLM, oai: openai.AsyncOpenAI
) -> None:
    fake_llm.enqueue(Reply(json=ANSWER, input_tokens=812, output_tokens=230))

    completion = await ask_openai(oai)

    assert completion.object == "chat.completion"
    assert completion.model == "gpt-test"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert json.loads(choice.message.content) == ANSWER
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (812, 230)
    assert completion.usage.total_tokens == 1042
    [sent] = fake_llm.requests
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.header("authorization") == "Bearer test-key"
    assert sent.body["model"] == "gpt-test"
    assert sent.body["messages"] == MESSAGES
    assert sent.body["response_format"]["json_schema"]["schema"] == SCHEMA
    assert fake_llm.pending == 0


async def test_anthropic_tool_use_answer_and_recorded_request(
    fake_llm: FakeLLM, claude: anthropic.AsyncAnthropic
) -> None:
    fake_llm.enqueue(Reply(json=ANSWER, input_tokens=900, output_tokens=300))

    message = await ask_anthropic(claude)

    assert message.type == "message"
    assert message.model == "claude-test"
    assert message.stop_reason == "tool_use"
    [block] = message.content
    assert block.type == "tool_use"
    assert block.name == "emit"
    assert block.id.startswith("toolu_")
    assert block.input == ANSWER
    assert (message.usage.input_tokens, message.usage.output_tokens) == (900, 300)
    [sent] = fake_llm.requests
    assert (sent.method, sent.path) == ("POST", "/v1/messages")
    # anthropic 2.x sends the API key as `Authorization: Bearer`, not `x-api-key`.
    bearer = (sent.header("authorization") or "").removeprefix("Bearer ")
    assert (sent.header("x-api-key") or bearer) == "test-key"
    assert sent.header("anthropic-version")
    assert sent.body["system"] == "You plan load tests."
    assert sent.body["max_tokens"] == 1024
    assert sent.body["tools"] == [TOOL]
    assert sent.body["tool_choice"] == {"type": "tool", "name": "emit"}


async def test_plain_text_answers(
    fake_llm: FakeLLM, oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    fake_llm.enqueue(Reply(text="not json at all"), Reply(text="nor this"))

    completion = await oai.chat.completions.create(model="gpt-test", messages=MESSAGES)
    message = await claude.messages.create(model="claude-test", max_tokens=64, messages=MESSAGES)

    assert completion.choices[0].message.content == "not json at all"
    assert message.stop_reason == "end_turn"
    [block] = message.content
    assert block.type == "text"
    assert block.text == "nor this"


async def test_anthropic_text_comes_before_the_tool_use_block(
    fake_llm: FakeLLM, claude: anthropic.AsyncAnthropic
) -> None:
    fake_llm.enqueue(Reply(text="Here is the plan.", json=ANSWER, stop_reason="max_tokens"))

    message = await ask_anthropic(claude)

    assert [block.type for block in message.content] == ["text", "tool_use"]
    assert message.stop_reason == "max_tokens"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_slow_reply_times_out_the_client_quickly(
    fake_llm: FakeLLM,
    oai: openai.AsyncOpenAI,
    claude: anthropic.AsyncAnthropic,
    provider: str,
) -> None:
    fake_llm.enqueue(Reply(json=ANSWER, delay_s=2.0))
    started = time.monotonic()

    if provider == "openai":
        with pytest.raises(openai.APITimeoutError):
            await ask_openai(oai, timeout=0.5)
    else:
        with pytest.raises(anthropic.APITimeoutError):
            await ask_anthropic(claude, timeout=0.5)

    assert time.monotonic() - started < 1.5
    assert len(fake_llm.requests) == 1  # recorded before the wait


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
        (429, openai.RateLimitError),
        (400, openai.BadRequestError),
    ],
)
async def test_openai_errors(
    fake_llm: FakeLLM, oai: openai.AsyncOpenAI, status: int, error: type[openai.APIStatusError]
) -> None:
    fake_llm.enqueue(Reply(status=status, error_message="scripted trouble"))

    with pytest.raises(error) as raised:
        await ask_openai(oai)

    assert raised.value.status_code == status
    assert "scripted trouble" in raised.value.message
    assert isinstance(raised.value.body, dict)
    assert set(raised.value.body) == {"message", "type", "param", "code"}
    assert raised.value.request_id is not None


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (400, anthropic.BadRequestError, "invalid_request_error"),
    ],
)
async def test_anthropic_errors(
    fake_llm: FakeLLM,
    claude: anthropic.AsyncAnthropic,
    status: int,
    error: type[anthropic.APIStatusError],
    kind: str,
) -> None:
    fake_llm.enqueue(Reply(status=status, error_message="scripted trouble"))

    with pytest.raises(error) as raised:
        await ask_anthropic(claude)

    assert raised.value.status_code == status
    assert raised.value.type == kind
    assert raised.value.api_message == "scripted trouble"
    assert raised.value.request_id is not None
    if status == 529:
        assert isinstance(raised.value, anthropic.InternalServerError)


async def test_retries_take_the_next_scripted_reply(fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply(status=429, headers={"retry-after-ms": "1"}), Reply(json=ANSWER))
    client = openai.AsyncOpenAI(
        api_key="test-key", base_url=fake_llm.openai_base_url, max_retries=1, timeout=5.0
    )
    try:
        completion = await ask_openai(client)
    finally:
        await client.close()

    assert json.loads(completion.choices[0].message.content or "") == ANSWER
    assert [r.header("x-stainless-retry-count") for r in fake_llm.requests] == ["0", "1"]


async def test_x_should_retry_false_stops_retries(
    fake_llm: FakeLLM,
) -> None:
    fake_llm.enqueue(Reply(status=500, headers={"x-should-retry": "false"}), Reply(json=ANSWER))
    client = anthropic.AsyncAnthropic(
        api_key="test-key", base_url=fake_llm.anthropic_base_url, max_retries=2, timeout=5.0
    )
    try:
        with pytest.raises(anthropic.InternalServerError):
            await ask_anthropic(client)
    finally:
        await client.close()

    assert len(fake_llm.requests) == 1
    assert fake_llm.pending == 1


async def test_no_scripted_reply_is_a_clear_500_that_is_not_retried(fake_llm: FakeLLM) -> None:
    client = openai.AsyncOpenAI(
        api_key="test-key", base_url=fake_llm.openai_base_url, max_retries=2, timeout=5.0
    )
    try:
        with pytest.raises(openai.InternalServerError, match="no reply scripted"):
            await ask_openai(client)
    finally:
        await client.close()

    assert len(fake_llm.requests) == 1


async def test_a_wrong_base_url_is_a_404_with_a_hint(fake_llm: FakeLLM) -> None:
    client = anthropic.AsyncAnthropic(
        api_key="test-key", base_url=fake_llm.url + "/v1", max_retries=0, timeout=5.0
    )
    fake_llm.enqueue(Reply(json=ANSWER))
    try:
        with pytest.raises(anthropic.NotFoundError, match="must not"):
            await ask_anthropic(client)
    finally:
        await client.close()

    assert fake_llm.requests[0].path == "/v1/v1/messages"
    assert fake_llm.pending == 1


async def test_requests_the_real_apis_reject_early_keep_the_scripted_reply(
    fake_llm: FakeLLM,
) -> None:
    fake_llm.enqueue(Reply(json=ANSWER))
    async with httpx.AsyncClient(base_url=fake_llm.url, timeout=5.0) as http:
        no_key = await http.post("/v1/chat/completions", json={"model": "m", "messages": []})
        no_version = await http.post(
            "/v1/messages",
            headers={"x-api-key": "k"},
            json={"model": "m", "messages": [], "max_tokens": 1},
        )
        no_max_tokens = await http.post(
            "/v1/messages",
            headers={"x-api-key": "k", "anthropic-version": "2023-06-01"},
            json={"model": "m", "messages": []},
        )

    assert no_key.status_code == 401
    assert no_key.json()["error"]["type"] == "invalid_request_error"
    assert no_version.status_code == 400
    assert no_version.json()["type"] == "error"
    assert no_max_tokens.status_code == 400
    assert "max_tokens" in no_max_tokens.json()["error"]["message"]
    assert fake_llm.pending == 1


async def test_stop_cuts_a_sleeping_reply_short() -> None:
    server = FakeLLM().start()
    server.enqueue(Reply(json=ANSWER, delay_s=30))
    client = openai.AsyncOpenAI(
        api_key="test-key", base_url=server.openai_base_url, max_retries=0, timeout=10.0
    )
    try:
        call = asyncio.create_task(ask_openai(client))
        await asyncio.to_thread(server.wait_for_requests, 1)
        started = time.monotonic()
        await asyncio.to_thread(server.stop)
        stopped_in = time.monotonic() - started
        with pytest.raises(openai.APIConnectionError):
            await call
    finally:
        server.stop()
        await client.close()

    assert stopped_in < 1.0
