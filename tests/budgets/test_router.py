"""The budget loop over HTTP: iterations recorded from finished runs, each judged against
the one before, until the target is met or the iterations run out."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Plan, Run, RunStatus
from tests.builders import API, add_seconds, make_plan, make_run, noisy, result

NAMES = ("list_orders", "create_order")


async def finished_run(session: AsyncSession, plan: Plan, p95: float, seed: int) -> Run:
    """A run whose list_orders (and overall) p95 is ``p95``; create_order stays at 50 ms."""
    run = await make_run(
        session,
        plan,
        results=[
            result("*", p95=p95),
            result("list_orders", p95=p95),
            result("create_order", p95=50),
        ],
    )
    await add_seconds(
        session, run, {"list_orders": noisy(p95, seed), "create_order": noisy(50, seed + 1)}
    )
    return run


async def start(client: AsyncClient, plan: Plan, **changes: Any) -> dict[str, Any]:
    body = {"plan_id": str(plan.id), "target_ms": "150ms", **changes}
    response = await client.post(f"{API}/budgets", json=body)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == response.json()["links"]["self"]
    created: dict[str, Any] = response.json()
    return created


async def record(client: AsyncClient, budget: dict[str, Any], run: Run) -> Any:
    return await client.post(
        f"{API}/budgets/{budget['id']}/iterations", json={"run_id": str(run.id)}
    )


async def test_the_loop_stops_at_the_first_iteration_under_the_target(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    budget = await start(client, plan, endpoint="list_orders")
    slow, fast = await finished_run(session, plan, 400, 1), await finished_run(session, plan, 90, 3)

    first = await record(client, budget, slow)
    second = await record(client, budget, fast)

    assert first.status_code == 201, first.text
    assert first.json()["status"] == "running"
    one = first.json()["iterations"][0]
    assert (one["number"], one["met"], one["value_ms"], one["change"]) == (1, False, 400, None)
    assert second.status_code == 201, second.text
    state = second.json()
    assert state["status"] == "met"
    two = state["iterations"][1]
    assert (two["number"], two["met"], two["value_ms"]) == (2, True, 90)
    assert round(two["change"], 3) == round((90 - 400) / 400, 3)
    # The change from pass 1 is the analysis' own comparison of the two runs.
    assert two["comparison"]["verdict"] == "improvement"
    assert two["comparison"]["p_value"] < 0.01
    assert two["comparison"]["baseline"] == 400
    assert two["analysis_id"] is not None
    later = await record(client, budget, await finished_run(session, plan, 80, 5))
    assert later.status_code == 409
    assert later.json()["code"] == "budget.finished"


async def test_a_budget_not_met_in_its_iterations_is_exhausted_and_its_report_says_so(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    budget = await start(client, plan, max_iterations=2, target_ms=100)
    await record(client, budget, await finished_run(session, plan, 400, 1))
    response = await record(client, budget, await finished_run(session, plan, 300, 3))

    assert response.json()["status"] == "exhausted"
    report = await client.get(f"{API}/budgets/{budget['id']}/report.md")
    assert report.status_code == 200
    text = report.text
    assert "# Performance budget: p95 of all requests < 100 ms" in text
    assert "Status **exhausted** after 2 of at most 2 iterations." in text
    assert "| 1 | 400.00 ms | – |" in text
    assert "| 2 | 300.00 ms | -25.0% | improvement" in text
    listed = await client.get(f"{API}/budgets", params={"plan_id": str(plan.id)})
    assert [b["id"] for b in listed.json()] == [budget["id"]]
    whole = (await client.get(f"{API}/budgets/{budget['id']}")).json()
    assert [i["value_ms"] for i in whole["iterations"]] == [400, 300]


async def test_iterations_must_be_finished_runs_of_the_budgets_plan_each_once(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan, other = await make_plan(session), await make_plan(session, name="other")
    budget = await start(client, plan)
    run = await finished_run(session, plan, 200, 1)
    queued = await make_run(session, plan, status=RunStatus.queued)
    foreign = await finished_run(session, other, 200, 2)

    assert (await record(client, budget, run)).status_code == 201
    again = await record(client, budget, run)
    unfinished = await record(client, budget, queued)
    elsewhere = await record(client, budget, foreign)

    assert (again.status_code, again.json()["code"]) == (409, "budget.same_run")
    assert (unfinished.status_code, unfinished.json()["code"]) == (409, "run.not_finished")
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (422, "budget.other_plan")


async def test_a_budget_needs_a_known_plan_step_and_a_latency_target(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)

    unknown_step = await client.post(
        f"{API}/budgets", json={"plan_id": str(plan.id), "target_ms": 100, "endpoint": "nope"}
    )
    bad_target = await client.post(
        f"{API}/budgets", json={"plan_id": str(plan.id), "target_ms": "fast"}
    )
    no_plan = await client.post(
        f"{API}/budgets",
        json={"plan_id": "00000000-0000-0000-0000-000000000000", "target_ms": 100},
    )
    unknown = await client.get(f"{API}/budgets/00000000-0000-0000-0000-000000000000")

    assert (unknown_step.status_code, unknown_step.json()["code"]) == (
        422,
        "budget.unknown_endpoint",
    )
    assert "list_orders, create_order" in unknown_step.json()["detail"]
    assert bad_target.status_code == 422
    assert bad_target.headers["content-type"] == "application/problem+json"
    assert "not a latency like '300ms'" in bad_target.text
    assert (no_plan.status_code, no_plan.json()["code"]) == (404, "plan.not_found")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "budget.not_found")
