"""The run's profile becomes findings on the endpoints it explains."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.analysis.profile import match
from app.models import RunEvent
from tests.builders import API, add_seconds, make_plan, make_run, result

ENDPOINTS = [
    {"name": "list_products", "path": "/api/products?category=books"},
    {"name": "recent_orders", "path": "/api/orders/recent"},
    {"name": "create_order", "method": "POST", "path": "/api/orders", "body": {}},
]
WORDS = {
    "list_products": {"list", "products", "category"},
    "recent_orders": {"recent", "orders"},
    "create_order": {"create", "order", "orders"},
}


def test_a_handler_is_matched_to_the_endpoint_sharing_most_words() -> None:
    assert match("create_target.<locals>.recent_orders", WORDS) == "recent_orders"
    assert match("listProducts", WORDS) == "list_products"
    assert match("create_order", WORDS) == "create_order"
    assert match("sum_of_squares", WORDS) is None


def profile_event(**changes: Any) -> dict[str, Any]:
    return {
        "window": {"start_s": 2.5, "seconds": 5.0},
        "requests": 40,
        "profiles": [
            {
                "source": "py-spy",
                "status": "ok",
                "reason": None,
                "samples": 100,
                "seconds": 5.0,
                "functions": [
                    {
                        "name": "create_target.<locals>.recent_orders",
                        "location": "app/demo/target.py:191",
                        "self_share": 0.71,
                        "total_share": 0.71,
                    }
                ],
                "stacks": [],
                "queries": [],
            },
            {
                "source": "pg_stat_statements",
                "status": "ok",
                "reason": None,
                "samples": 1600,
                "seconds": 5.0,
                "functions": [],
                "stacks": [],
                "queries": [
                    {
                        "query": "SELECT product_id FROM order_items WHERE order_id = $1",
                        "calls": 1600,
                        "total_ms": 900.0,
                        "mean_ms": 0.56,
                        "rows": 3200,
                        "share": 0.9,
                        "calls_per_request": 40.0,
                    }
                ],
            },
        ],
        "hot_spots": [
            {
                "function": "recent_orders",
                "self_share": 0.71,
                "total_share": 0.71,
                "location": "/srv/shop/app/demo/target.py:191",
                "code": "items = conn.execute(",
                "sql": "SELECT product_id, quantity FROM order_items WHERE order_id = ?",
                "in_loop": True,
            }
        ],
        **changes,
    }


async def _analysed(client: AsyncClient, session: AsyncSession, data: dict[str, Any]) -> Any:
    plan = await make_plan(
        session,
        endpoints=ENDPOINTS,
        slos=[{"objective": "p95 < 100ms", "endpoint": "recent_orders"}],
    )
    run = await make_run(
        session,
        plan,
        results=[
            result("*", p95=900.0),
            result("list_products", p95=5.0),
            result("recent_orders", p95=900.0),
            result("create_order", p95=6.0),
        ],
    )
    await add_seconds(session, run, {"recent_orders": [900.0] * 10}, generator={})
    session.add(RunEvent(run_id=run.id, kind="profile", message="profiled", data=data))
    await session.flush()
    response = await client.post(f"{API}/analyse", json={"run_id": str(run.id)})
    assert response.status_code == 201, response.text
    return response.json()


async def test_the_slow_endpoint_s_finding_names_its_function_and_query_pattern_first(
    client: AsyncClient, session: AsyncSession
) -> None:
    body = await _analysed(client, session, profile_event())

    kinds = [f["kind"] for f in body["findings"]]
    hot = body["findings"][kinds.index("hot_path")]
    assert hot["endpoint"] == "recent_orders"
    assert hot["severity"] == "critical"  # the endpoint breaks its objective
    assert (
        "71% of the target's profiled samples are in `recent_orders` at target.py:191"
        in (hot["summary"])
    )
    assert "N+1 query pattern" in hot["summary"]
    assert "an IN list or a JOIN" in hot["recommendation"]
    assert kinds.index("hot_path") < kinds.index("slow_endpoint")
    query = body["findings"][kinds.index("hot_query")]
    assert "40.0 per request of 40" in query["summary"]
    assert body["profile"]["hot_spots"][0]["function"] == "recent_orders"
    report = (await client.get(f"{API}/analyses/{body['id']}/report.md")).text
    assert "**Profile** of the target, 5 s from 2.5 s" in report
    assert "| `recent_orders` | 71% | 71% | `app/demo/target.py:191` |" in report
    assert "SELECT product_id, quantity FROM order_items WHERE order_id = ?" in report


async def test_a_profiler_that_could_not_run_says_why_and_claims_nothing(
    client: AsyncClient, session: AsyncSession
) -> None:
    data = profile_event(
        profiles=[
            {
                "source": "py-spy",
                "status": "unavailable",
                "reason": "py-spy may not read process 42 (ptrace)",
                "samples": 0,
                "seconds": 0.0,
                "functions": [],
                "stacks": [],
                "queries": [],
            }
        ],
        hot_spots=[],
    )

    body = await _analysed(client, session, data)

    assert not {"hot_path", "hot_query"} & {f["kind"] for f in body["findings"]}
    report = (await client.get(f"{API}/analyses/{body['id']}/report.md")).text
    assert "py-spy: unavailable — py-spy may not read process 42 (ptrace)" in report
