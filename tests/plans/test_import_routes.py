from __future__ import annotations

from pathlib import Path

from httpx import AsyncClient

from tests.builders import API

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LOCAL = "http://127.0.0.1:8080"


async def test_an_openapi_document_becomes_a_draft_plan_on_the_given_target(
    client: AsyncClient,
) -> None:
    document = (FIXTURES / "openapi" / "petstore.yaml").read_bytes()

    response = await client.post(
        f"{API}/plans/import/openapi",
        params={"base_url": LOCAL, "operation_id": ["listPets", "showPetById"]},
        content=document,
        headers={"Content-Type": "application/yaml"},
    )

    assert response.status_code == 201, response.text
    plan = response.json()
    assert plan["status"] == "draft"
    assert plan["spec"]["target"]["base_url"] == LOCAL
    steps = plan["spec"]["scenarios"][0]["steps"]
    assert [s["name"] for s in steps] == ["listPets", "showPetById"]
    assert "petstore.swagger.io" not in plan["script"]


async def test_a_har_recording_becomes_a_workflow_plan(client: AsyncClient) -> None:
    recording = (FIXTURES / "har" / "full.har").read_bytes()

    response = await client.post(
        f"{API}/plans/import/har",
        params={"base_url": LOCAL},
        content=recording,
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 201, response.text
    assert len(response.json()["spec"]["scenarios"][0]["steps"]) >= 1


async def test_an_import_aimed_at_a_public_host_is_refused(client: AsyncClient) -> None:
    document = (FIXTURES / "openapi" / "petstore.yaml").read_bytes()

    response = await client.post(
        f"{API}/plans/import/openapi",
        params={"base_url": "http://petstore.swagger.io/v1"},
        content=document,
        headers={"Content-Type": "application/yaml"},
    )

    assert response.status_code == 422
    assert response.json()["code"] == "guardrail.host_not_allowed"


async def test_a_document_that_is_not_openapi_3_is_a_clear_422(client: AsyncClient) -> None:
    response = await client.post(
        f"{API}/plans/import/openapi",
        params={"base_url": LOCAL},
        json={"swagger": "2.0", "paths": {}},
    )

    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "import.invalid"
    assert "OpenAPI" in problem["detail"]


async def test_openapi_import_needs_a_base_url(client: AsyncClient) -> None:
    response = await client.post(f"{API}/plans/import/openapi", json={"openapi": "3.0.0"})

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"
