"""The root-cause narrative: a model explains the findings, and every number it uses is checked.

The model receives the analysis' facts — the verdict, each SLO judged, the baseline
comparisons that moved, the deterministic findings, per-endpoint results and the knee — and
answers in the ``Narrative`` schema (OpenAI structured output, or Claude's forced tool call).
Which provider (design spec §3): OpenAI for structured analysis, Claude for complex
multi-factor regressions (several endpoints moved, or a regression together with saturation or
errors); ``PERF_AGENT_LLM_ANALYSIS_PROVIDER`` can pin one, and any OpenAI-compatible endpoint
works through ``PERF_AGENT_OPENAI_BASE_URL``.

Trust: every number in the answer — its cited evidence and any figure in its prose — must be
one of the facts' numbers (as it is, rounded, or as a percentage of a ratio). One number from
nowhere and the whole narrative is rejected. On no key, a timeout, a provider error, an
invalid or a rejected answer the analysis keeps its deterministic findings and raw metrics
and says why the narrative is missing (design spec §8).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.settings import Settings
from app.llm.service import LLMFailure, structured_call

SYSTEM = """You are a senior performance engineer explaining a load test's results.
You receive FACTS as JSON: the verdict, each SLO objective judged, the comparisons with the
baseline that moved, deterministic findings (already computed from the data), per-endpoint
results (latency in ms, error rates as fractions) and, for a varying load, the knee.
Explain what most likely caused what the findings show, in order of likelihood, and what to
do next. Rules:
- Use only numbers that appear in FACTS. Do not compute new numbers (no sums, differences or
  new ratios); you may write a fraction from FACTS as a percentage.
- Cite the numbers each cause rests on in its evidence, with what each one is.
- Name the endpoint a cause concerns, as it is written in FACTS.
- If the data do not point at a cause, say so; do not guess beyond them.
- Keep the summary under 120 words."""


class CitedNumber(BaseModel):
    value: float = Field(description="A number taken from FACTS")
    meaning: str = Field(max_length=200, description="What it is, e.g. 'p95 of orders in ms'")


class Cause(BaseModel):
    title: str = Field(max_length=200)
    endpoint: str | None = Field(default=None, description="The endpoint concerned, if one")
    explanation: str = Field(max_length=2000)
    confidence: Literal["low", "medium", "high"]
    evidence: list[CitedNumber] = Field(default_factory=list, max_length=10)


class Narrative(BaseModel):
    summary: str = Field(max_length=1500)
    root_causes: list[Cause] = Field(default_factory=list, max_length=5)
    next_steps: list[str] = Field(default_factory=list, max_length=6)


# A number in prose, also when a unit is glued to it (999ms, 2.5x), but not one inside a word
# (p95, e07, http2).
_NUMBER = re.compile(r"(?<![\w.])[-+−]?\d[\d,]*(?:\.\d+)?")


def numbers_in(value: Any) -> Iterable[float]:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | float):
        if math.isfinite(value):
            yield float(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from numbers_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from numbers_in(item)
    elif isinstance(value, str):
        for match in _NUMBER.finditer(value):
            text = match.group().replace(",", "").replace("−", "-")
            try:
                yield float(text)
            except ValueError:
                continue


def _supported(number: float, facts: list[float]) -> bool:
    if abs(number) <= 10 and number == int(number):
        return True  # counts of things ("3 endpoints", "2 runs") and list numbering
    for fact in facts:
        for form in (fact, fact * 100, abs(fact), abs(fact) * 100):
            # As it is, or rounded to what a sentence would show.
            if abs(number - form) <= max(0.011 * abs(form), 0.051):
                return True
    return False


def unsupported_numbers(narrative: Narrative, facts: dict[str, Any]) -> list[float]:
    known = list(numbers_in(facts))
    cited = [c.value for cause in narrative.root_causes for c in cause.evidence]
    prose = [narrative.summary, *narrative.next_steps]
    for cause in narrative.root_causes:
        prose += [cause.title, cause.explanation] + [c.meaning for c in cause.evidence]
    found = [*cited, *numbers_in(prose)]
    return sorted({n for n in found if not _supported(n, known)})


def choose_provider(settings: Settings, facts: dict[str, Any]) -> str:
    pinned = settings.llm_analysis_provider
    if pinned != "auto":
        return pinned
    regressed = {
        c["endpoint"] for c in facts.get("comparisons", []) if c["verdict"] == "regression"
    }
    kinds = {f["kind"] for f in facts.get("findings", [])}
    complex_case = len(regressed - {"*"}) >= 2 or (
        bool(regressed) and bool(kinds & {"saturation", "errors", "errors_under_load"})
    )
    has_openai = settings.openai_api_key is not None
    has_anthropic = settings.anthropic_api_key is not None
    if complex_case and has_anthropic:
        return "anthropic"
    if has_openai:
        return "openai"
    return "anthropic" if has_anthropic else "openai"


def round_floats(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: round_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [round_floats(v) for v in value]
    return value


async def write(
    facts: dict[str, Any],
    *,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession] | None,
    analysis_id: uuid.UUID,
) -> tuple[Narrative | None, dict[str, Any]]:
    """The checked narrative, or ``None``; and what happened (status, provider, usage)."""
    provider = choose_provider(settings, facts)
    try:
        narrative, call = await structured_call(
            purpose="analysis",
            provider_name=provider,
            system=SYSTEM,
            prompt="FACTS:\n" + json.dumps(facts, ensure_ascii=False, default=str),
            output=Narrative,
            schema=Narrative.model_json_schema(),
            settings=settings,
            sessionmaker=sessionmaker,
            subject_id=analysis_id,
        )
    except LLMFailure as exc:
        return None, {"status": exc.kind, "provider": provider, "reason": str(exc)}
    meta = {
        "status": "ok",
        "provider": call.provider,
        "model": call.model,
        "input_tokens": call.input_tokens,
        "output_tokens": call.output_tokens,
        "latency_ms": round(call.latency_ms, 1),
        "llm_call_id": str(call.id),
    }
    strays = unsupported_numbers(narrative, facts)
    if strays:
        shown = ", ".join(f"{n:g}" for n in strays[:10])
        return None, {
            **meta,
            "status": "rejected",
            "reason": f"it cites numbers that are not in the data: {shown}",
            "unsupported_numbers": strays[:20],
        }
    return narrative, meta
