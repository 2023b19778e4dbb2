"""A process at its in-flight bound answers 503 + Retry-After at once; health checks pass."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from app.core.errors import install_error_handlers
from app.core.shedding import LoadShedding


def slow_app(release: asyncio.Event) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        await release.wait()
        return {"status": "done"}

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    app.add_middleware(LoadShedding, limit=2, retry_after_s=3)
    return app


async def test_requests_beyond_the_bound_are_shed_and_health_checks_are_not() -> None:
    release = asyncio.Event()
    transport = ASGITransport(app=slow_app(release))
    async with AsyncClient(transport=transport, base_url="http://t") as client:
        held = [asyncio.create_task(client.get("/slow")) for _ in range(2)]
        await asyncio.sleep(0.1)

        shed = await client.get("/slow")
        ready = await client.get("/readyz")
        release.set()
        finished = await asyncio.gather(*held)
        after = await client.get("/slow")

    assert shed.status_code == 503
    assert shed.headers["retry-after"] == "3"
    assert shed.headers["content-type"] == "application/problem+json"
    assert shed.json()["code"] == "overloaded.in_flight"
    assert ready.status_code == 200
    assert [r.status_code for r in finished] == [200, 200]
    assert after.status_code == 200  # the bound frees as requests end


async def test_a_method_the_route_does_not_take_says_which_it_does() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/things")
    async def things() -> list[str]:
        return []

    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        response = await client.delete("/things")

    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert response.json()["code"] == "method_not_allowed"
