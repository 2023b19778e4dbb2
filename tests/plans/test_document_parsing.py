"""Reading a plan (or an imported document): YAML 1.2 core types, no duplicate keys, no aliases,
and validation errors a user can act on."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from httpx import AsyncClient

from app.core.errors import ProblemError
from app.plans.service import MAX_DOCUMENT_DEPTH, parse_document
from tests.builders import API, plan_doc

ROOT = Path(__file__).resolve().parents[2]
YAML = "application/yaml"


def _yaml(text: str) -> Any:
    document, fmt = parse_document(text.encode(), YAML)
    assert fmt == "yaml"
    return document


def _problem(body: str, content_type: str = YAML) -> ProblemError:
    with pytest.raises(ProblemError) as caught:
        parse_document(body.encode(), content_type)
    return caught.value


# --- duplicate keys --------------------------------------------------------------------------

TWO_SLOS_BLOCKS = """\
name: checkout
target: {base_url: "http://127.0.0.1:9"}
endpoints: [{name: home, path: /}]
load: {vus: 1, duration: 2s}
slos:
  - p95 < 300ms
  - error_rate < 1%
slos:
  - p99 < 900ms
"""


def test_a_repeated_top_level_key_is_a_400_naming_it_and_its_second_line() -> None:
    problem = _problem(TWO_SLOS_BLOCKS)

    assert problem.status == 400
    assert problem.code == "plan.duplicate_key"
    assert problem.extra["key"] == "slos"
    assert problem.extra["line"] == 8
    assert problem.extra["first_line"] == 5
    assert "'slos'" in problem.detail
    assert "line 8" in problem.detail


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("load:\n  vus: 1\n  duration: 2s\n  vus: 5\n", "vus", 4),
        (
            "endpoints:\n  - name: a\n    path: /\n  - name: b\n    path: /b\n    path: /c\n",
            "path",
            6,
        ),
        ("a: {x: 1, y: {z: 1, z: 2}}\n", "z", 1),
        ("1: one\n01: also one\n", 1, 2),
    ],
)
def test_a_repeated_key_at_any_depth_is_refused(text: str, key: Any, line: int) -> None:
    problem = _problem(text)

    assert problem.code == "plan.duplicate_key"
    assert (problem.extra["key"], problem.extra["line"]) == (key, line)


def test_the_same_key_in_different_mappings_is_fine() -> None:
    assert _yaml("a: {name: x}\nb: {name: y}\n") == {"a": {"name": "x"}, "b": {"name": "y"}}


def test_a_repeated_key_in_json_is_refused_too_with_its_line() -> None:
    problem = _problem(
        '{\n  "name": "x",\n  "load": {"vus": 1,\n    "vus": 2}\n}', "application/json"
    )

    assert problem.code == "plan.duplicate_key"
    assert (problem.extra["key"], problem.extra["line"], problem.extra["first_line"]) == (
        "vus",
        4,
        3,
    )


async def test_posting_a_plan_with_two_slos_blocks_is_a_400_problem(client: AsyncClient) -> None:
    response = await client.post(
        f"{API}/plan", content=TWO_SLOS_BLOCKS.encode(), headers={"Content-Type": YAML}
    )

    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "plan.duplicate_key"
    assert (problem["key"], problem["line"]) == ("slos", 8)


async def test_an_openapi_document_with_a_repeated_path_is_refused(client: AsyncClient) -> None:
    document = (
        "openapi: 3.0.0\ninfo: {title: t, version: '1'}\npaths:\n"
        "  /a:\n    get: {responses: {'200': {description: ok}}}\n"
        "  /a:\n    post: {responses: {'200': {description: ok}}}\n"
    )

    response = await client.post(
        f"{API}/plans/import/openapi",
        params={"base_url": "http://127.0.0.1:8080"},
        content=document.encode(),
        headers={"Content-Type": YAML},
    )

    assert response.status_code == 400, response.text
    assert response.json()["code"] == "plan.duplicate_key"
    assert response.json()["line"] == 6


# --- YAML 1.2 core schema --------------------------------------------------------------------


def test_only_true_and_false_are_booleans() -> None:
    document = _yaml("a: on\nb: off\nc: yes\nd: no\ne: y\nf: Yes\ng: true\nh: False\ni: TRUE\n")

    assert document == {
        "a": "on", "b": "off", "c": "yes", "d": "no", "e": "y", "f": "Yes",
        "g": True, "h": False, "i": True,
    }  # fmt: skip


def test_numbers_nulls_and_strings_follow_the_core_schema() -> None:
    document = _yaml(
        "int: 42\nneg: -7\nzero_led: 0777\nocta: 0o17\nhexa: 0x1F\nfloat: 1.5\nexp: 1e3\n"
        "dot: .5\ninf: -.inf\nnan: .nan\nnull1: ~\nnull2: null\nnull3:\n"
        "sexagesimal: 1:30\nunderscored: 1_000\ndate: 2024-01-01\nquoted_on: 'on'\n"
    )

    nan = document.pop("nan")
    assert math.isnan(nan)
    assert document == {
        "int": 42, "neg": -7, "zero_led": 777, "octa": 15, "hexa": 31, "float": 1.5,
        "exp": 1000.0, "dot": 0.5, "inf": -math.inf, "null1": None, "null2": None,
        "null3": None, "sexagesimal": "1:30", "underscored": "1_000", "date": "2024-01-01",
        "quoted_on": "on",
    }  # fmt: skip


async def test_vus_on_is_a_type_error_not_one_vu(client: AsyncClient) -> None:
    text = (
        'name: x\ntarget: {base_url: "http://127.0.0.1:9"}\n'
        "endpoints: [{name: a, path: /}]\nload: {vus: on, duration: 2s}\n"
    )

    response = await client.post(
        f"{API}/plan", content=text.encode(), headers={"Content-Type": YAML}
    )

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert [(e["loc"], e["type"]) for e in problem["errors"]] == [
        (["body", "load", "vus"], "int_parsing")
    ]
    assert problem["detail"].startswith("load.vus: input should be a valid integer")


@pytest.mark.parametrize(
    "text",
    [
        "a: !!binary aGVsbG8=\n",
        "a: !!timestamp 2024-01-01\n",
        "a: !!set {x, y}\n",
        "a: !custom x\n",
        "a: !!python/object:os.system x\n",
        "a: !!bool yes\n",
    ],
)
def test_tags_beyond_json_types_are_refused(text: str) -> None:
    assert _problem(text).code == "plan.malformed_yaml"


def test_explicit_core_tags_still_work() -> None:
    assert _yaml("a: !!str 10\nb: !!int '7'\nc: !!float 1\n") == {"a": "10", "b": 7, "c": 1.0}


def test_merge_keys_are_plain_keys() -> None:
    assert _yaml("<<: {a: 1}\nb: 2\n") == {"<<": {"a": 1}, "b": 2}


# --- what stays as it was --------------------------------------------------------------------


def test_aliases_are_still_refused() -> None:
    laughs = 'a: &a ["lol","lol"]\nb: &b [*a,*a]\nc: &c [*b,*b]\n'

    problem = _problem(laughs)

    assert problem.code == "plan.malformed_yaml"
    assert "aliases" in problem.detail


@pytest.mark.parametrize("content_type", ["application/json", YAML])
def test_nesting_is_limited_instead_of_exhausting_the_stack(content_type: str) -> None:
    fine = "[" * MAX_DOCUMENT_DEPTH + "]" * MAX_DOCUMENT_DEPTH
    assert parse_document(fine.encode(), content_type)[0] is not None

    for levels in (MAX_DOCUMENT_DEPTH + 1, 50_000):  # 50 000: a RecursionError, unchecked
        problem = _problem("[" * levels + "]" * levels, content_type)
        assert (problem.status, problem.code) == (400, "plan.too_deep")


async def test_a_deeply_nested_plan_is_a_400_not_a_500(client: AsyncClient) -> None:
    deep = b"[" * 50_000 + b"]" * 50_000
    for content_type in ("application/json", YAML):
        response = await client.post(
            f"{API}/plan", content=deep, headers={"Content-Type": content_type}
        )
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "plan.too_deep"


@pytest.mark.parametrize(
    ("text", "where"),
    [("a: [1, 2\n", "line 2"), ("a: 1\n---\nb: 2\n", "expected a single document")],
)
def test_malformed_yaml_is_a_400_saying_where(text: str, where: str) -> None:
    problem = _problem(text)

    assert (problem.status, problem.code) == (400, "plan.malformed_yaml")
    assert where in problem.detail


REPOSITORY_DOCUMENTS = sorted(
    path
    for folder in ("tests/fixtures/openapi", "app/demo", "eval/plan_corpus/plans")
    for path in (ROOT / folder).glob("*.yaml")
)


@pytest.mark.parametrize("path", REPOSITORY_DOCUMENTS, ids=lambda p: p.name)
def test_the_repositorys_documents_read_as_they_did(path: Path) -> None:
    # The public OpenAPI fixtures, the demo plans and the plan corpus use none of YAML 1.1's
    # surprises, so the stricter reader gives exactly what yaml.safe_load gave.
    text = path.read_text()

    assert _yaml(text) == yaml.safe_load(text)


async def test_the_public_openapi_fixtures_still_import(client: AsyncClient) -> None:
    for path in sorted((ROOT / "tests" / "fixtures" / "openapi").glob("*.yaml")):
        response = await client.post(
            f"{API}/plans/import/openapi",
            params={"base_url": "http://127.0.0.1:8080"},
            content=path.read_bytes(),
            headers={"Content-Type": YAML},
        )
        assert response.status_code == 201, (path.name, response.text)


# --- validation errors as a user meets them --------------------------------------------------

MISSPELT = """\
name: checkout
target:
  base_url: http://127.0.0.1:9
endpoint:
  - name: home
    path: /
load:
  profile: load
  vus: 10
  duraton: 30s
slo:
  - p95 < 300ms
"""


async def test_a_misspelt_plan_hears_of_every_error_with_hints(client: AsyncClient) -> None:
    response = await client.post(
        f"{API}/plan", content=MISSPELT.encode(), headers={"Content-Type": YAML}
    )

    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["detail"] == (
        "4 errors: load.duration: field required; "
        "load.duraton: unknown key (did you mean `duration`?); "
        "endpoint: unknown key (did you mean `endpoints`?); "
        "slo: unknown key (did you mean `slos`?)"
    )
    assert [(e["loc"], e["type"], e.get("suggestion")) for e in problem["errors"]] == [
        (["body", "load", "duration"], "missing", None),
        (["body", "load", "duraton"], "extra_forbidden", "duration"),
        (["body", "endpoint"], "extra_forbidden", "endpoints"),
        (["body", "slo"], "extra_forbidden", "slos"),
    ]
    assert all(e["msg"] for e in problem["errors"])


async def test_paths_inside_steps_and_checks_are_the_documents(client: AsyncClient) -> None:
    doc = plan_doc(
        endpoints=[{"name": "a", "path": "/", "checks": [{"stauts": 200}], "think_time": {"mn": 1}}]
    )

    response = await client.post(f"{API}/plan", json=doc)

    assert response.status_code == 422
    errors = {tuple(e["loc"]): e for e in response.json()["errors"]}
    assert errors[("body", "endpoints", 0, "checks", 0, "stauts")]["suggestion"] == "status"
    assert errors[("body", "endpoints", 0, "think_time", "mn")]["suggestion"] == "min"
    assert not any(
        isinstance(part, str) and "[" in part for loc in errors for part in loc
    )  # no pydantic tags such as function-after[_ordered(), ThinkRange]
