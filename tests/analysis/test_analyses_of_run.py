"""GET /analyses?run_id=: how a client that knows a run finds its verdicts, newest first."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Analysis, Run
from tests.builders import API, make_plan, make_run, result

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


async def analysis_of(session: AsyncSession, run: Run, verdict: str, at: datetime) -> Analysis:
    analysis = Analysis(
        run_id=run.id,
        verdict=verdict,
        slo_results=[],
        findings=[],
        warnings=[],
        report_md="",
        created_at=at,
    )
    session.add(analysis)
    await session.flush()
    return analysis


async def test_a_runs_analyses_are_listed_newest_first_briefly(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    run, other = await make_run(session, plan), await make_run(session, plan)
    # Stored out of order: the list is ordered by when each was made.
    middle = await analysis_of(session, run, "fail", T0 + timedelta(minutes=5))
    newest = await analysis_of(session, run, "pass", T0 + timedelta(minutes=9))
    oldest = await analysis_of(session, run, "inconclusive", T0)
    await analysis_of(session, other, "warning", T0 + timedelta(hours=1))

    response = await client.get(f"{API}/analyses", params={"run_id": str(run.id)})

    assert response.status_code == 200
    assert response.json() == [
        {
            "id": str(a.id),
            "run_id": str(run.id),
            "verdict": a.verdict,
            "created_at": a.created_at.isoformat().replace("+00:00", "Z"),
            "links": {"self": f"{API}/analyses/{a.id}"},
        }
        for a in (newest, middle, oldest)
    ]


async def test_limit_keeps_the_newest(client: AsyncClient, session: AsyncSession) -> None:
    run = await make_run(session, await make_plan(session))
    made = [await analysis_of(session, run, "pass", T0 + timedelta(minutes=i)) for i in range(25)]
    newest_first = [str(a.id) for a in reversed(made)]

    default = (await client.get(f"{API}/analyses", params={"run_id": str(run.id)})).json()
    three = (await client.get(f"{API}/analyses", params={"run_id": str(run.id), "limit": 3})).json()
    all_of_them = (
        await client.get(f"{API}/analyses", params={"run_id": str(run.id), "limit": 100})
    ).json()

    assert [a["id"] for a in default] == newest_first[:20]
    assert [a["id"] for a in three] == newest_first[:3]
    assert [a["id"] for a in all_of_them] == newest_first


async def test_an_analysis_made_by_post_analyse_is_listed_and_its_link_leads_to_it(
    client: AsyncClient, session: AsyncSession
) -> None:
    rows = [result("*", p95=120), result("list_orders", p95=100), result("create_order", p95=140)]
    run = await make_run(session, await make_plan(session), results=rows)
    first = (await client.post(f"{API}/analyse", json={"run_id": str(run.id)})).json()
    second = (await client.post(f"{API}/analyse", json={"run_id": str(run.id)})).json()

    listed = (await client.get(f"{API}/analyses", params={"run_id": str(run.id)})).json()

    assert [(a["id"], a["verdict"]) for a in listed] == [
        (second["id"], "pass"),
        (first["id"], "pass"),
    ]
    whole = await client.get(listed[0]["links"]["self"])
    assert whole.status_code == 200
    assert whole.json()["id"] == second["id"]
    assert whole.json()["run_id"] == str(run.id)


async def test_a_run_not_analysed_yet_or_unknown_has_an_empty_list(
    client: AsyncClient, session: AsyncSession
) -> None:
    run = await make_run(session, await make_plan(session))

    for run_id in (run.id, uuid.uuid4()):
        response = await client.get(f"{API}/analyses", params={"run_id": str(run_id)})
        assert response.status_code == 200
        assert response.json() == []


@pytest.mark.parametrize(
    "params",
    [{}, {"run_id": "not-a-uuid"}, {"limit": 0}, {"limit": 101}],
    ids=["no run_id", "not a uuid", "limit 0", "limit 101"],
)
async def test_a_bad_query_is_a_problem(
    client: AsyncClient, session: AsyncSession, params: dict[str, Any]
) -> None:
    run = await make_run(session, await make_plan(session))
    query = {"run_id": str(run.id), **params} if "limit" in params else params

    response = await client.get(f"{API}/analyses", params=query)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
