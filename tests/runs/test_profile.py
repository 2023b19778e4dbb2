"""The worker profiles a local target during the steady middle of a real run."""

from __future__ import annotations

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.settings import Settings
from app.models import RunEvent
from app.runs.profile import window
from app.runs.worker import Worker
from tests.builders import API, make_plan, make_run, plan_doc

pytestmark = pytest.mark.k6


def test_the_window_is_the_middle_of_the_test_and_at_most_30_seconds() -> None:
    assert window(10) == (2.5, 5.0)
    assert window(3600) == (900.0, 30.0)
    assert window(3) is None  # too short to profile


async def _profile_event(
    committed: async_sessionmaker[AsyncSession], settings: Settings, **plan: object
) -> RunEvent | None:
    async with committed() as session, session.begin():
        run = await make_run(session, await make_plan(session, **plan), status="queued")
    await Worker(committed, settings).run_once()
    async with committed() as session:
        events = await session.scalars(
            select(RunEvent).where(RunEvent.run_id == run.id, RunEvent.kind == "profile")
        )
        return events.first()


async def test_the_demo_shop_s_n_plus_one_handler_is_its_hottest_function(
    committed: async_sessionmaker[AsyncSession], settings: Settings, demo_target: str
) -> None:
    event = await _profile_event(
        committed,
        settings,
        target={"base_url": demo_target, "environment": "local"},
        endpoints=[{"name": "recent", "path": "/api/orders/recent"}],
        load={"profile": "load", "vus": 2, "duration": "6s"},
        slos=["p95 < 5000ms"],
    )

    assert event is not None
    assert event.data is not None
    (python,) = event.data["profiles"]
    assert python["source"] == "py-spy"
    assert python["status"] == "ok", python["reason"]
    assert event.data["window"] == {"start_s": 1.5, "seconds": 3.0}
    assert event.data["requests"] > 0
    top = python["functions"][0]
    assert top["name"].endswith("recent_orders"), python["functions"][:3]
    assert top["location"].split(":")[0].endswith("app/demo/target.py")
    assert "py-spy: ok (top create_target.<locals>.recent_orders" in event.message
    # The hot line, read from the target's own source: a query inside a loop.
    spot = event.data["hot_spots"][0]
    assert spot["function"] == "recent_orders"
    assert spot["sql"] == "SELECT product_id, quantity FROM order_items WHERE order_id = ?"
    assert spot["in_loop"] is True


async def test_profiling_off_takes_no_profile(
    committed: async_sessionmaker[AsyncSession], settings: Settings, demo_target: str
) -> None:
    event = await _profile_event(
        committed,
        settings,
        target={"base_url": demo_target, "environment": "local"},
        endpoints=[{"name": "health", "path": "/health"}],
        load={"profile": "load", "vus": 1, "duration": "4s"},
        slos=["p95 < 5000ms"],
        profiling={"python": "off"},
    )

    assert event is None


async def test_a_pprof_url_outside_the_allowed_hosts_is_refused_with_the_plan(
    client: AsyncClient,
) -> None:
    # 127.0.0.2 stands in for a host the deployment does not allow; nothing is sent to it.
    document = plan_doc(profiling={"pprof_url": "http://127.0.0.2:6060/debug/pprof/profile"})

    response = await client.post(f"{API}/plan", json=document)

    assert response.status_code == 422
    assert response.json()["code"] == "guardrail.host_not_allowed"
    assert "profiling.pprof_url" in response.json()["detail"]


async def test_a_pprof_url_with_credentials_or_a_query_is_refused(client: AsyncClient) -> None:
    for url in ("http://u:p@127.0.0.1:6060/debug/pprof/profile", "http://127.0.0.1:6060/x?a=1"):
        response = await client.post(f"{API}/plan", json=plan_doc(profiling={"pprof_url": url}))

        assert response.status_code == 422, url
        assert response.headers["content-type"].startswith("application/problem+json")
