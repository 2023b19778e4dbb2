"""GET /runs/compare: one run against another with the analysis' own statistics."""

from __future__ import annotations

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.models import Run
from tests.builders import API, add_seconds, counted_queries, make_plan, make_run, noisy, result


async def two_runs(session: AsyncSession, *, p95_a: float, p95_b: float) -> tuple[Run, Run]:
    """Two finished runs of one plan, list_orders' per-second p95 around the figures given."""
    plan = await make_plan(session)
    runs = []
    for seed, p95 in enumerate((p95_a, p95_b), start=1):
        run = await make_run(
            session, plan, results=[result("*", p95=p95), result("list_orders", p95=p95)]
        )
        await add_seconds(session, run, {"list_orders": noisy(p95, seed)})
        runs.append(run)
    return runs[0], runs[1]


async def test_two_runs_compare_side_by_side_without_storing_an_analysis(
    client: AsyncClient, session: AsyncSession
) -> None:
    a, b = await two_runs(session, p95_a=100, p95_b=210)

    response = await client.get(f"{API}/runs/compare", params={"a": str(a.id), "b": str(b.id)})
    markdown = await client.get(
        f"{API}/runs/compare", params={"a": str(a.id), "b": str(b.id), "format": "markdown"}
    )
    backwards = await client.get(f"{API}/runs/compare", params={"a": str(a.id), "b": str(a.id)})

    assert response.status_code == 200, response.text
    body = response.json()
    p95 = next(
        c for c in body["comparisons"] if c["endpoint"] == "list_orders" and c["sli"] == "p95"
    )
    assert (p95["baseline"], p95["current"], p95["verdict"]) == (100, 210, "regression")
    assert p95["interval"][0] > 0
    assert body["regressions"] >= 1
    assert markdown.headers["perf-agent-regressions"] == str(body["regressions"])
    assert "| list_orders | p95 | 100.00 ms | 210.00 ms | +110.0% |" in markdown.text
    assert (backwards.status_code, backwards.json()["code"]) == (422, "baseline.self")
    analyses = await client.get(f"{API}/runs/{b.id}")
    assert analyses.status_code == 200  # /runs/{id} still answers beside /runs/compare


async def test_a_comparison_asked_again_is_answered_from_memory_with_its_etag(
    client: AsyncClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    a, b = await two_runs(session, p95_a=100, p95_b=120)
    params = {"a": str(a.id), "b": str(b.id)}

    first = await client.get(f"{API}/runs/compare", params=params)
    with counted_queries(engine) as statements:
        again = await client.get(f"{API}/runs/compare", params=params)
    unchanged = await client.get(
        f"{API}/runs/compare", params=params, headers={"If-None-Match": first.headers["etag"]}
    )

    assert first.status_code == 200, first.text
    assert again.content == first.content
    assert [s for s in statements if "FROM runs" in s or "run_samples" in s] == []
    assert first.headers["cache-control"] == "private, max-age=86400, immutable"
    assert unchanged.status_code == 304
