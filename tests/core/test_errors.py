from __future__ import annotations

from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.core.errors import install_error_handlers


async def test_an_unexpected_error_is_an_opaque_500_problem() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/boom")

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "internal_error"
    assert "secret" not in response.text


# --- validation errors: every one summed up, the document's own paths, hints for typos -------

from typing import Annotated, Any, Literal  # noqa: E402

import pytest  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field, ValidationError  # noqa: E402

from app.core.errors import (  # noqa: E402
    MAX_LISTED_ERRORS,
    describe_errors,
    document_location,
    invalid_body,
)
from app.plans.schemas import PlanSpec  # noqa: E402


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Fast(_Strict):
    kind: Literal["fast"]
    duration: str


class _Slow(_Strict):
    kind: Literal["slow"]
    minutes: int


class _Leaf(_Strict):
    min: int
    max: int


class _Doc(_Strict):
    name: str
    profile: Annotated[_Fast | _Slow, Field(discriminator="kind")] | None = None
    either: int | _Leaf | None = None
    items: list[_Leaf] = []
    by_name: dict[str, _Leaf] = {}
    secret_key: str | None = Field(default=None, alias="secretKey")


def _errors(model: type[BaseModel], document: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(document)
    return caught.value


MISSPELT_PLAN: dict[str, Any] = {
    "name": "checkout",
    "target": {"base_url": "http://127.0.0.1:8080"},
    "endpoint": [{"name": "home", "path": "/"}],
    "load": {"profile": "load", "vus": 10, "duraton": "30s"},
}


def test_a_discriminated_unions_tag_is_not_part_of_the_path() -> None:
    # The report: `load.load.duration` — the second `load` is the profile pydantic tried.
    problem = invalid_body(_errors(PlanSpec, MISSPELT_PLAN), model=PlanSpec, document=MISSPELT_PLAN)

    locs = [e["loc"] for e in problem.extra["errors"]]
    assert ["body", "load", "duration"] in locs
    assert ["body", "load", "load", "duration"] not in locs
    assert not problem.detail.startswith("load.load")


def test_the_detail_sums_up_every_error_with_a_hint_for_each_misspelt_key() -> None:
    problem = invalid_body(_errors(PlanSpec, MISSPELT_PLAN), model=PlanSpec, document=MISSPELT_PLAN)

    assert problem.detail == (
        "3 errors: load.duration: field required; "
        "load.duraton: unknown key (did you mean `duration`?); "
        "endpoint: unknown key (did you mean `endpoints`?)"
    )
    by_loc = {tuple(e["loc"]): e for e in problem.extra["errors"]}
    assert by_loc[("body", "endpoint")] == {
        "loc": ["body", "endpoint"],
        "msg": "Extra inputs are not permitted",
        "type": "extra_forbidden",
        "suggestion": "endpoints",
    }
    assert by_loc[("body", "load", "duraton")]["suggestion"] == "duration"
    assert "suggestion" not in by_loc[("body", "load", "duration")]


def test_a_key_nothing_resembles_gets_no_suggestion() -> None:
    document = {"name": "x", "zzzzzz": 1}
    problem = invalid_body(_errors(_Doc, document), model=_Doc, document=document)

    assert problem.extra["errors"] == [
        {
            "loc": ["body", "zzzzzz"],
            "msg": "Extra inputs are not permitted",
            "type": "extra_forbidden",
        }
    ]
    assert problem.detail == "zzzzzz: unknown key"


@pytest.mark.parametrize(
    ("document", "loc", "suggestion"),
    [
        # in the member a discriminator chose
        (
            {"name": "x", "profile": {"kind": "slow", "minuts": 1, "minutes": 1}},
            ("profile", "minuts"),
            "minutes",
        ),
        # in a model member of a plain union (pydantic's tag: the class name)
        ({"name": "x", "either": {"min": 1, "max": 2, "mx": 3}}, ("either", "mx"), "max"),
        # through lists and dicts
        (
            {"name": "x", "items": [{"min": 1, "max": 2}, {"min": 1, "maxx": 2}]},
            ("items", 1, "maxx"),
            "max",
        ),
        (
            {"name": "x", "by_name": {"a": {"min": 1, "max": 1, "mim": 0}}},
            ("by_name", "a", "mim"),
            "min",
        ),
        # aliases are the keys a document uses
        ({"name": "x", "secretkey": "s"}, ("secretkey",), "secretKey"),
    ],
)
def test_unknown_keys_are_matched_against_the_keys_known_at_their_place(
    document: dict[str, Any], loc: tuple[Any, ...], suggestion: str
) -> None:
    _, errors = describe_errors(_errors(_Doc, document).errors(), model=_Doc, document=document)

    extra = [e for e in errors if e["type"] == "extra_forbidden"]
    assert [(tuple(e["loc"]), e.get("suggestion")) for e in extra] == [(loc, suggestion)]


def test_the_alternatives_of_a_plain_union_are_one_item_at_one_place() -> None:
    document = {"name": "x", "either": [1]}
    detail, errors = describe_errors(
        _errors(_Doc, document).errors(), model=_Doc, document=document
    )

    assert [(e["loc"], e["type"]) for e in errors] == [
        (["either"], "int_type"),
        (["either"], "model_type"),
    ]
    assert detail == (
        "either: input should be a valid integer or a valid dictionary or instance of _Leaf"
    )


def test_without_a_model_the_document_tells_tags_from_keys() -> None:
    # intent.py and others may not pass a model: the document still shows `load` is a tag.
    raw = _errors(PlanSpec, MISSPELT_PLAN).errors()
    locs = {document_location(None, e["loc"], MISSPELT_PLAN)[0] for e in raw}

    assert ("load", "duration") in locs
    assert ("load", "duraton") in locs


def test_a_root_level_error_is_its_message_alone() -> None:
    document = {k: v for k, v in MISSPELT_PLAN.items() if k not in ("load", "endpoint")}
    document["endpoints"] = [{"name": "home", "path": "/"}]
    problem = invalid_body(_errors(PlanSpec, document), model=PlanSpec, document=document)

    assert problem.detail == "a plan needs a load profile (load)"
    assert problem.extra["errors"][0]["loc"] == ["body"]


def test_a_flood_of_errors_is_capped_in_the_list_and_in_the_detail() -> None:
    document = {"name": "x", "items": [{"min": "a", "max": "b"}] * 80}
    problem = invalid_body(_errors(_Doc, document), model=_Doc, document=document)

    assert len(problem.extra["errors"]) == MAX_LISTED_ERRORS
    assert problem.extra["errors_omitted"] == 160 - MAX_LISTED_ERRORS
    assert problem.detail.startswith("160 errors: items.0.min: input should be a valid integer")
    assert problem.detail.endswith("… and 150 more")


async def test_a_json_body_route_answers_with_the_summary_and_hints() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/docs")
    async def post_doc(body: _Doc) -> dict[str, str]:
        return {"name": body.name}

    transport = ASGITransport(app=app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://t") as client:
        misspelt = await client.post(
            "/docs", json={"nam": "x", "profile": {"kind": "fast", "duraton": "1s"}}
        )
        broken = await client.post(
            "/docs", content=b'{"name": ', headers={"Content-Type": "application/json"}
        )

    assert misspelt.status_code == 422
    assert misspelt.headers["content-type"] == "application/problem+json"
    problem = misspelt.json()
    assert problem["code"] == "validation_error"
    assert problem["detail"] == (
        "4 errors: name: field required; profile.duration: field required; "
        "profile.duraton: unknown key (did you mean `duration`?); "
        "nam: unknown key (did you mean `name`?)"
    )
    assert {"loc": ["body", "nam"], "msg": "Extra inputs are not permitted",
            "type": "extra_forbidden", "suggestion": "name"} in problem["errors"]  # fmt: skip
    assert broken.status_code == 422
    assert broken.json()["detail"].startswith("the body is not valid JSON: Expecting value")
