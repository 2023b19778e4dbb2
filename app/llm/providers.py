"""Providers behind one call shape: a system text, a prompt and a JSON Schema in, a JSON object
out. OpenAI uses ``response_format: json_schema``; Anthropic a forced tool call."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

import anthropic
import openai

from app.core.settings import Settings


class ProviderError(Exception):
    """The provider answered with an error (rate limit, 5xx, refusal …)."""


class ProviderTimeout(Exception):
    """No answer within the timeout."""


class NotConfigured(Exception):
    """No API key for this provider."""


@dataclass(frozen=True)
class Completion:
    data: Any
    model: str
    input_tokens: int | None
    output_tokens: int | None


class Provider(Protocol):
    name: str
    model: str

    async def complete_json(
        self, *, system: str, prompt: str, schema: dict[str, Any], schema_name: str
    ) -> Completion: ...


def _decode(text: str | None) -> Any:
    if not text:
        raise ProviderError("the model returned no content")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProviderError(f"the model's answer is not JSON: {exc}") from exc


class OpenAIProvider:
    name = "openai"

    def __init__(self, settings: Settings) -> None:
        if settings.openai_api_key is None:
            raise NotConfigured("set PERF_AGENT_OPENAI_API_KEY to use OpenAI")
        self.model = settings.openai_model
        self._client = openai.AsyncOpenAI(
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.openai_base_url,
            timeout=settings.llm_timeout_s,
            max_retries=0,  # the caller's deadline is the whole budget
        )

    async def complete_json(
        self, *, system: str, prompt: str, schema: dict[str, Any], schema_name: str
    ) -> Completion:
        try:
            response = await self._client.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": system},
                    {"role": "user", "content": prompt},
                ],
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": schema_name, "schema": schema, "strict": False},
                },
            )
        except openai.APITimeoutError as exc:
            raise ProviderTimeout(str(exc)) from exc
        except openai.APIError as exc:
            raise ProviderError(f"OpenAI: {exc}") from exc
        finally:
            await self._client.close()
        message = response.choices[0].message
        if getattr(message, "refusal", None):
            raise ProviderError(f"the model refused: {message.refusal}")
        usage = response.usage
        return Completion(
            data=_decode(message.content),
            model=response.model or self.model,
            input_tokens=usage.prompt_tokens if usage else None,
            output_tokens=usage.completion_tokens if usage else None,
        )


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, settings: Settings) -> None:
        if settings.anthropic_api_key is None:
            raise NotConfigured("set PERF_AGENT_ANTHROPIC_API_KEY to use Anthropic")
        self.model = settings.anthropic_model
        self._client = anthropic.AsyncAnthropic(
            api_key=settings.anthropic_api_key.get_secret_value(),
            base_url=settings.anthropic_base_url,
            timeout=settings.llm_timeout_s,
            max_retries=0,
        )

    async def complete_json(
        self, *, system: str, prompt: str, schema: dict[str, Any], schema_name: str
    ) -> Completion:
        try:
            response = await self._client.messages.create(
                model=self.model,
                max_tokens=4096,
                system=system,
                messages=[{"role": "user", "content": prompt}],
                tools=[
                    {
                        "name": schema_name,
                        "description": "Return the result through this tool.",
                        "input_schema": schema,
                    }
                ],
                tool_choice={"type": "tool", "name": schema_name},
            )
        except anthropic.APITimeoutError as exc:
            raise ProviderTimeout(str(exc)) from exc
        except anthropic.APIError as exc:
            raise ProviderError(f"Anthropic: {exc}") from exc
        finally:
            await self._client.close()
        for block in response.content:
            if block.type == "tool_use" and block.name == schema_name:
                data = block.input
                break
        else:
            raise ProviderError("the model did not call the output tool")
        return Completion(
            data=data,
            model=response.model or self.model,
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
        )


def provider_for(name: str, settings: Settings) -> Provider:
    if name == "anthropic":
        return AnthropicProvider(settings)
    return OpenAIProvider(settings)
