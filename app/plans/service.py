"""Turn a submitted document into a validated, stored plan with its k6 script."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    ProblemError,
    UnsupportedMediaType,
    invalid_body,
)
from app.core.media import media_type
from app.core.settings import Settings
from app.datasets import service as datasets
from app.guardrails.service import check_plan
from app.models import Plan, PlanStatus
from app.models.base import utcnow
from app.plans import intent, k6script
from app.plans.importers import ImportProblem, har, openapi
from app.plans.load_profiles import Raw, parse_duration
from app.plans.repository import PlanRepository
from app.plans.schemas import PlanSpec, effective_slos
from app.runs.k6 import ScriptRejected, inspect_script

JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
MAX_DOCUMENT_BYTES = 1_000_000


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors/aliases: a plan never needs them and they allow 'billion laughs'."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases are not accepted in plans", event.start_mark
            )
        return super().compose_node(parent, index)


def document_type(content_type: str | None) -> str:
    """The media type of a JSON or YAML document; any other is a 415 problem."""
    kind = media_type(content_type)
    if kind not in JSON_TYPES + YAML_TYPES:
        raise UnsupportedMediaType(
            f"send the plan as application/json or application/yaml, not {kind or 'no type'!r}",
            accepted=list(JSON_TYPES + YAML_TYPES),
        )
    return kind


def parse_document(body: bytes, content_type: str | None) -> tuple[Any, str]:
    """Decode a JSON or YAML request body; errors are 400/413/415 problems."""
    kind = document_type(content_type)
    if len(body) > MAX_DOCUMENT_BYTES:
        raise ProblemError(
            f"the plan is {len(body)} bytes; the limit is {MAX_DOCUMENT_BYTES}",
            code="plan.too_large",
            status=413,
            title="Plan too large",
        )
    if not body.strip():
        raise ProblemError("the request body is empty", code="plan.empty", title="Empty plan")
    if kind in JSON_TYPES:
        try:
            return json.loads(body), "json"
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ProblemError(
                f"the body is not valid JSON: {exc}", code="plan.malformed_json", title="Bad JSON"
            ) from exc
    try:
        return yaml.load(body, Loader=_NoAliasLoader), "yaml"
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ProblemError(
            f"the body is not valid YAML{where}: {problem}",
            code="plan.malformed_yaml",
            title="Bad YAML",
        ) from exc


def validate_spec(document: Any) -> PlanSpec:
    if not isinstance(document, dict):
        raise InvalidInput(
            "a plan is a mapping with name, target, endpoints, load and slos",
            code="plan.not_a_mapping",
        )
    try:
        return PlanSpec.model_validate(document)
    except ValidationError as exc:
        raise invalid_body(exc, model=PlanSpec, document=document) from exc


async def _build(
    *,
    body: bytes,
    content_type: str | None,
    settings: Settings,
    version: int,
    sessionmaker: async_sessionmaker[AsyncSession] | None = None,
    session: AsyncSession | None = None,
) -> Plan:
    plan_id = uuid.uuid4()
    document, fmt = parse_document(body, content_type)
    if session is not None:
        await datasets.resolve_references(session, document)
    if intent.is_intent(document):
        document, _ = await intent.plan_document_from_intent(
            document, settings=settings, sessionmaker=sessionmaker, plan_id=plan_id
        )
        fmt = "intent"
    return await _from_document(
        document, plan_id=plan_id, source=body, fmt=fmt, settings=settings, version=version
    )


async def _from_document(
    document: Any,
    *,
    plan_id: uuid.UUID,
    source: bytes,
    fmt: str,
    settings: Settings,
    version: int,
) -> Plan:
    spec = validate_spec(document)
    if spec.script is not None:
        spec = await _with_script_load(spec, settings)
    check_plan(spec, settings)
    slos, _ = effective_slos(spec)
    script = k6script.render(spec, slos=slos, version=version)
    try:
        # k6 itself must accept the script before anything is stored.
        await inspect_script(settings.k6_binary, script)
    except ScriptRejected as exc:
        raise InvalidInput(f"k6 rejected the script: {exc}", code="plan.script_rejected") from exc
    return Plan(
        id=plan_id,
        family_id=plan_id,
        name=spec.name,
        version=version,
        status=PlanStatus.draft,
        spec=spec.model_dump(mode="json", by_alias=True),
        source=source.decode("utf-8", errors="replace"),
        source_format=fmt,
        script=script,
        script_sha256=k6script.sha256(script),
    )


async def import_plan(
    repo: PlanRepository,
    *,
    kind: str,
    body: bytes,
    content_type: str | None,
    settings: Settings,
    options: dict[str, Any],
) -> Plan:
    """An OpenAPI document or a HAR recording becomes a draft plan (version 1)."""
    document, _ = parse_document(body, content_type)
    if not isinstance(document, dict):
        raise InvalidInput(f"a {kind} document is a JSON/YAML object", code="import.invalid")
    try:
        if kind == "openapi":
            generated = openapi.plan_from_openapi(document, **options)
        else:
            generated = har.plan_from_har(document, **options)
    except ImportProblem as exc:
        raise InvalidInput(str(exc), code="import.invalid") from exc
    plan_id = uuid.uuid4()
    plan = await _from_document(
        generated, plan_id=plan_id, source=body, fmt=kind, settings=settings, version=1
    )
    return await repo.add(plan)


async def _with_script_load(spec: PlanSpec, settings: Settings) -> PlanSpec:
    """A hand-written script's load, read by k6 from its options, so guardrails apply."""
    assert spec.script is not None
    try:
        needs = await inspect_script(settings.k6_binary, spec.script, requirements=True)
    except ScriptRejected as exc:
        raise InvalidInput(f"k6 rejected the script: {exc}", code="plan.script_rejected") from exc
    load = Raw(
        profile="raw",
        max_vus=int(needs.get("maxVUs") or 0),
        duration=parse_duration(needs.get("totalDuration") or 1),
    )
    return spec.model_copy(update={"load": load})


async def create_plan(
    repo: PlanRepository,
    *,
    body: bytes,
    content_type: str | None,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession] | None = None,
) -> Plan:
    plan = await _build(
        body=body,
        content_type=content_type,
        settings=settings,
        version=1,
        sessionmaker=sessionmaker,
        session=repo.session,
    )
    return await repo.add(plan)


async def create_version(
    repo: PlanRepository,
    plan_id: uuid.UUID,
    *,
    body: bytes,
    content_type: str | None,
    settings: Settings,
) -> Plan:
    """An edit: the document becomes the next version (a draft) of the plan's family."""
    document_type(content_type)  # a wrong type is a 415 whatever the plan, as on every route
    base = await get_plan(repo, plan_id)
    number = await repo.latest_version_number(base.family_id) + 1
    plan = await _build(
        body=body,
        content_type=content_type,
        settings=settings,
        version=number,
        session=repo.session,
    )
    plan.family_id = base.family_id
    return await repo.add(plan)


# action → (states it may start from, state it leads to)
_TRANSITIONS = {
    "approve": ({PlanStatus.draft}, PlanStatus.approved),
    "archive": ({PlanStatus.draft, PlanStatus.approved}, PlanStatus.archived),
}


async def review(
    repo: PlanRepository, plan_id: uuid.UUID, *, action: str, reviewer: str, comment: str | None
) -> Plan:
    plan = await get_plan(repo, plan_id)
    allowed_from, to = _TRANSITIONS[action]
    if plan.status not in allowed_from:
        raise Conflict(
            f"plan {plan_id} version {plan.version} is {plan.status}; it cannot be {to}",
            code="review.invalid_transition",
            plan_status=plan.status,
        )
    plan.status = to
    plan.reviewed_by = reviewer
    plan.review_comment = comment
    plan.reviewed_at = utcnow()
    await repo.session.flush()
    return plan


async def versions(repo: PlanRepository, plan_id: uuid.UUID) -> Sequence[Plan]:
    return await repo.versions((await get_plan(repo, plan_id)).family_id)


async def get_plan(repo: PlanRepository, plan_id: uuid.UUID) -> Plan:
    plan = await repo.get(plan_id)
    if plan is None:
        raise NotFound(f"no plan {plan_id}", code="plan.not_found")
    return plan


async def list_plans(repo: PlanRepository, *, name: str | None) -> Sequence[Plan]:
    return await repo.list_recent(name=name)
