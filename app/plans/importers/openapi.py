"""OpenAPI 3.0/3.1 → a plan document with one step per operation.

Values the document does not give are made up from schemas (see ``_Sampler``): the result is
a plan that calls every chosen operation with plausible input, a starting point for a smoke
run rather than a realistic workload. The document's ``servers`` are never used: they name
public hosts, and the user's ``base_url`` is the only target.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from app.plans.importers import (
    DEFAULT_LOAD,
    MAX_STEPS,
    ImportProblem,
    as_dict,
    as_list,
    checked,
    describe,
    form_body,
    is_json_media,
    media_base,
    plain_json,
    sanitise_name,
    unique_name,
)

__all__ = ["ImportProblem", "plan_from_openapi"]

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_UNSUPPORTED_METHODS = {"trace"}  # not in the plan language's HttpMethod
_OPTIONAL_PROPERTIES = 3  # optional object properties sampled beside the required ones
_MAX_DEPTH = 8  # nested schemas deeper than this are left out of generated bodies
_IGNORED_HEADER_PARAMS = {"accept", "content-type", "authorization"}  # per OpenAPI 3 spec
_TEMPLATE = re.compile(r"\{[^{}/]*\}")
_OMIT: Any = object()  # "no value": a property that would recurse forever or nest too deep

_FORMAT_SAMPLES: dict[str, str] = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00Z",
    "duration": "P1D",
    "uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "/example",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "byte": "ZXhhbXBsZQ==",
    "password": "example-password",
}


# --- $ref resolution ---------------------------------------------------------------------


class _Refs:
    """Local ``$ref`` lookups, followed lazily where a value is needed.

    Lazily, because a full expansion never ends on recursive schemas and because example
    values are literals: a ``$ref`` key inside an example must stay as it is.
    """

    def __init__(self, document: dict[str, Any]) -> None:
        self._document = document

    def follow(self, node: Any) -> tuple[Any, frozenset[str]]:
        """``node`` with its chain of ``$ref``s followed, and the refs passed on the way."""
        passed: list[str] = []
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if ref in passed:
                chain = " -> ".join([*passed, ref])
                raise ImportProblem(f"$ref cycle that never reaches a value: {chain}")
            passed.append(ref)
            target = self.lookup(ref)
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            # OpenAPI 3.1 lets a $ref carry sibling keywords; they refine the target.
            node = {**target, **siblings} if isinstance(target, dict) and siblings else target
        return node, frozenset(passed)

    def lookup(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise ImportProblem(
                f"$ref {ref!r} points outside this document; only local refs ('#/...') are "
                "resolved: bundle the document into one file first"
            )
        node: Any = self._document
        walked = "#"
        for raw in ref[1:].split("/")[1:] if ref != "#" else []:
            key = unquote(raw).replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                raise ImportProblem(f"$ref {ref!r} does not resolve: {walked!r} has no {key!r}")
            walked += "/" + raw
        return node


# --- values from schemas -------------------------------------------------------------------


class _Sampler:
    """Plausible values from schemas: examples first, then defaults, enums and constraints."""

    def __init__(self, refs: _Refs) -> None:
        self.refs = refs

    def sample(self, schema: Any) -> Any:
        value = self._sample(schema, frozenset(), 0)
        return None if value is _OMIT else plain_json(value)

    def from_media(self, media: dict[str, Any]) -> Any:
        """A media type's or parameter's own example, else one from its schema."""
        if "example" in media:
            return plain_json(media["example"])
        for example in as_dict(media.get("examples")).values():
            resolved, _ = self.refs.follow(example)
            if isinstance(resolved, dict) and "value" in resolved:
                return plain_json(resolved["value"])
        return self.sample(media.get("schema", {}))

    def _sample(self, schema: Any, seen: frozenset[str], depth: int) -> Any:
        if depth > _MAX_DEPTH:
            return _OMIT
        schema, passed = self.refs.follow(schema)
        if passed & seen:
            return _OMIT  # a recursive schema: stop here rather than nest forever
        seen |= passed
        if not isinstance(schema, dict):
            return "example"
        schema = self._combined(schema, seen)
        given = self._given(schema)
        if given:
            return given[0]
        kind = _type_of(schema)
        if kind == "object":
            return self._object(schema, seen, depth)
        if kind == "array":
            return self._array(schema, seen, depth)
        if kind in ("integer", "number"):
            return _number(schema, integer=kind == "integer")
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return _string(schema)

    @staticmethod
    def _given(schema: dict[str, Any]) -> list[Any]:
        """The value the schema states outright, as a list of zero or one (it may be null)."""
        if "const" in schema:
            return [schema["const"]]
        if "example" in schema:
            return [schema["example"]]
        if as_list(schema.get("examples")):
            return [schema["examples"][0]]  # 3.1 schemas carry a list of examples
        if "default" in schema:
            return [schema["default"]]
        enum = [v for v in as_list(schema.get("enum")) if v is not None]
        return enum[:1]

    def _combined(self, schema: dict[str, Any], seen: frozenset[str]) -> dict[str, Any]:
        """allOf merged into one schema; oneOf/anyOf reduced to their first branch."""
        parts = list(as_list(schema.get("allOf")))
        for choice in ("oneOf", "anyOf"):
            parts += as_list(schema.get(choice))[:1]
        if not parts:
            return schema
        merged = {k: v for k, v in schema.items() if k not in ("allOf", "oneOf", "anyOf")}
        for part in parts:
            resolved, passed = self.refs.follow(part)
            if passed & seen or not isinstance(resolved, dict):
                continue
            resolved = self._combined(resolved, seen | passed)
            # Set only when a part has them: their presence alone makes a schema an object.
            if "properties" in resolved:
                merged["properties"] = {
                    **as_dict(resolved["properties"]),
                    **as_dict(merged.get("properties")),
                }
            if "required" in resolved:
                merged["required"] = [
                    *as_list(merged.get("required")),
                    *as_list(resolved["required"]),
                ]
            for key, value in resolved.items():
                merged.setdefault(key, value)
        return merged

    def _object(self, schema: dict[str, Any], seen: frozenset[str], depth: int) -> Any:
        properties = as_dict(schema.get("properties"))
        required = [n for n in as_list(schema.get("required")) if isinstance(n, str)]
        optional = [n for n in properties if n not in required][:_OPTIONAL_PROPERTIES]
        extra = schema.get("additionalProperties")
        result: dict[str, Any] = {}
        for name in dict.fromkeys([*required, *optional]):
            sub = properties.get(name, extra if isinstance(extra, dict) else {})
            resolved, _ = self.refs.follow(sub)
            if isinstance(resolved, dict) and resolved.get("readOnly"):
                continue  # readOnly properties belong to responses, not requests
            value = self._sample(sub, seen, depth + 1)
            if value is not _OMIT:
                result[name] = value
        return result

    def _array(self, schema: dict[str, Any], seen: frozenset[str], depth: int) -> Any:
        item = self._sample(schema.get("items", {}), seen, depth + 1)
        if item is _OMIT:
            return []
        count = min(max(1, _int(schema.get("minItems"), 1)), 10)
        return [item] * count


def _int(value: Any, fallback: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else fallback


def _type_of(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):  # 3.1: ["string", "null"]
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "additionalProperties" in schema or "required" in schema:
        return "object"
    if "items" in schema:
        return "array"
    if any(k in schema for k in ("minimum", "maximum", "multipleOf")):
        return "number"
    return None


def _string(schema: dict[str, Any]) -> str:
    known = _FORMAT_SAMPLES.get(str(schema.get("format", "")))
    if known is not None:
        return known
    text = "example"
    low = _int(schema.get("minLength"), 0)
    if len(text) < low:
        text += "x" * (low - len(text))
    high = schema.get("maxLength")
    return text[:high] if isinstance(high, int) and not isinstance(high, bool) else text


def _bound(schema: dict[str, Any], plain: str, exclusive: str) -> tuple[float | None, bool]:
    """A numeric bound and whether it is open; 3.0 flags it, 3.1 states it as a number."""
    flag = schema.get(exclusive)
    if isinstance(flag, int | float) and not isinstance(flag, bool):
        return float(flag), True
    value = schema.get(plain)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value), flag is True
    return None, False


def _number(schema: dict[str, Any], *, integer: bool) -> int | float:
    lo, lo_open = _bound(schema, "minimum", "exclusiveMinimum")
    hi, hi_open = _bound(schema, "maximum", "exclusiveMaximum")
    step = schema.get("multipleOf")
    step = float(step) if isinstance(step, int | float) and not isinstance(step, bool) else None

    def fits(v: float) -> bool:
        above = lo is None or v > lo or (v == lo and not lo_open)
        below = hi is None or v < hi or (v == hi and not hi_open)
        multiple = step is None or step <= 0 or math.isclose(v / step, round(v / step))
        return above and below and multiple and (not integer or v == int(v))

    candidates: list[float] = [1.0, 0.0]
    for bound, nudge in ((lo, 1.0), (hi, -1.0)):
        if bound is not None:
            candidates += [bound, bound + nudge, math.ceil(bound) + nudge, float(math.floor(bound))]
    if lo is not None and hi is not None:
        candidates += [(lo + hi) / 2, float(math.floor((lo + hi) / 2))]
    if step is not None and step > 0:
        start = lo if lo is not None else 1.0
        candidates = [
            step * math.ceil(start / step),
            step * (math.floor(start / step) + 1),
            *candidates,
        ]
    chosen = next((c for c in candidates if fits(c)), candidates[0])
    return int(chosen) if integer else chosen


# --- operations ------------------------------------------------------------------------------


@dataclass
class _Operation:
    path: str
    method: str
    spec: dict[str, Any]
    parameters: list[dict[str, Any]] = field(default_factory=list)

    @property
    def operation_id(self) -> str | None:
        value = self.spec.get("operationId")
        return value if isinstance(value, str) and value else None

    @property
    def tags(self) -> list[str]:
        return [t for t in as_list(self.spec.get("tags")) if isinstance(t, str)]

    @property
    def label(self) -> str:
        return f"{self.method.upper()} {self.path}"


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ImportProblem(f"{where} must be a mapping (a JSON object)")
    return value


def _check_version(document: Any) -> str:
    if not isinstance(document, dict):
        raise ImportProblem("an OpenAPI document is a mapping (a JSON object) at the top level")
    if "swagger" in document:
        raise ImportProblem(
            f"this is a Swagger/OpenAPI {document['swagger']} document; the importer reads "
            "OpenAPI 3.x: convert it first (e.g. with swagger2openapi)"
        )
    version = document.get("openapi")
    if version is None:
        raise ImportProblem("not an OpenAPI document: it has no 'openapi' version field")
    if not str(version).startswith("3."):
        raise ImportProblem(f"OpenAPI {version} is not supported; the importer reads 3.0 and 3.1")
    return str(version)


def _operations(document: dict[str, Any], refs: _Refs) -> list[_Operation]:
    paths = document.get("paths")
    if not paths:
        raise ImportProblem("the document has no paths: there is nothing to call")
    found: list[_Operation] = []
    for path, raw_item in _mapping(paths, "paths").items():
        if not str(path).startswith("/"):
            continue  # x- extensions
        item = _mapping(refs.follow(raw_item)[0], f"path item {path!r}")
        shared = as_list(item.get("parameters"))
        for method, raw_op in item.items():
            if method not in METHODS:
                continue
            op = _Operation(str(path), method, _mapping(refs.follow(raw_op)[0], f"{method} {path}"))
            own = as_list(op.spec.get("parameters"))
            op.parameters = _parameters(refs, op, [*shared, *own])
            found.append(op)
    if not found:
        raise ImportProblem("the document's paths declare no operations")
    return found


def _parameters(refs: _Refs, op: _Operation, raw: list[Any]) -> list[dict[str, Any]]:
    """Path-level then operation-level parameters; the latter override by (name, in)."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for i, entry in enumerate(raw, start=1):
        param, _ = refs.follow(entry)
        if not isinstance(param, dict) or not {"name", "in"} <= param.keys():
            raise ImportProblem(f"{op.label}: parameter #{i} needs a 'name' and an 'in'")
        merged[(str(param["name"]), str(param["in"]))] = param
    return list(merged.values())


def _choose(
    ops: list[_Operation], tags: list[str] | None, operation_ids: list[str] | None
) -> list[_Operation]:
    """Operations matching any given tag or operationId; all of them when none is given."""
    if not tags and not operation_ids:
        return ops
    wanted_tags, wanted_ids = set(tags or []), set(operation_ids or [])
    known_tags = {t for op in ops for t in op.tags}
    known_ids = {op.operation_id for op in ops if op.operation_id}
    known_ids |= {sanitise_name(i) for i in known_ids}
    for kind, wanted, known in (
        ("tag", wanted_tags, known_tags),
        ("operationId", wanted_ids, known_ids),
    ):
        missing = sorted(wanted - known)
        if missing:
            shown = ", ".join(sorted(known)[:30]) or "none"
            raise ImportProblem(
                f"{kind} {', '.join(map(repr, missing))} matches no operation; "
                f"the document's {kind}s: {shown}"
            )
    return [
        op
        for op in ops
        if wanted_tags & set(op.tags)
        or op.operation_id in wanted_ids
        or sanitise_name(op.operation_id or "") in wanted_ids
    ]


# --- steps -----------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def _scalar(value: Any) -> str | int | float | bool:
    return value if isinstance(value, str | int | float | bool) else _text(value)


def _path_segment(value: Any) -> str:
    """A path parameter's value (style simple), URL-encoded; commas delimit arrays."""
    if isinstance(value, list):
        return ",".join(quote(_text(v), safe="") for v in value)
    if isinstance(value, dict):
        pairs = [p for k, v in value.items() for p in (str(k), _text(v))]
        return ",".join(quote(p, safe="") for p in pairs)
    return quote(_text(value), safe="") or "example"


def _query_pairs(param: dict[str, Any], value: Any) -> dict[str, str | int | float | bool]:
    """One query parameter's entries; the plan's query holds one value per name."""
    name, style = str(param["name"]), param.get("style", "form")
    explode = param.get("explode", style == "form")
    if isinstance(value, dict):
        if style == "deepObject":
            return {f"{name}[{k}]": _scalar(v) for k, v in value.items()}
        if explode:
            return {str(k): _scalar(v) for k, v in value.items()}
        return {name: ",".join(p for k, v in value.items() for p in (str(k), _text(v)))}
    if isinstance(value, list):
        if explode:
            return {name: _scalar(value[0]) if value else ""}
        delimiter = {"spaceDelimited": " ", "pipeDelimited": "|"}.get(style, ",")
        return {name: delimiter.join(_text(v) for v in value)}
    return {name: _scalar(value)}


@dataclass
class _Request:
    path: str
    query: dict[str, str | int | float | bool] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None


def _fill_parameters(op: _Operation, sampler: _Sampler, notes: list[str]) -> _Request:
    request = _Request(path=op.path)
    for param in op.parameters:
        where, name = param["in"], str(param["name"])
        if where != "path" and not param.get("required"):
            continue
        value = sampler.from_media(_parameter_media(param))
        if where == "path":
            request.path = request.path.replace("{" + name + "}", _path_segment(value))
        elif where == "query":
            request.query.update(_query_pairs(param, value))
        elif where == "header" and name.lower() not in _IGNORED_HEADER_PARAMS:
            request.headers[name] = _text(value)
    if _TEMPLATE.search(request.path):
        notes.append(f"{op.label}: path template values without a parameter got 'example'")
        request.path = _TEMPLATE.sub("example", request.path)
    return request


def _parameter_media(param: dict[str, Any]) -> dict[str, Any]:
    """A parameter as something ``from_media`` reads: its examples and its schema."""
    if "schema" not in param and isinstance(param.get("content"), dict) and param["content"]:
        media = next(iter(param["content"].values()))
        if isinstance(media, dict):
            return media
    return {**param, "schema": param.get("schema", {"type": "string"})}


def _add_body(
    op: _Operation, request: _Request, sampler: _Sampler, refs: _Refs, notes: list[str]
) -> None:
    if "requestBody" not in op.spec:
        return
    body_spec, _ = refs.follow(op.spec["requestBody"])
    raw_content = as_dict(_mapping(body_spec, f"{op.label}: requestBody").get("content"))
    content = {str(k): v for k, v in raw_content.items()}
    media_type = _pick_media(list(content))
    if media_type is None:
        if content:
            notes.append(f"{op.label}: no body generated for {', '.join(content)}")
        return
    value = sampler.from_media(_mapping(content[media_type], f"{op.label}: {media_type}"))
    kind = media_base(media_type)
    if is_json_media(media_type):
        if kind != "application/json" or isinstance(value, str) or value is None:
            request.headers["Content-Type"] = media_type
        # A string body is sent as it is, so a JSON string or null is encoded here.
        request.body = json.dumps(value) if isinstance(value, str) or value is None else value
    elif kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        fields = value.items() if isinstance(value, dict) else [("value", value)]
        request.body, request.headers["Content-Type"] = form_body(
            kind, [(str(k), _text(v)) for k, v in fields]
        )
    else:
        request.body, request.headers["Content-Type"] = _text(value), media_type


def _pick_media(media_types: list[str]) -> str | None:
    """JSON if offered, then forms, then any text type; binary and XML bodies are not made up."""
    for wanted in (
        is_json_media,
        lambda m: media_base(m) == "application/x-www-form-urlencoded",
        lambda m: media_base(m) == "multipart/form-data",
        lambda m: media_base(m).startswith("text/"),
    ):
        for media_type in media_types:
            if wanted(media_type):
                return media_type
    return None


def _expect_status(op: _Operation) -> int:
    """The lowest documented 2xx; 200 when only ``default`` (or nothing) is documented."""
    codes = []
    for key in as_dict(op.spec.get("responses")):
        text = str(key).upper()
        if text.isdigit() and 200 <= int(text) < 300:
            codes.append(int(text))
        elif text == "2XX":
            codes.append(200)
    return min(codes, default=200)


def _step(
    op: _Operation, refs: _Refs, sampler: _Sampler, taken: set[str], notes: list[str]
) -> dict[str, Any]:
    base = sanitise_name(op.operation_id or "") or sanitise_name(f"{op.method}_{op.path}")
    request = _fill_parameters(op, sampler, notes)
    _add_body(op, request, sampler, refs, notes)
    step: dict[str, Any] = {
        "name": unique_name(base or op.method, taken),
        "method": op.method.upper(),
        "path": request.path,
        "expect_status": _expect_status(op),
    }
    if request.query:
        step["query"] = request.query
    if request.headers:
        step["headers"] = request.headers
    if request.body is not None:
        step["body"] = request.body
    return step


# --- the plan --------------------------------------------------------------------------------


def _security_note(document: dict[str, Any], refs: _Refs) -> str:
    schemes = as_dict(as_dict(document.get("components")).get("securitySchemes"))
    if not schemes:
        return ""
    shown = []
    for name, raw in schemes.items():
        scheme, _ = refs.follow(raw)
        if isinstance(scheme, dict):
            kind = " ".join(str(scheme.get(k)) for k in ("type", "scheme", "in") if scheme.get(k))
            shown.append(f"{name} ({kind})")
    return (
        f"The API declares security schemes: {', '.join(shown)}. Add target.auth with a secret "
        "if the target needs credentials."
    )


def _description(
    document: dict[str, Any], version: str, chosen: int, total: int, notes: list[str]
) -> str:
    info = as_dict(document.get("info"))
    title, api_version = info.get("title", "untitled"), info.get("version", "unknown")
    servers = [s.get("url") for s in as_list(document.get("servers")) if isinstance(s, dict)]
    lines = [
        f"Imported from OpenAPI {version} document {title!r}, version {api_version}: "
        f"{chosen} of {total} operations, one step each, with generated example input.",
        f"The document's servers ({', '.join(map(str, servers))}) are not used: requests go to "
        "target.base_url."
        if servers
        else "",
        *notes,
    ]
    return describe(lines)


def plan_from_openapi(
    document: dict[str, Any],
    *,
    base_url: str,
    name: str | None = None,
    tags: list[str] | None = None,
    operation_ids: list[str] | None = None,
    load: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A plan document calling the document's operations (those matching any given tag or
    operationId; all when no filter is given) against ``base_url``."""
    version = _check_version(document)
    refs = _Refs(document)
    operations = _operations(document, refs)
    chosen = _choose(operations, tags, operation_ids)
    notes = [
        f"{op.label}: skipped, TRACE is not supported"
        for op in chosen
        if op.method in _UNSUPPORTED_METHODS
    ]
    chosen = [op for op in chosen if op.method not in _UNSUPPORTED_METHODS]
    if not chosen:
        raise ImportProblem("no operation left to call after filtering")
    if len(chosen) > MAX_STEPS:
        raise ImportProblem(
            f"{len(chosen)} operations chosen but a scenario holds at most {MAX_STEPS} steps: "
            "choose fewer with tags or operation_ids"
        )
    sampler, taken = _Sampler(refs), set[str]()
    steps = [_step(op, refs, sampler, taken, notes) for op in chosen]
    security = _security_note(document, refs)
    info = as_dict(document.get("info"))
    return checked(
        {
            "name": (name or str(info.get("title") or "openapi-import"))[:200],
            "description": _description(
                document, version, len(chosen), len(operations), [*notes, security]
            ),
            "target": {"base_url": base_url},
            "scenarios": [{"name": "api", "steps": steps}],
            "load": dict(load) if load is not None else dict(DEFAULT_LOAD),
        }
    )
