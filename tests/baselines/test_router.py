from __future__ import annotations

import uuid

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import RunStatus
from tests.builders import API, make_plan, make_run, result


async def test_promoted_runs_are_listed_newest_first(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    first, second = await make_run(session, plan), await make_run(session, plan)
    for run in (first, second):
        response = await client.post(f"{API}/baselines", json={"run_id": str(run.id)})
        assert response.status_code == 201
        assert response.json()["environment"] == "local"

    listed = (await client.get(f"{API}/baselines", params={"plan_id": str(plan.id)})).json()

    assert [b["run_id"] for b in listed] == [str(second.id), str(first.id)]


async def test_only_a_succeeded_run_can_be_a_baseline(
    client: AsyncClient, session: AsyncSession
) -> None:
    run = await make_run(session, await make_plan(session), status=RunStatus.failed)

    response = await client.post(f"{API}/baselines", json={"run_id": str(run.id)})

    assert response.status_code == 409
    assert response.json()["code"] == "baseline.run_not_succeeded"


async def test_unknown_run_cannot_be_promoted(client: AsyncClient) -> None:
    response = await client.post(f"{API}/baselines", json={"run_id": str(uuid.uuid4())})

    assert response.status_code == 404


async def test_a_scenario_can_have_its_own_baseline_for_its_steps(
    client: AsyncClient, session: AsyncSession
) -> None:
    import random

    from tests.builders import add_seconds

    def noisy(center: float, seed: int) -> list[float]:
        rng = random.Random(seed)
        return [rng.gauss(center, center * 0.03) for _ in range(30)]

    scenarios = [
        {"name": "browse", "steps": [{"name": "list_orders", "path": "/orders"}]},
        {"name": "buy", "steps": [{"name": "create_order", "method": "POST", "path": "/orders",
                                   "expect_status": 201}]},
    ]  # fmt: skip
    plan = await make_plan(session, endpoints=None, scenarios=scenarios, slos=["p95 < 900ms"])
    runs = []
    # Whole-plan baseline: create_order at 100 ms; the buy scenario's own baseline: at 200 ms.
    for seed, (orders, create) in enumerate([(100, 100), (100, 200), (100, 200)]):
        results = [result("*", p95=150), result("list_orders", p95=orders),
                   result("create_order", p95=create)]  # fmt: skip
        run = await make_run(session, plan, results=results)
        await add_seconds(
            session,
            run,
            {"list_orders": noisy(orders, seed), "create_order": noisy(create, 10 + seed)},
            requests=60,
        )
        runs.append(run)
    whole, buy, latest = runs
    assert (
        await client.post(f"{API}/baselines", json={"run_id": str(whole.id)})
    ).status_code == 201
    scoped = await client.post(f"{API}/baselines", json={"run_id": str(buy.id), "scenario": "buy"})
    assert scoped.status_code == 201
    assert scoped.json()["scenario"] == "buy"

    body = (await client.post(f"{API}/analyse", json={"run_id": str(latest.id)})).json()

    assert body["baseline_run_ids"] == [str(whole.id), str(buy.id)]
    create = next(c for c in body["comparisons"] if c["endpoint"] == "create_order"
                  and c["sli"] == "p95")  # fmt: skip
    assert create["baseline_run_ids"] == [str(buy.id)]
    assert create["verdict"] == "unchanged"  # 200 ms, as in the buy scenario's baseline
    orders = next(c for c in body["comparisons"] if c["endpoint"] == "list_orders"
                  and c["sli"] == "p95")  # fmt: skip
    assert orders["baseline_run_ids"] is None  # the whole plan's baseline


async def test_a_baseline_for_an_unknown_scenario_is_refused(
    client: AsyncClient, session: AsyncSession
) -> None:
    run = await make_run(session, await make_plan(session))

    response = await client.post(f"{API}/baselines", json={"run_id": str(run.id), "scenario": "x"})

    assert response.status_code == 422
    assert response.json()["code"] == "baseline.unknown_scenario"
