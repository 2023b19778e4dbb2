"""LLM-assisted planning: a natural-language intent becomes a plan *document* (never code).

The model answers in the plan language's JSON Schema; the result then goes through exactly the
validation, guardrails and ``k6 inspect`` of a hand-written plan. The target always comes from
the request: the model never chooses what gets load-tested.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from pydantic import Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.errors import ProblemError, invalid_body
from app.core.settings import Settings
from app.guardrails.service import check_host
from app.llm.service import LLMFailure, structured_call
from app.plans.load_profiles import PROFILES, Strict
from app.plans.schemas import PlanSpec, Target, plan_json_schema

SYSTEM = """You design HTTP load tests for perf-agent. Reply with one JSON object that is a valid
perf-agent plan (the JSON Schema you are given). Rules:
- Use exactly the target you are given; do not invent other hosts.
- Write scenarios of steps (method, path relative to the base URL, expected status, checks);
  extract values such as tokens with `extract` and reuse them as {{vars.name}}.
- Choose a load profile preset from: %(profiles)s. Stay within %(max_vus)d virtual users and
  %(max_minutes)d minutes in total.
- Turn the user's latency and error goals into `slos` strings such as "p95 < 300ms" or
  "error_rate < 1%%"; if they give none, propose sensible ones.
- Never write JavaScript or any other code: only the JSON plan."""

_PROBLEMS = {
    "not_configured": (503, "No language model is configured"),
    "timeout": (504, "The language model did not answer in time"),
    "provider_error": (502, "The language model failed"),
    "invalid_output": (502, "The language model's plan is not valid"),
}


class IntentIn(Strict):
    intent: str = Field(min_length=3, max_length=2000, description="What to test, in words")
    target: Target
    name: str | None = Field(default=None, max_length=200)
    context: str | None = Field(
        default=None, max_length=20000, description="Endpoints, an API excerpt, constraints"
    )


def is_intent(document: Any) -> bool:
    return isinstance(document, dict) and "intent" in document


def _request(document: dict[str, Any]) -> IntentIn:
    try:
        return IntentIn.model_validate(document)
    except ValidationError as exc:
        raise invalid_body(exc) from exc


async def plan_document_from_intent(
    document: dict[str, Any],
    *,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession] | None,
    plan_id: uuid.UUID,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model's plan as a document, and a description of the call that produced it."""
    request = _request(document)
    check_host(request.target.hostname, settings)  # before spending tokens on a refused host
    prompt = json.dumps(
        {
            "intent": request.intent,
            "target": request.target.model_dump(),
            "context": request.context,
        },
        ensure_ascii=False,
    )
    system = SYSTEM % {
        "profiles": ", ".join(PROFILES),
        "max_vus": settings.max_vus,
        "max_minutes": settings.max_duration_s // 60,
    }
    try:
        spec, call = await structured_call(
            purpose="plan",
            provider_name=settings.llm_planning_provider,
            system=system,
            prompt=prompt,
            output=PlanSpec,
            schema=plan_json_schema(),
            settings=settings,
            sessionmaker=sessionmaker,
            subject_id=plan_id,
        )
    except LLMFailure as exc:
        status, title = _PROBLEMS[exc.kind]
        raise ProblemError(
            f"{exc}; nothing was stored. Write the plan by hand, or try again.",
            code=f"llm.{exc.kind}",
            status=status,
            title=title,
        ) from exc
    generated = spec.model_dump(mode="json", by_alias=True)
    generated["target"] = request.target.model_dump(mode="json", by_alias=True)
    if request.name:
        generated["name"] = request.name
    origin = {
        "provider": call.provider,
        "model": call.model,
        "input_tokens": call.input_tokens,
        "output_tokens": call.output_tokens,
        "latency_ms": round(call.latency_ms, 1),
    }
    return generated, origin
