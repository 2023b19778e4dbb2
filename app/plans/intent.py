"""LLM-assisted planning: a natural-language intent becomes a plan *document* (never code).

The model answers in the plan language's JSON Schema; the result then goes through exactly the
validation, guardrails and ``k6 inspect`` of a hand-written plan. The target always comes from
the request: the model never chooses what gets load-tested.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationError, model_validator
from pydantic.json_schema import SkipJsonSchema
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.errors import ProblemError, invalid_body
from app.core.settings import Settings
from app.core.storable import unstorable_text
from app.guardrails.service import check_host
from app.llm.service import LLMFailure, structured_call
from app.plans.load_profiles import (
    PROFILES,
    Breakpoint,
    ConstantArrival,
    Load,
    Ramp,
    RampingArrival,
    Smoke,
    Soak,
    Spike,
    Stress,
    Strict,
    _infer_profile,
)
from app.plans.schemas import PlanSpec, Target

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

# A drafted plan is a document: the plan language's fields that run code as it is are not
# part of what the model may write. ``script`` is a hand-written k6 script (run verbatim) and
# the ``raw`` load is the one only such a script sets. A prompt injection in the intent's
# context must not reach the k6 script path, so these are refused whatever the model answers.
CODE_FIELDS = ("script", "load.profile: raw")
_CODE_REFUSED = "a drafted plan is a document, never code"


def code_fields(document: Any) -> list[str]:
    """Which of :data:`CODE_FIELDS` a plan document carries (a drafted one: none)."""
    if not isinstance(document, dict):
        return []
    found = ["script"] if "script" in document else []
    load = document.get("load")
    if isinstance(load, dict) and load.get("profile") == "raw":
        found.append("load.profile: raw")
    return found


# Every preset but ``raw`` (:data:`app.plans.load_profiles.LoadProfile` without it).
DraftLoad = Annotated[
    Smoke | Load | Ramp | Spike | Stress | Soak | ConstantArrival | RampingArrival | Breakpoint,
    Field(discriminator="profile"),
    BeforeValidator(_infer_profile),
]


class PlanDraft(PlanSpec):
    """A plan as a model may write it: scenarios of steps and a preset load, never a script.

    Its JSON Schema is what the model is given; validating the answer with it refuses a
    ``script`` or a ``raw`` load (and ``system_metrics``, an address to fetch from) even when
    the model writes one against the schema."""

    load: DraftLoad | None = Field(default=None, description="A load profile preset")
    script: SkipJsonSchema[None] = Field(default=None, exclude=True)
    # A Prometheus URL is an address the service fetches from: like the target, not the
    # model's to choose (an injected context could point it anywhere).
    system_metrics: SkipJsonSchema[None] = Field(default=None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _no_code(cls, value: Any) -> Any:
        found = code_fields(value)
        if found:
            raise ValueError(f"{_CODE_REFUSED}; it carries: {', '.join(found)}")
        if isinstance(value, dict) and value.get("system_metrics") is not None:
            raise ValueError(
                "system_metrics: a drafted plan names no Prometheus server (the service would "
                "fetch from it); add one to the plan by hand"
            )
        unstorable = unstorable_text(value)  # the model's fault, not the client's: no 422
        if unstorable is not None:
            raise ValueError(unstorable)
        return value


def draft_json_schema() -> dict[str, Any]:
    """The JSON Schema a model answers in: the plan language without ``script``/``raw``."""
    schema = PlanDraft.model_json_schema(by_alias=True, mode="validation")
    schema["$id"] = "urn:perf-agent:plan:v1"
    schema["title"] = "perf-agent test plan (v1)"
    schema["description"] = "A test plan: scenarios of steps, a load profile preset and SLOs."
    return schema


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
            output=PlanDraft,
            schema=draft_json_schema(),
            settings=settings,
            sessionmaker=sessionmaker,
            subject_id=plan_id,
        )
    except LLMFailure as exc:
        if exc.kind == "invalid_output" and _CODE_REFUSED in str(exc):
            carried = str(exc).split(_CODE_REFUSED, 1)[1]
            raise _code_refused([f for f in CODE_FIELDS if f in carried]) from exc
        status, title = _PROBLEMS[exc.kind]
        raise ProblemError(
            f"{exc}; nothing was stored. Write the plan by hand, or try again.",
            code=f"llm.{exc.kind}",
            status=status,
            title=title,
        ) from exc
    generated = spec.model_dump(mode="json", by_alias=True)
    if code_fields(generated):  # never reached while PlanDraft has no script: kept in case
        raise _code_refused(code_fields(generated))
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


def _code_refused(fields: list[str]) -> ProblemError:
    return ProblemError(
        f"the model's plan carries {', '.join(fields)}: a drafted plan is a document "
        "(scenarios of steps with a preset load), never code such as a hand-written k6 script, "
        "so it was refused and nothing was stored. Write the plan by hand, or try again (and "
        "check the intent's context for instructions aimed at the model).",
        code="llm.invalid_plan",
        status=502,
        title="The language model's plan carries code",
        fields=fields,
    )
