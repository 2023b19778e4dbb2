"""Every route that takes a JSON body answers a wrong or missing Content-Type with a 415."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.errors import install_error_handlers
from app.core.settings import Settings
from app.main import create_app
from tests.builders import bearer, make_key

PROBLEM = "application/problem+json"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
async def app(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> FastAPI:
    app = create_app(settings)
    app.state.sessionmaker = sessionmaker
    return app


@pytest.fixture
async def api(
    app: FastAPI, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[AsyncClient]:
    async with sessionmaker() as session:
        key = await make_key(session)  # an admin: every route gets as far as its body
        await session.commit()
    transport = ASGITransport(app=app)
    async with AsyncClient(transport=transport, base_url="http://test", headers=bearer(key)) as c:
        yield c


def _json_operations(app: FastAPI) -> list[tuple[str, str, dict[str, str]]]:
    """(method, URL, required query) of every operation whose documented body includes JSON."""
    found = []
    for path, item in app.openapi()["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            url = re.sub(r"\{[^}]+\}", lambda _: str(uuid.uuid4()), path)
            query = {
                p["name"]: "http://127.0.0.1:9" if p["name"] == "base_url" else "x"
                for p in operation.get("parameters", [])
                if p["in"] == "query" and p.get("required")
            }
            found.append((method.upper(), url, query))
    return found


def _assert_415(response: Any, *, accepted: str = "application/json") -> None:
    assert response.status_code == 415, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["code"] == "unsupported_media_type"
    assert accepted in problem["accepted"]


async def test_every_json_route_answers_a_form_body_with_415(
    app: FastAPI, api: AsyncClient
) -> None:
    operations = _json_operations(app)
    # /plan, /execute, /analyse, reviews, baselines … : the walk must find the known ones.
    urls = {url for _, url, _ in operations}
    assert any(url.endswith("/plan") for url in urls)
    assert any(url.endswith("/execute") for url in urls)
    assert len(operations) >= 8

    for method, url, query in operations:
        response = await api.request(
            method, url, params=query, content=b"plan_id=1", headers={"Content-Type": FORM}
        )
        _assert_415(response)


async def test_every_json_route_answers_a_body_without_content_type_with_415(
    app: FastAPI, api: AsyncClient
) -> None:
    for method, url, query in _json_operations(app):
        response = await api.request(method, url, params=query, content=b'{"plan_id": "x"}')
        assert "content-type" not in response.request.headers
        _assert_415(response)


async def test_execute_with_yaml_is_415_not_a_puzzling_422(api: AsyncClient) -> None:
    # The report: `body: Input should be a valid dictionary…`.
    response = await api.post(
        "/api/agents/performance-agent/execute",
        content=f"plan_id: {uuid.uuid4()}\n".encode(),
        headers={"Content-Type": "application/yaml"},
    )

    _assert_415(response)
    assert response.json()["detail"] == "send the body as application/json, not application/yaml"


async def test_execute_with_json_still_reaches_validation(api: AsyncClient) -> None:
    response = await api.post(
        "/api/agents/performance-agent/execute",
        json={"plan_id": "not-a-uuid"},
    )

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


class _Body(BaseModel):
    name: str


async def test_json_types_and_optional_bodies() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/required")
    async def required(body: _Body) -> dict[str, str]:
        return {"name": body.name}

    @app.post("/optional")
    async def optional(body: _Body | None = None) -> dict[str, str | None]:
        return {"name": body.name if body else None}

    transport = ASGITransport(app=app)
    async with AsyncClient(transport=transport, base_url="http://t") as client:
        structured = await client.post(
            "/required",
            content=b'{"name": "a"}',
            headers={"Content-Type": "application/merge-patch+json; charset=utf-8"},
        )
        empty = await client.post("/required")
        left_out = await client.post("/optional")
        as_form = await client.post("/optional", data={"name": "a"})
        as_text = await client.post(
            "/required", content=b"a", headers={"Content-Type": "text/plain"}
        )

    assert structured.status_code == 200
    assert structured.json() == {"name": "a"}
    _assert_415(empty)  # no body, no type: the body it needs is JSON
    assert empty.json()["detail"] == (
        "send the body as application/json (the request had no Content-Type)"
    )
    assert left_out.status_code == 200  # an optional body may be left out
    _assert_415(as_form)
    _assert_415(as_text)
