"""OpenAPI 3 documents become plans that validate, render and pass ``k6 inspect``."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.plans.importers import ImportProblem
from app.plans.importers.openapi import plan_from_openapi
from app.plans.schemas import PlanSpec
from tests.plans.importers import BASE_URL, FIXTURES, k6_inspect, script_for

OPENAPI = FIXTURES / "openapi"


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((OPENAPI / f"{name}.yaml").read_text())
    return loaded


def steps_of(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["name"]: step for step in doc["scenarios"][0]["steps"]}


def tiny(paths: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "Tiny", "version": "0.1"},
        "paths": paths,
        **extra,
    }


def one_op(op: dict[str, Any], method: str = "post", path: str = "/things") -> dict[str, Any]:
    return {
        path: {method: {"operationId": "op", "responses": {"200": {"description": "ok"}}, **op}}
    }


@pytest.mark.parametrize("name", ["petstore", "petstore-expanded", "uspto", "link-example"])
def test_each_public_fixture_imports_renders_and_passes_k6_inspect(
    name: str, tmp_path: Path
) -> None:
    document = fixture(name)

    doc = plan_from_openapi(document, base_url=BASE_URL)
    script = script_for(doc)
    options = k6_inspect(script, tmp_path)

    assert PlanSpec.model_validate(doc).target.base_url == BASE_URL
    assert options["scenarios"]["main"]["executor"] == "constant-vus"
    for server in document.get("servers", []):
        host = server["url"].split("//", 1)[1].split("/", 1)[0]
        assert host not in script
    assert document["info"]["title"] in doc["description"]
    assert document["info"]["version"] in doc["description"]


def test_petstore_steps_follow_the_operations() -> None:
    steps = steps_of(plan_from_openapi(fixture("petstore"), base_url=BASE_URL))

    assert list(steps) == ["listPets", "createPets", "showPetById"]
    assert steps["createPets"]["method"] == "POST"
    assert steps["createPets"]["expect_status"] == 201
    assert steps["createPets"]["body"] == {"id": 1, "name": "example", "tag": "example"}
    assert steps["showPetById"]["path"] == "/pets/example"  # string placeholder
    assert "query" not in steps["listPets"]  # `limit` is optional


def test_integer_path_parameter_gets_an_integer_placeholder_and_name_is_sanitised() -> None:
    steps = steps_of(plan_from_openapi(fixture("petstore-expanded"), base_url=BASE_URL))

    assert steps["find_pet_by_id"]["path"] == "/pets/1"  # operationId "find pet by id"
    assert steps["deletePet"]["expect_status"] == 204


def test_path_parameter_examples_and_defaults_are_used() -> None:
    steps = steps_of(plan_from_openapi(fixture("uspto"), base_url=BASE_URL))

    assert steps["list-searchable-fields"]["path"] == "/oa_citations/v1/fields"  # `example`
    assert steps["perform-search"]["path"] == "/oa_citations/v1/records"  # schema `default`


def test_path_parameter_values_are_url_encoded() -> None:
    param = {"name": "id", "in": "path", "required": True, "example": "a b/c?d"}
    document = tiny(one_op({"parameters": [param]}, "get", "/things/{id}"))

    step = steps_of(plan_from_openapi(document, base_url=BASE_URL))["op"]

    assert step["path"] == "/things/a%20b%2Fc%3Fd"


def test_path_parameter_from_examples_map_and_enum() -> None:
    params = [
        {"name": "kind", "in": "path", "required": True, "schema": {"enum": ["big", "small"]}},
        {
            "name": "slug",
            "in": "path",
            "required": True,
            "examples": {"first": {"value": "hello"}, "second": {"value": "bye"}},
        },
    ]
    document = tiny(one_op({"parameters": params}, "get", "/{kind}/{slug}"))

    assert steps_of(plan_from_openapi(document, base_url=BASE_URL))["op"]["path"] == "/big/hello"


def test_required_query_parameters_fill_the_query_and_optional_ones_are_left_out() -> None:
    params = [
        {"name": "page", "in": "query", "required": True, "schema": {"type": "integer"}},
        {
            "name": "sort",
            "in": "query",
            "required": True,
            "schema": {"type": "string", "enum": ["asc", "desc"]},
        },
        {"name": "filter", "in": "query", "schema": {"type": "string"}},
    ]
    document = tiny(one_op({"parameters": params}, "get"))

    step = steps_of(plan_from_openapi(document, base_url=BASE_URL))["op"]

    assert step["query"] == {"page": 1, "sort": "asc"}


def test_local_refs_are_resolved_for_parameters_bodies_and_nested_schemas() -> None:
    document = tiny(
        one_op(
            {
                "parameters": [{"$ref": "#/components/parameters/Limit"}],
                "requestBody": {"$ref": "#/components/requestBodies/NewOrder"},
            }
        ),
        components={
            "parameters": {
                "Limit": {"name": "limit", "in": "query", "required": True, "example": 25}
            },
            "requestBodies": {
                "NewOrder": {
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Order"}}
                    }
                }
            },
            "schemas": {
                "Order": {
                    "type": "object",
                    "required": ["customer", "lines"],
                    "properties": {
                        "customer": {"$ref": "#/components/schemas/Customer"},
                        "lines": {"type": "array", "items": {"$ref": "#/components/schemas/Line"}},
                    },
                },
                "Customer": {
                    "type": "object",
                    "required": ["email"],
                    "properties": {"email": {"type": "string", "format": "email"}},
                },
                "Line": {
                    "type": "object",
                    "required": ["sku"],
                    "properties": {"sku": {"type": "string", "example": "A-1"}},
                },
            },
        },
    )

    step = steps_of(plan_from_openapi(document, base_url=BASE_URL))["op"]

    assert step["query"] == {"limit": 25}
    assert step["body"] == {"customer": {"email": "user@example.com"}, "lines": [{"sku": "A-1"}]}


def test_a_recursive_schema_is_cut_off_instead_of_looping() -> None:
    node = {
        "type": "object",
        "required": ["name", "parent", "children"],
        "properties": {
            "name": {"type": "string"},
            "parent": {"$ref": "#/components/schemas/Node"},
            "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
        },
    }
    body = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Node"}}}}
    document = tiny(one_op({"requestBody": body}), components={"schemas": {"Node": node}})

    step = steps_of(plan_from_openapi(document, base_url=BASE_URL))["op"]

    assert step["body"] == {"name": "example", "children": []}


def test_body_is_generated_from_formats_enums_bounds_and_combinations() -> None:
    schema = {
        "allOf": [
            {
                "type": "object",
                "required": ["id"],
                "properties": {"id": {"type": "string", "format": "uuid", "readOnly": True}},
            },
            {
                "type": "object",
                "required": ["when", "email", "status", "qty", "price", "tags", "code", "flag"],
                "properties": {
                    "when": {"type": "string", "format": "date-time"},
                    "email": {"type": "string", "format": "email"},
                    "status": {"type": "string", "enum": ["active", "closed"]},
                    "qty": {"type": "integer", "minimum": 5, "maximum": 9},
                    "price": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5},
                    "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}},
                    "code": {"type": "string", "minLength": 10},
                    "flag": {"type": "boolean"},
                    "pick": {"oneOf": [{"type": "integer", "multipleOf": 7}, {"type": "string"}]},
                },
            },
        ]
    }
    body = {"content": {"application/json": {"schema": schema}}}

    step = steps_of(plan_from_openapi(tiny(one_op({"requestBody": body})), base_url=BASE_URL))

    generated = step["op"]["body"]
    assert "id" not in generated  # readOnly: a response-only property
    assert generated["when"] == "2024-01-01T00:00:00Z"
    assert generated["email"] == "user@example.com"
    assert generated["status"] == "active"
    assert generated["qty"] == 5
    assert 0 < generated["price"] <= 0.5
    assert generated["tags"] == ["exa"]
    assert len(generated["code"]) >= 10
    assert generated["flag"] is True
    assert generated["pick"] == 7  # an optional property, first oneOf branch


def test_a_media_type_example_is_preferred_to_generating_one() -> None:
    body = {
        "content": {
            "application/json": {
                "schema": {"type": "object", "properties": {"a": {"type": "integer"}}},
                "examples": {"usual": {"value": {"a": 42, "note": "from the document"}}},
            }
        }
    }

    step = steps_of(plan_from_openapi(tiny(one_op({"requestBody": body})), base_url=BASE_URL))

    assert step["op"]["body"] == {"a": 42, "note": "from the document"}


def test_a_form_body_is_url_encoded_with_its_content_type() -> None:
    steps = steps_of(plan_from_openapi(fixture("uspto"), base_url=BASE_URL))

    search = steps["perform-search"]
    assert search["headers"] == {"Content-Type": "application/x-www-form-urlencoded"}
    assert search["body"] == "criteria=%2A%3A%2A&start=0&rows=100"


def test_expect_status_is_the_lowest_documented_2xx_or_200_for_default_only() -> None:
    responses = {"202": {"description": "a"}, "201": {"description": "b"}, "400": {}}
    paths = {
        "/a": {"post": {"operationId": "a", "responses": responses}},
        "/b": {"get": {"operationId": "b", "responses": {"default": {"description": "x"}}}},
    }

    steps = steps_of(plan_from_openapi(tiny(paths), base_url=BASE_URL))

    assert steps["a"]["expect_status"] == 201
    assert steps["b"]["expect_status"] == 200


def test_step_names_fall_back_to_method_and_path_and_stay_unique() -> None:
    ok = {"200": {"description": "ok"}}
    paths = {
        "/users/{id}/orders": {
            "get": {"responses": ok, "parameters": [{"name": "id", "in": "path", "required": True}]}
        },
        "/a": {"get": {"operationId": "same name", "responses": ok}},
        "/b": {"get": {"operationId": "same_name", "responses": ok}},
    }

    steps = steps_of(plan_from_openapi(tiny(paths), base_url=BASE_URL))

    assert list(steps) == ["get_users_id_orders", "same_name", "same_name_2"]


def test_tag_filter_keeps_only_the_tagged_operations() -> None:
    doc = plan_from_openapi(fixture("uspto"), base_url=BASE_URL, tags=["metadata"])

    assert list(steps_of(doc)) == ["list-data-sets", "list-searchable-fields"]
    assert "2 of 3 operations" in doc["description"]


def test_operation_id_filter_accepts_raw_and_sanitised_ids() -> None:
    doc = plan_from_openapi(
        fixture("petstore-expanded"), base_url=BASE_URL, operation_ids=["addPet", "find_pet_by_id"]
    )

    assert list(steps_of(doc)) == ["addPet", "find_pet_by_id"]


def test_tags_and_operation_ids_together_choose_either() -> None:
    doc = plan_from_openapi(
        fixture("uspto"), base_url=BASE_URL, tags=["search"], operation_ids=["list-data-sets"]
    )

    assert list(steps_of(doc)) == ["list-data-sets", "perform-search"]


def test_base_url_with_a_path_prefix_is_the_target_as_given() -> None:
    doc = plan_from_openapi(fixture("petstore"), base_url=BASE_URL + "/v1")

    assert doc["target"] == {"base_url": BASE_URL + "/v1"}
    assert steps_of(doc)["listPets"]["path"] == "/pets"


def test_load_defaults_to_a_short_smoke_test_unless_given() -> None:
    default = plan_from_openapi(fixture("petstore"), base_url=BASE_URL)
    given = plan_from_openapi(
        fixture("petstore"), base_url=BASE_URL, name="pets", load={"vus": 3, "duration": "1m"}
    )

    assert default["load"] == {"profile": "smoke", "vus": 1, "duration": "10s"}
    assert given["load"] == {"vus": 3, "duration": "1m"}
    assert given["name"] == "pets"


def test_the_input_document_is_not_modified() -> None:
    document = fixture("petstore-expanded")
    before = copy.deepcopy(document)

    plan_from_openapi(document, base_url=BASE_URL)

    assert document == before


def test_declared_security_schemes_are_mentioned() -> None:
    schemes = {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}}
    document = tiny(one_op({}, "get"), components=schemes)

    description = plan_from_openapi(document, base_url=BASE_URL)["description"]

    assert "bearerAuth (http bearer)" in description
    assert "target.auth" in description


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "mapping"),
        ({"swagger": "2.0", "paths": {}}, "Swagger/OpenAPI 2.0"),
        ({"info": {}, "paths": {}}, "no 'openapi' version field"),
        ({"openapi": "4.0.0", "paths": {"/": {}}}, "OpenAPI 4.0.0 is not supported"),
        ({"openapi": "3.0.0", "info": {}}, "no paths"),
        ({"openapi": "3.0.0", "paths": {"/a": {"summary": "nothing"}}}, "declare no operations"),
    ],
)
def test_documents_that_are_not_usable_openapi_3_are_refused_precisely(
    document: Any, message: str
) -> None:
    with pytest.raises(ImportProblem, match=message):
        plan_from_openapi(document, base_url=BASE_URL)


def test_a_ref_that_does_not_resolve_names_the_ref_and_the_missing_part() -> None:
    body = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Nope"}}}}
    document = tiny(one_op({"requestBody": body}), components={"schemas": {"Yes": {}}})

    with pytest.raises(ImportProblem) as raised:
        plan_from_openapi(document, base_url=BASE_URL)

    assert str(raised.value) == (
        "$ref '#/components/schemas/Nope' does not resolve: '#/components/schemas' has no 'Nope'"
    )


def test_an_external_ref_is_refused() -> None:
    document = tiny({"/a": {"$ref": "other.yaml#/paths/~1a"}})

    with pytest.raises(ImportProblem, match="points outside this document"):
        plan_from_openapi(document, base_url=BASE_URL)


def test_a_ref_loop_without_a_value_is_refused() -> None:
    schemas = {"A": {"$ref": "#/components/schemas/B"}, "B": {"$ref": "#/components/schemas/A"}}
    body = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}}}
    document = tiny(one_op({"requestBody": body}), components={"schemas": schemas})

    with pytest.raises(ImportProblem, match="cycle"):
        plan_from_openapi(document, base_url=BASE_URL)


def test_filters_that_match_nothing_say_what_exists() -> None:
    with pytest.raises(ImportProblem, match=r"tag 'pets' matches no operation.*metadata, search"):
        plan_from_openapi(fixture("uspto"), base_url=BASE_URL, tags=["pets"])
    with pytest.raises(ImportProblem, match="operationId 'nope' matches no operation"):
        plan_from_openapi(fixture("petstore"), base_url=BASE_URL, operation_ids=["nope"])


def test_more_operations_than_a_scenario_holds_asks_for_a_filter() -> None:
    ok = {"200": {"description": "ok"}}
    paths = {f"/r{i}": {"get": {"responses": ok}} for i in range(201)}

    with pytest.raises(ImportProblem, match=r"201 operations .* at most 200 steps"):
        plan_from_openapi(tiny(paths), base_url=BASE_URL)


def test_a_base_url_the_plan_would_reject_is_an_import_problem() -> None:
    with pytest.raises(ImportProblem, match=r"target\.base_url"):
        plan_from_openapi(fixture("petstore"), base_url="ftp://example")


def test_an_import_the_options_make_invalid_names_every_error_at_its_own_path() -> None:
    document = tiny(one_op({}, "get"))

    with pytest.raises(ImportProblem) as raised:
        plan_from_openapi(
            document, base_url="ftp://127.0.0.1", load={"profile": "load", "duraton": "10s"}
        )

    message = str(raised.value)
    assert message.startswith("the imported plan is not valid: 4 errors: ")
    assert "load.duraton: unknown key (did you mean `duration`?)" in message
    assert "load.load" not in message
    assert "target.base_url" in message
