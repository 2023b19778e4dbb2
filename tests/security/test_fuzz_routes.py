"""Fuzz every route that takes a body, as the app's own OpenAPI document lists them.

Each operation with a ``requestBody`` gets deep, wide and odd documents: JSON and YAML nested
10,000 levels, an object of 100,000 keys, strings of megabytes, NaN and Infinity, nulls
everywhere, wrong types, unicode oddities (lone surrogates as escapes, RTL marks, NUL), duplicate
keys, wrong and missing content types, empty bodies and binary garbage; then hypothesis draws
more from the operation's own schema. Path parameters name real rows (a draft plan, a finished
run, an analysis and one of its recommendations), so bodies get past the lookups. Whatever the
document: no 5xx (an exception escaping the app fails the test as well), and every 4xx is an
RFC 9457 problem with a stable ``code``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from httpx import AsyncClient, Response
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import PlanStatus
from tests.builders import API, make_plan, make_run, result

PROBLEM = "application/problem+json"
DEEP = 10_000
WIDE = 100_000


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # the OpenAPI template, e.g. /api/…/plans/{plan_id}/review
    content_types: tuple[str, ...]
    properties: tuple[str, ...]  # top-level property names of the body's schema, if any
    required_query: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.method.upper()} {self.path.removeprefix(API)}"

    @property
    def json_type(self) -> str:
        return next((t for t in self.content_types if "json" in t), self.content_types[0])

    @property
    def yaml_type(self) -> str | None:
        return next((t for t in self.content_types if "yaml" in t), None)


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _properties(schema: dict[str, Any], components: dict[str, Any]) -> list[str]:
    schema = _resolve(schema, components)
    names = list(schema.get("properties", {}))
    for key in ("oneOf", "anyOf", "allOf"):
        for part in schema.get(key, []):
            names += _properties(part, components)
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        names += _properties(schema["items"], components)
    return list(dict.fromkeys(names))


def body_operations(openapi: dict[str, Any]) -> list[Operation]:
    components = openapi.get("components", {}).get("schemas", {})
    found = []
    for path, item in openapi["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or "requestBody" not in op:
                continue
            content = op["requestBody"].get("content", {})
            props: list[str] = []
            for media in content.values():
                props += _properties(media.get("schema", {}), components)
            query = tuple(
                p["name"]
                for p in op.get("parameters", []) + item.get("parameters", [])
                if p.get("in") == "query" and p.get("required")
            )
            found.append(
                Operation(method, path, tuple(content), tuple(dict.fromkeys(props)), query)
            )
    return found


@dataclass
class World:
    """Real rows for path parameters, and the app's operations that take a body."""

    ids: dict[str, str]
    operations: list[Operation]

    def url(self, op: Operation) -> str:
        def fill(match: re.Match[str]) -> str:
            return self.ids.get(match[1], str(uuid.uuid4()))

        path = re.sub(r"\{([^}]+)\}", fill, op.path)
        query = "&".join(
            f"{name}={'http://127.0.0.1:9' if 'url' in name else 'fuzz'}"
            for name in op.required_query
        )
        return f"{path}?{query}" if query else path


@pytest.fixture
async def world(client: AsyncClient, session: AsyncSession) -> World:
    openapi = (await client.get("/openapi.json")).json()
    operations = body_operations(openapi)
    assert len(operations) >= 10, [op.label for op in operations]
    approved = await make_plan(session)
    draft = await make_plan(session, status=PlanStatus.draft, name="fuzz-draft")
    run = await make_run(
        session,
        approved,
        results=[
            result("*", p95=500, failures=10),
            result("list_orders", p95=900, failures=10),
            result("create_order", p95=90),
        ],
    )
    analysis = await client.post(f"{API}/analyse", json={"run_id": str(run.id)})
    assert analysis.status_code == 201, analysis.text
    recommendation = next(
        f["recommendation_id"] for f in analysis.json()["findings"] if f.get("recommendation_id")
    )
    ids = {
        "plan_id": str(draft.id),
        "run_id": str(run.id),
        "analysis_id": analysis.json()["id"],
        "recommendation_id": recommendation,
    }
    return World(ids, operations)


def check(response: Response, what: str) -> str | None:
    """What is wrong with the answer to one odd request, or None."""
    status = response.status_code
    if status >= 500:
        return f"{what}: {status} {response.text[:300]}"
    if status >= 400:
        if not response.headers.get("content-type", "").startswith(PROBLEM):
            return f"{what}: {status} without problem+json ({response.headers.get('content-type')})"
        problem = response.json()
        if problem.get("status") != status or not isinstance(problem.get("code"), str):
            return f"{what}: {status} problem without status/code: {problem}"
        if not problem.get("title") or "detail" not in problem:
            return f"{what}: {status} problem without title/detail: {problem}"
    return None


async def send(
    client: AsyncClient, world: World, op: Operation, content_type: str | None, body: bytes
) -> Response:
    headers = {} if content_type is None else {"content-type": content_type}
    return await client.request(op.method, f"{world.url(op)}", content=body, headers=headers)


# --- the fixed catalogue --------------------------------------------------------------------


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


def _wrapped(op: Operation, inner: str) -> str:
    """``inner`` (JSON text) as the value of the body's first property, so models see it."""
    key = op.properties[0] if op.properties else "x"
    return "{" + json.dumps(key) + ":" + inner + "}"


ODD_VALUES: list[Any] = [
    None,
    "",
    [],
    {},
    0,
    -1,
    True,
    1.5,
    2**64,
    -(2**63) - 1,
    1e308,
    "x" * 100_000,
    "\ud800",
    "\udc00\ud800",
    "\u0000",
    "a\u0000b",
    "\u202eevil\u202c",
    "\ufeff",
    "\u2028\u2029",
    "../../etc/passwd",
    "<script>alert(1)</script>",
    "'; DROP TABLE plans; --",
    "{{data.x}}${__ENV.X}`",
    str(uuid.uuid4()),
    [None, {"a": [None]}],
]


def _ready(body: bytes) -> Callable[[], bytes]:
    return lambda: body


def catalogue(op: Operation) -> Iterator[tuple[str, str | None, Callable[[], bytes]]]:
    """(label, content type, how to make the body) of every fixed odd document for ``op``
    (made only when sent: some are megabytes)."""
    ct = op.json_type
    deep_lists = "[" * DEEP + "]" * DEEP
    deep_objects = '{"a":' * DEEP + "1" + "}" * DEEP
    yield "deep-json-lists", ct, lambda: deep_lists.encode()
    yield "deep-json-objects", ct, lambda: deep_objects.encode()
    yield "deep-json-in-a-field", ct, lambda: _wrapped(op, deep_lists).encode()
    yield "deep-json-100k", ct, lambda: ("[" * 100_000 + "]" * 100_000).encode()
    yield "deep-json-unclosed", ct, lambda: ("[" * DEEP).encode()
    yield "json-at-recursion-limit", ct, lambda: _wrapped(op, "[" * 950 + "]" * 950).encode()
    yield "wide-object", ct, lambda: _json({f"k{i}": i for i in range(WIDE)})
    yield "wide-list", ct, lambda: _json(list(range(WIDE)))
    yield "wide-list-of-objects", ct, lambda: _json([{"a": i} for i in range(60_000)])
    yield "huge-string", ct, lambda: _json({p: "x" * 3_000_000 for p in op.properties[:1] or ["x"]})
    yield "huge-key", ct, lambda: _json({"k" * 1_000_000: 1})
    yield "huge-integer", ct, lambda: _wrapped(op, "9" * 5_000).encode()
    yield "huge-float", ct, lambda: _wrapped(op, "1e999999").encode()
    for special in ("NaN", "Infinity", "-Infinity"):
        yield f"json-{special}", ct, _ready(_wrapped(op, special).encode())
    props = op.properties or ("x",)
    yield "nulls-everywhere", ct, lambda: _json(dict.fromkeys(props))
    yield (
        "nested-nulls",
        ct,
        lambda: _json({p: {"a": None, "b": [None, {"c": None}]} for p in props}),
    )
    yield "top-level-null", ct, lambda: b"null"
    for i, value in enumerate(ODD_VALUES):
        yield f"every-field-odd-{i}", ct, _ready(_json(dict.fromkeys(props, value)))
        yield f"top-level-odd-{i}", ct, _ready(_json(value))
    for text in ("\\ud800", "\\udfff", "\\u0000", "\\u202e", "\\ud83d\\ude00"):
        fields = ",".join(f'"{p}":"{text}"' for p in props)
        yield f"escaped-{text}", ct, _ready(("{" + fields + "}").encode())
        yield f"escaped-key-{text}", ct, _ready(('{"' + text + '":1}').encode())
    yield (
        "duplicate-keys",
        ct,
        lambda: ("{" + ",".join(f'"{p}":1,"{p}":2' for p in props) + "}").encode(),
    )
    yield "bom", ct, lambda: b"\xef\xbb\xbf" + _json(dict.fromkeys(props))
    yield "overlong-utf8", ct, lambda: b'{"a":"\xc0\xaf"}'
    yield "utf16", ct, lambda: _json(dict.fromkeys(props)).decode().encode("utf-16")
    yield "nul-bytes", ct, lambda: b"{\x00}"
    yield "empty", ct, lambda: b""
    yield "whitespace", ct, lambda: b" \n\t "
    yield "truncated", ct, lambda: _json(dict.fromkeys(props))[:-1]
    yield "garbage", ct, lambda: bytes(range(256)) * 8
    yield "json-in-csv-clothes", "text/csv", lambda: _json([{"a": 1}])
    yield "no-content-type", None, lambda: _json(dict.fromkeys(props))
    for wrong in (
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "application/json; charset=utf-16",
        "application/json;;;=",
        "*/*",
        "application/jsonx",
        "\x7f/\x7f",
    ):
        yield f"content-type-{wrong[:20]}", wrong, lambda: _json(dict.fromkeys(props))
    yaml = op.yaml_type or "application/yaml"
    yield "deep-yaml-flow", yaml, lambda: ("[" * DEEP + "]" * DEEP).encode()
    yield "deep-yaml-flow-maps", yaml, lambda: ("{a: " * DEEP + "1" + "}" * DEEP).encode()
    yield "deep-yaml-block", yaml, lambda: "".join("  " * i + "-\n" for i in range(300)).encode()
    yield (
        "deep-yaml-block-maps",
        yaml,
        lambda: "".join("  " * i + "a:\n" for i in range(300)).encode(),
    )
    yield (
        "yaml-billion-laughs",
        yaml,
        lambda: (
            b'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
            b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
        ),
    )
    yield "yaml-python-tag", yaml, lambda: b"name: !!python/object/apply:os.system ['true']\n"
    yield "yaml-binary-tag", yaml, lambda: b"name: !!binary aGVsbG8=\n"
    yield "yaml-duplicate-keys", yaml, lambda: b"name: a\nname: b\n"
    yield "yaml-huge-int", yaml, lambda: b"seed: " + b"9" * 5_000 + b"\n"
    yield "yaml-nul-escape", yaml, lambda: b'name: "a\\0b"\n'
    yield "yaml-surrogate-escape", yaml, lambda: b'name: "\\ud800"\n'
    yield "yaml-tabs-and-garbage", yaml, lambda: b"\t- [\x00\xff\n"
    yield "yaml-multiple-documents", yaml, lambda: b"a: 1\n---\nb: 2\n"


GROUPS = ("deep", "wide", "huge", "json-", "null", "odd", "escaped", "content-type", "yaml")


def _group(label: str) -> str:
    return next((g for g in GROUPS if g in label), "other")


@pytest.mark.parametrize("group", [*GROUPS, "other"])
async def test_odd_documents_get_a_problem_never_a_5xx(
    client: AsyncClient, world: World, group: str
) -> None:
    failures = []
    sent = 0
    for op in world.operations:
        for label, content_type, make in catalogue(op):
            if _group(label) != group:
                continue
            sent += 1
            try:
                response = await send(client, world, op, content_type, make())
            except Exception as exc:  # the app let it escape: a 500 or a reset connection
                failures.append(f"{op.label} {label}: {type(exc).__name__}: {exc}"[:400])
                continue
            problem = check(response, f"{op.label} {label}")
            if problem:
                failures.append(problem)
    assert sent > 0
    assert failures == [], "\n".join(failures)


# --- hypothesis: documents drawn from each operation's schema --------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from([v for v in ODD_VALUES if not isinstance(v, list | dict)])
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def documents(draw: st.DrawFn, op: Operation, ids: dict[str, str]) -> tuple[str | None, bytes]:
    kind = draw(st.sampled_from(["fields", "fields", "value", "bytes", "yaml"]))
    if kind == "bytes":
        body = draw(st.binary(max_size=512))
        return draw(st.sampled_from([*op.content_types, None, "text/plain"])), body
    if kind == "yaml":
        text = draw(st.text(alphabet="ab:-[]{}&*!|>'\"\n #%@`,?0123456789\\\t\x00", max_size=80))
        return op.yaml_type or "application/yaml", text.encode("utf-8", "surrogatepass")
    if kind == "value":
        value = draw(JSON_VALUES)
    else:
        keys = list(op.properties) or ["x"]
        chosen = draw(st.lists(st.sampled_from(keys), unique=True, max_size=len(keys)))
        known = st.sampled_from([*ids.values(), str(uuid.uuid4())])
        value = {key: draw(known | JSON_VALUES) for key in chosen}
        if draw(st.booleans()):
            value[draw(st.text(max_size=8))] = draw(JSON_VALUES)
        if op.content_types == ("text/csv", "application/json") and draw(st.booleans()):
            value = [value]
    text = json.dumps(value, ensure_ascii=draw(st.booleans()), allow_nan=True)
    return op.json_type, text.encode("utf-8", "surrogatepass")


@hypothesis_settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_schema_shaped_documents_get_a_problem_never_a_5xx(
    client: AsyncClient, world: World, data: st.DataObject
) -> None:
    op = data.draw(st.sampled_from(world.operations), label="operation")
    content_type, body = data.draw(documents(op, world.ids), label="document")

    response = await send(client, world, op, content_type, body)

    assert check(response, op.label) is None, (op.label, content_type, body[:300])


def test_the_catalogue_covers_what_the_issue_lists() -> None:
    op = Operation("post", "/x", ("application/json",), ("a",), ())
    labels = {label for label, _, _ in catalogue(op)}
    for wanted in ("deep-json-objects", "deep-yaml-flow", "wide-object", "huge-string",
                   "json-NaN", "json-Infinity", "nulls-everywhere", "escaped-\\ud800",
                   "escaped-\\u0000", "escaped-\\u202e", "duplicate-keys", "no-content-type",
                   "empty", "garbage"):  # fmt: skip
        assert wanted in labels, wanted
