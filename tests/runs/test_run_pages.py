from __future__ import annotations

import uuid
from datetime import UTC, datetime

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.core import pagination
from app.models import Analysis, RunStatus
from app.runs.repository import RunRepository
from tests.builders import API, counted_queries, explain, make_plan, make_run, result


async def test_following_next_reaches_every_run_once_newest_first(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    made = [await make_run(session, plan, results=[result("*", p95=i + 1.0)]) for i in range(7)]

    seen: list[str] = []
    url: str | None = f"{API}/runs?plan_id={plan.id}&limit=3"
    pages = 0
    while url is not None:
        response = await client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [item["id"] for item in body["items"]]
        if body["next"]:
            assert response.headers["link"] == f'<{body["next"]}>; rel="next"'
        url, pages = body["next"], pages + 1

    assert pages == 3
    assert seen == [str(run.id) for run in reversed(made)]


async def test_a_run_summary_carries_its_newest_verdict(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    run = await make_run(session, plan, results=[result("*", p95=12.0, requests=300)])
    for verdict in ("fail", "pass"):
        session.add(
            Analysis(
                run_id=run.id, verdict=verdict, slo_results=[], findings=[], warnings=[],
                report_md="",
            )
        )  # fmt: skip
        await session.flush()

    [item] = (await client.get(f"{API}/runs", params={"plan_id": str(plan.id)})).json()["items"]

    assert (item["verdict"], item["requests"], item["p95_ms"]) == ("pass", 300, 12.0)
    assert item["finished"] is True


async def test_a_cursor_the_service_did_not_give_is_a_problem(client: AsyncClient) -> None:
    response = await client.get(f"{API}/runs", params={"cursor": "not-a-cursor"})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "pagination.bad_cursor"


async def test_a_page_is_one_query_however_many_runs_it_lists(
    client: AsyncClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    plan = await make_plan(session)
    for i in range(30):
        await make_run(session, plan, results=[result("*", p95=5.0), result("a", p95=i + 1.0)])

    with counted_queries(engine) as statements:
        response = await client.get(f"{API}/runs", params={"plan_id": str(plan.id)})

    assert len(response.json()["items"]) == 30
    runs_queries = [s for s in statements if "FROM runs" in s]
    assert len(runs_queries) == 1, runs_queries


async def test_every_filter_of_the_run_list_is_served_by_an_index_without_a_sort(
    session: AsyncSession,
) -> None:
    plan = await make_plan(session)
    await make_run(session, plan)
    cursor = pagination.encode(datetime.now(UTC), uuid.uuid4())
    filters = (
        {"plan_id": None, "status": None},
        {"plan_id": plan.id, "status": None},
        {"plan_id": None, "status": RunStatus.failed},
    )

    for where in filters:
        for page_cursor in (None, cursor):
            query = RunRepository.page_query(**where, cursor=page_cursor, limit=50)
            plan_text = await explain(session, query)
            assert "Sort" not in plan_text, (where, plan_text)
            assert "ix_runs_" in plan_text, (where, plan_text)
            assert "ix_analyses_run_created" in plan_text, plan_text


async def test_a_page_asked_again_within_a_second_is_the_same_until_a_write_clears_it(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    await make_run(session, plan)
    url = f"{API}/runs?plan_id={plan.id}"

    first = (await client.get(url)).json()["items"]
    await make_run(session, plan)  # behind this process's back, as another process would
    again = (await client.get(url)).json()["items"]
    await client.post(f"{API}/execute", json={"plan_id": str(plan.id)})  # a write through it
    after_write = (await client.get(url)).json()["items"]

    assert len(first) == len(again) == 1
    assert len(after_write) == 3
