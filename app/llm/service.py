"""One structured call to a model, bounded in time, validated, and recorded whatever happens."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core import metrics
from app.core.settings import Settings
from app.llm.providers import (
    Completion,
    NotConfigured,
    ProviderError,
    ProviderTimeout,
    provider_for,
)
from app.models import LLMCall

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)


class LLMFailure(Exception):
    """Why a model call produced nothing usable; ``kind`` is stable."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # not_configured | timeout | provider_error | invalid_output


@dataclass(frozen=True)
class CallRecord:
    id: uuid.UUID
    provider: str
    model: str
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float


async def _record(sessionmaker: async_sessionmaker[AsyncSession] | None, call: LLMCall) -> None:
    # Usage is kept even when the request that asked fails, so it has a transaction of its own.
    log.info(
        "llm %s via %s/%s: %s in %.0f ms, tokens in=%s out=%s",
        call.purpose,
        call.provider,
        call.model,
        call.outcome,
        call.latency_ms,
        call.input_tokens,
        call.output_tokens,
    )
    if sessionmaker is None:
        return
    try:
        async with sessionmaker() as session, session.begin():
            session.add(call)
    except Exception:
        log.exception("could not record LLM usage")


async def structured_call(
    *,
    purpose: str,
    provider_name: str,
    system: str,
    prompt: str,
    output: type[T],
    schema: dict[str, Any],
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession] | None,
    subject_id: uuid.UUID | None = None,
) -> tuple[T, CallRecord]:
    """Ask ``provider_name`` for JSON matching ``schema`` and validate it as ``output``."""
    try:
        provider = provider_for(provider_name, settings)
    except NotConfigured as exc:
        metrics.LLM_CALLS.labels(provider=provider_name, outcome="not_configured").inc()
        raise LLMFailure("not_configured", str(exc)) from exc
    started = time.monotonic()
    completion: Completion | None = None
    outcome, error = "ok", None
    result: T | None = None
    try:
        completion = await asyncio.wait_for(
            provider.complete_json(
                system=system, prompt=prompt, schema=schema, schema_name=output.__name__
            ),
            settings.llm_timeout_s,
        )
        result = output.model_validate(completion.data)
    except (TimeoutError, ProviderTimeout):
        outcome, error = "timeout", f"no answer within {settings.llm_timeout_s:g}s"
    except ProviderError as exc:
        outcome, error = "provider_error", str(exc)
    except ValidationError as exc:
        outcome = "invalid_output"
        error = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:10])
    latency_ms = (time.monotonic() - started) * 1000
    metrics.LLM_CALLS.labels(provider=provider.name, outcome=outcome).inc()
    metrics.LLM_CALL_DURATION.labels(provider=provider.name, outcome=outcome).observe(
        latency_ms / 1000
    )
    call = LLMCall(
        id=uuid.uuid4(),
        purpose=purpose,
        provider=provider.name,
        model=completion.model if completion else provider.model,
        outcome=outcome,
        input_tokens=completion.input_tokens if completion else None,
        output_tokens=completion.output_tokens if completion else None,
        latency_ms=latency_ms,
        error=error,
        subject_id=subject_id,
    )
    await _record(sessionmaker, call)
    if result is None:
        raise LLMFailure(outcome, error or "no result")
    return result, CallRecord(
        id=call.id,
        provider=call.provider,
        model=call.model,
        input_tokens=call.input_tokens,
        output_tokens=call.output_tokens,
        latency_ms=latency_ms,
    )
