"""Turn a submitted document into a validated, stored plan with its k6 script."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable, Hashable, Sequence
from typing import Any, ClassVar

import yaml
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.auth import Principal
from app.core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    ProblemError,
    UnsupportedMediaType,
    invalid_body,
)
from app.core.media import media_type, nesting_depth
from app.core.settings import Settings
from app.datasets import service as datasets
from app.guardrails.service import check_plan, check_plan_addresses, sandboxed
from app.identity.service import record
from app.k6.process import ScriptRejected, inspect_script
from app.models import Plan, PlanStatus
from app.models.base import utcnow
from app.plans import intent, k6script
from app.plans.importers import ImportProblem, har, openapi
from app.plans.load_profiles import raw_load
from app.plans.repository import PlanRepository
from app.plans.schemas import PlanSpec, effective_slos
from app.plans.secrets import secret_placeholders

JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
MAX_DOCUMENT_BYTES = 1_000_000
# Mappings and lists inside one another. Plans and OpenAPI/HAR documents nest about 12 deep;
# far deeper ones would exhaust Python's recursion in the parsers and everything after them.
MAX_DOCUMENT_DEPTH = 100


class TooDeep(yaml.composer.ComposerError):
    """A document nests mappings/lists deeper than :data:`MAX_DOCUMENT_DEPTH`."""


class DuplicateKey(yaml.constructor.ConstructorError):
    """A mapping names a key twice; YAML (like JSON) would silently keep only the last."""

    def __init__(self, key: Any, first: yaml.Mark | None, again: yaml.Mark | None) -> None:
        super().__init__(None, None, f"duplicate key {key!r}", again)
        self.key = key
        self.first_line = first.line + 1 if first is not None else None
        self.line = again.line + 1 if again is not None else None
        self.column = again.column + 1 if again is not None else None


class PlanLoader(yaml.SafeLoader):
    """YAML for plans and imported documents: the YAML 1.2 core schema, JSON's types only.

    - ``true``/``false`` are the only booleans: ``on``, ``off``, ``yes``, ``no`` stay strings
      (YAML 1.1 made ``vus: on`` a ``True`` that pydantic then took as 1 VU); likewise
      ``1:30`` (base 60), ``0777`` (octal), ``1_000`` and dates are not numbers or dates.
    - no anchors/aliases: a plan never needs them and they allow 'billion laughs'; no ``<<``
      merge keys either (YAML 1.1).
    - a key repeated in a mapping, at any depth, is an error (:class:`DuplicateKey`).
    - only the tags of JSON's types (str, int, float, bool, null, seq, map); any other tag,
      e.g. ``!!binary`` or ``!!timestamp``, is an error.
    """

    # Own tables, so SafeLoader's (YAML 1.1) resolvers and constructors are not inherited.
    yaml_implicit_resolvers: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}  # noqa: RUF012
    yaml_constructors: ClassVar[dict[Any, Any]] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases are not accepted in plans", event.start_mark
            )
        depth = self.__dict__.get("_depth", 0)  # collections around this node
        opens = self.check_event(yaml.MappingStartEvent, yaml.SequenceStartEvent)
        if opens and depth >= MAX_DOCUMENT_DEPTH:
            raise TooDeep(None, None, "too deep", self.peek_event().start_mark)
        self._depth = depth + 1 if opens else depth
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth = depth

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping node, but found {node.id}", node.start_mark
            )
        mapping: dict[Any, Any] = {}
        first: dict[Any, yaml.Mark] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    "found an unhashable key",
                    key_node.start_mark,
                )
            if key in mapping:
                raise DuplicateKey(key, first[key], key_node.start_mark)
            first[key] = key_node.start_mark
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping

    def construct_yaml_bool(self, node: Any) -> bool:
        value = self.construct_scalar(node)
        if value in ("true", "True", "TRUE"):
            return True
        if value in ("false", "False", "FALSE"):
            return False
        raise yaml.constructor.ConstructorError(
            None, None, f"{value!r} is not a boolean (true or false)", node.start_mark
        )

    def construct_yaml_int(self, node: Any) -> int:
        value = str(self.construct_scalar(node))
        try:
            if value.startswith("0o"):
                return int(value[2:], 8)
            if value.startswith("0x"):
                return int(value[2:], 16)
            return int(value, 10)
        except ValueError:
            raise yaml.constructor.ConstructorError(
                None, None, f"{value!r} is not an integer", node.start_mark
            ) from None

    def construct_yaml_float(self, node: Any) -> float:
        value = str(self.construct_scalar(node))
        special = value.lower().lstrip("+")
        if special in (".inf", "-.inf", ".nan"):
            return float(special.replace(".", ""))
        try:
            return float(value)
        except ValueError:
            raise yaml.constructor.ConstructorError(
                None, None, f"{value!r} is not a number", node.start_mark
            ) from None


# YAML 1.2.2, 10.3.2 (core schema): the tags plain scalars resolve to. Order matters (int
# before float).
for _tag, _pattern, _first in (
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?(?:\.inf|\.Inf|\.INF)|\.nan|\.NaN|\.NAN)$",
        list("-+.0123456789"),
    ),
):
    PlanLoader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(_pattern), _first)
_CONSTRUCTORS: dict[str, Callable[[PlanLoader, Any], Any]] = {
    "null": PlanLoader.construct_yaml_null,
    "bool": PlanLoader.construct_yaml_bool,
    "int": PlanLoader.construct_yaml_int,
    "float": PlanLoader.construct_yaml_float,
    "str": PlanLoader.construct_yaml_str,
    "seq": PlanLoader.construct_yaml_seq,
    "map": PlanLoader.construct_yaml_map,
}
for _tag, _construct in _CONSTRUCTORS.items():
    PlanLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _construct)
_UNDEFINED: Callable[[PlanLoader, Any], Any] = PlanLoader.construct_undefined
PlanLoader.add_constructor(None, _UNDEFINED)  # any other tag: an error


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for JSON: a repeated key is an error, not 'the last one wins'."""
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise DuplicateKey(key, None, None)
        obj[key] = value
    return obj


def load_yaml(body: bytes | str) -> Any:
    """A YAML document read with :class:`PlanLoader`; raises ``yaml.YAMLError``."""
    return yaml.load(body, Loader=PlanLoader)


def _duplicate_key_problem(exc: DuplicateKey, body: bytes, fmt: str) -> ProblemError:
    line, first_line, column = exc.line, exc.first_line, exc.column
    if line is None and fmt == "JSON":
        # json does not say where; JSON is YAML, and the YAML reader knows the lines.
        try:
            load_yaml(body)
        except DuplicateKey as located:
            if located.key == exc.key:
                line, first_line, column = located.line, located.first_line, located.column
        except yaml.YAMLError:
            pass
    where = f" (first at line {first_line}, again at line {line}, column {column})" if line else ""
    return ProblemError(
        f"the key {exc.key!r} appears twice in the same mapping{where}; {fmt} would keep only "
        "the last one silently: remove or merge one of them",
        code="plan.duplicate_key",
        title="Duplicate key",
        key=exc.key,
        line=line,
        column=column,
        first_line=first_line,
    )


def document_type(content_type: str | None) -> str:
    """The media type of a JSON or YAML document; any other is a 415 problem."""
    kind = media_type(content_type)
    if kind not in JSON_TYPES + YAML_TYPES:
        raise UnsupportedMediaType(
            f"send the plan as application/json or application/yaml, not {kind or 'no type'!r}",
            accepted=list(JSON_TYPES + YAML_TYPES),
        )
    return kind


def _too_deep() -> ProblemError:
    return ProblemError(
        f"the document nests mappings/lists more than {MAX_DOCUMENT_DEPTH} levels deep",
        code="plan.too_deep",
        title="Document nested too deeply",
        max_depth=MAX_DOCUMENT_DEPTH,
    )


# Larger documents are parsed in a thread: ~2 s of CPU for 1 MB of YAML would otherwise stall
# every other request of the process meanwhile.
INLINE_PARSE_BYTES = 32 * 1024


async def read_document(body: bytes, content_type: str | None) -> tuple[Any, str]:
    """``parse_document``, off the event loop for all but small bodies."""
    if len(body) <= INLINE_PARSE_BYTES:
        return parse_document(body, content_type)
    return await asyncio.to_thread(parse_document, body, content_type)


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
            document = json.loads(body, object_pairs_hook=_unique_keys)
        except DuplicateKey as exc:
            raise _duplicate_key_problem(exc, body, "JSON") from exc
        except RecursionError as exc:
            raise _too_deep() from exc
        except ValueError as exc:  # also UnicodeDecodeError, and an integer of > 4300 digits
            raise ProblemError(
                f"the body is not valid JSON: {exc}", code="plan.malformed_json", title="Bad JSON"
            ) from exc
        if nesting_depth(document, limit=MAX_DOCUMENT_DEPTH) > MAX_DOCUMENT_DEPTH:
            raise _too_deep()
        return document, "json"
    try:
        return load_yaml(body), "yaml"
    except DuplicateKey as exc:
        raise _duplicate_key_problem(exc, body, "YAML") from exc
    except TooDeep as exc:
        raise _too_deep() from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
        problem = ", ".join(str(p) for p in parts if p) or str(exc)
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
    document, fmt = await read_document(body, content_type)
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
    await check_plan_addresses(spec, settings)  # where its names resolve, not only how spelt
    slos, _ = effective_slos(spec)
    script = k6script.render(spec, slos=slos, version=version)
    try:
        # k6 itself must accept the script before anything is stored.
        await inspect_script(
            settings.k6_binary,
            script,
            settings=settings if sandboxed(spec, settings) else None,
            secrets=secret_placeholders(spec),
        )
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
    document, _ = await read_document(body, content_type)
    if not isinstance(document, dict):
        raise InvalidInput(f"a {kind} document is a JSON/YAML object", code="import.invalid")
    convert: Callable[..., dict[str, Any]] = (
        openapi.plan_from_openapi if kind == "openapi" else har.plan_from_har
    )
    try:
        if len(body) <= INLINE_PARSE_BYTES:
            generated = convert(document, **options)
        else:
            generated = await asyncio.to_thread(convert, document, **options)
    except ImportProblem as exc:
        raise InvalidInput(str(exc), code="import.invalid") from exc
    plan_id = uuid.uuid4()
    plan = await _from_document(
        generated, plan_id=plan_id, source=body, fmt=kind, settings=settings, version=1
    )
    return await repo.add(plan)


async def _with_script_load(spec: PlanSpec, settings: Settings) -> PlanSpec:
    """A hand-written script's load, read by k6 from its options, so guardrails apply. Such a
    script is stored only where it can run: inside the sandbox, or where an administrator
    allowed unsandboxed scripts."""
    assert spec.script is not None
    inside = sandboxed(spec, settings)
    try:
        needs = await inspect_script(
            settings.k6_binary,
            spec.script,
            requirements=True,
            settings=settings if inside else None,
            secrets=secret_placeholders(spec),
        )
    except ScriptRejected as exc:
        raise InvalidInput(f"k6 rejected the script: {exc}", code="plan.script_rejected") from exc
    return spec.model_copy(update={"load": raw_load(needs)})


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


async def record_stored(
    session: AsyncSession, principal: Principal, plan: Plan, *, via: str
) -> None:
    """The audit event of a stored plan or version (in the caller's transaction)."""
    await record(
        session,
        principal,
        "plan.created" if plan.version == 1 else "plan.version_created",
        "plan",
        plan.id,
        family_id=plan.family_id,
        version=plan.version,
        name=plan.name,
        via=via,
    )


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


async def versions(
    repo: PlanRepository, plan_id: uuid.UUID, *, cursor: str | None, limit: int
) -> Sequence[Any]:
    family_id = (await get_plan(repo, plan_id)).family_id
    return await repo.page(family_id=family_id, cursor=cursor, limit=limit)


async def get_plan(repo: PlanRepository, plan_id: uuid.UUID) -> Plan:
    plan = await repo.get(plan_id)
    if plan is None:
        raise NotFound(f"no plan {plan_id}", code="plan.not_found")
    return plan


async def list_plans(
    repo: PlanRepository, *, name: str | None, cursor: str | None, limit: int
) -> Sequence[Any]:
    return await repo.page(name=name, cursor=cursor, limit=limit)
