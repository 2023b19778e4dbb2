from __future__ import annotations

from httpx import AsyncClient

from app.core.settings import Settings
from app.k6 import sandbox


async def test_healthz_answers_without_the_database(client: AsyncClient) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_checks_the_database(client: AsyncClient) -> None:
    response = await client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["database"] == "ok"


async def test_readyz_says_which_sandbox_mode_is_active(
    client: AsyncClient, settings: Settings
) -> None:
    expected = sandbox.status(settings)

    body = (await client.get("/readyz")).json()

    assert body["sandbox"]["mode"] == ("kernel" if expected.available else "none")
    assert body["sandbox"]["detail"] == expected.reason
    assert body["sandbox"]["hand_written_scripts"] == (
        "sandboxed" if expected.available else "refused"
    )


async def test_without_a_sandbox_readyz_says_hand_written_scripts_are_refused(
    client: AsyncClient, settings: Settings
) -> None:
    settings.sandbox = "off"

    body = (await client.get("/readyz")).json()

    assert body["sandbox"] == {
        "mode": "none",
        "setting": "off",
        "detail": "PERF_AGENT_SANDBOX=off",
        "hand_written_scripts": "refused",
    }


async def test_metrics_are_prometheus_text(client: AsyncClient) -> None:
    response = await client.get("/metrics")

    assert response.status_code == 200
    assert "perf_agent_runs_queued_total" in response.text


async def test_swagger_and_openapi_document_the_routes(client: AsyncClient) -> None:
    docs = await client.get("/docs")
    spec = (await client.get("/openapi.json")).json()

    assert docs.status_code == 200
    paths = spec["paths"]
    prefix = "/api/agents/performance-agent"
    for path in ("/plan", "/execute", "/analyse", "/runs/{run_id}", "/analyses/{analysis_id}"):
        assert prefix + path in paths
    plan_body = paths[prefix + "/plan"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/yaml"} <= set(plan_body)


async def test_unknown_route_is_a_404_problem(client: AsyncClient) -> None:
    response = await client.get("/nope")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"
