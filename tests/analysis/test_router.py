from __future__ import annotations

import uuid

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import RunStatus
from tests.builders import API, add_seconds, make_plan, make_run, noisy, result

# The default builder plan: global "p95 < 300ms", and "error_rate < 1%" on create_order.


def healthy() -> list[dict[str, object]]:
    return [
        result("*", p95=120),
        result("list_orders", p95=100),
        result("create_order", p95=140),
    ]


async def test_a_run_within_its_slos_passes(client: AsyncClient, session: AsyncSession) -> None:
    run = await make_run(session, await make_plan(session), results=healthy())

    response = await client.post(f"{API}/analyse", json={"run_id": str(run.id)})

    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"{API}/analyses/{body['id']}"
    assert body["verdict"] == "pass"
    assert [(r["objective"], r["measured"], r["status"]) for r in body["slo_results"]] == [
        ("p95 < 300ms", 120.0, "pass"),
        ("error_rate < 1%", 0.0, "pass"),
    ]
    assert body["warnings"] == [
        "No baseline: promote a run (POST /baselines), pass baseline_run_ids, or import the "
        "plan's history (at least 5 past values); regressions were not looked for."
    ]
    assert (body["baseline_run_ids"], body["comparisons"]) == ([], [])


async def test_a_breached_slo_fails_and_says_by_how_much(
    client: AsyncClient, session: AsyncSession
) -> None:
    rows = [
        result("*", p95=600, requests=200, failures=4),
        result("list_orders", p95=20),
        result("create_order", p95=650, failures=4),
    ]
    run = await make_run(session, await make_plan(session), results=rows)

    body = (await client.post(f"{API}/analyse", json={"run_id": str(run.id)})).json()

    assert body["verdict"] == "fail"
    statuses = {r["objective"]: r["status"] for r in body["slo_results"]}
    assert statuses == {"p95 < 300ms": "fail", "error_rate < 1%": "fail"}
    summaries = [f["summary"] for f in body["findings"] if f["kind"] == "slo_breach"]
    assert "all requests breaks p95 < 300ms: p95 = 600.0 ms, 2.0× its 300 ms target" in summaries
    kinds = {(f["kind"], f["endpoint"]) for f in body["findings"]}
    assert ("slow_endpoint", "create_order") in kinds
    assert ("errors", "create_order") in kinds


async def test_no_successful_responses_is_no_data_and_fails(
    client: AsyncClient, session: AsyncSession
) -> None:
    rows = [result("*", p95=None, failures=100), result("create_order", p95=None, failures=100)]
    run = await make_run(session, await make_plan(session), results=rows)

    body = (await client.post(f"{API}/analyse", json={"run_id": str(run.id)})).json()

    assert body["verdict"] == "fail"
    assert body["slo_results"][0]["status"] == "no_data"


async def test_a_plan_without_slos_is_judged_by_defaults_with_a_warning(
    client: AsyncClient, session: AsyncSession
) -> None:
    run = await make_run(session, await make_plan(session, slos=[]), results=healthy())

    body = (await client.post(f"{API}/analyse", json={"run_id": str(run.id)})).json()

    assert [r["objective"] for r in body["slo_results"]] == ["p95 < 500ms", "error_rate < 1%"]
    assert "platform defaults" in body["warnings"][0]
    report = (await client.get(body["links"]["report"])).text
    assert "> **Warning:** The plan defines no SLOs" in report


async def test_the_report_follows_the_benchmarker_format(
    client: AsyncClient, session: AsyncSession
) -> None:
    run = await make_run(session, await make_plan(session), results=healthy())
    body = (await client.post(f"{API}/analyse", json={"run_id": str(run.id)})).json()

    report = (await client.get(body["links"]["report"])).text

    headings = [
        "### Performance Test Report: `orders-api`",
        "**Test Date:**",
        "**Scenario:**",
        "**Performance SLOs:**",
        "**Results:**",
        "**Analysis & Observations:**",
        "**Recommendations:**",
    ]
    positions = [report.index(h) for h in headings]
    assert positions == sorted(positions)
    assert "*   **SLO MET:**" in report
    assert "**[RECOMMENDATION]**" in report


async def test_a_run_still_queued_cannot_be_analysed(
    client: AsyncClient, session: AsyncSession
) -> None:
    run = await make_run(session, await make_plan(session), status=RunStatus.queued)

    response = await client.post(f"{API}/analyse", json={"run_id": str(run.id)})

    assert response.status_code == 409
    assert response.json()["code"] == "run.not_finished"


async def test_a_failed_run_cannot_be_analysed(client: AsyncClient, session: AsyncSession) -> None:
    run = await make_run(session, await make_plan(session), status=RunStatus.failed)

    response = await client.post(f"{API}/analyse", json={"run_id": str(run.id)})

    assert response.status_code == 409
    assert response.json()["code"] == "run.not_analysable"


async def test_unknown_ids_are_404_problems(client: AsyncClient) -> None:
    analyse = await client.post(f"{API}/analyse", json={"run_id": str(uuid.uuid4())})
    fetch = await client.get(f"{API}/analyses/{uuid.uuid4()}")
    report = await client.get(f"{API}/analyses/{uuid.uuid4()}/report.md")

    assert [analyse.json()["code"], fetch.json()["code"], report.json()["code"]] == [
        "run.not_found",
        "analysis.not_found",
        "analysis.not_found",
    ]


async def test_analysis_compares_with_the_promoted_baseline_and_names_the_regressed_endpoint(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    before = await make_run(session, plan, results=healthy())
    await add_seconds(
        session, before, {"list_orders": noisy(100), "create_order": noisy(140)}, requests=60
    )
    promoted = await client.post(f"{API}/baselines", json={"run_id": str(before.id)})
    assert promoted.status_code == 201
    slower = [result("*", p95=200), result("list_orders", p95=210), result("create_order", p95=140)]
    after = await make_run(session, plan, results=slower)
    await add_seconds(
        session,
        after,
        {"list_orders": noisy(210, seed=2), "create_order": noisy(140, seed=3)},
        requests=60,
    )

    body = (await client.post(f"{API}/analyse", json={"run_id": str(after.id)})).json()

    assert body["baseline_run_ids"] == [str(before.id)]
    assert body["baseline_source"] == "promoted"
    assert body["verdict"] == "fail"  # SLOs pass, but list_orders regressed
    moved = {
        (c["endpoint"], c["sli"]): c
        for c in body["comparisons"]
        if c["verdict"] in ("regression", "improvement")
    }
    # (The builder's overall per-second figures follow list_orders, so "*" moved too.)
    assert set(moved) == {(e, sli) for e in ("*", "list_orders") for sli in ("p50", "p95", "p99")}
    p95 = moved[("list_orders", "p95")]
    assert (p95["baseline"], p95["current"], p95["verdict"]) == (100.0, 210.0, "regression")
    assert p95["effect_size"] == 1.0  # every second slower than every baseline second
    assert p95["p_value"] < 1e-6
    assert (p95["n_current"], p95["n_baseline"]) == (30, 30)
    regressions = [f for f in body["findings"] if f["kind"] == "regression"]
    assert [f["endpoint"] for f in regressions] == ["list_orders"]
    assert "the other endpoints did not change" in regressions[0]["summary"]
    report = (await client.get(f"{API}/analyses/{body['id']}/report.md")).text
    assert f"compared with run `{before.id}`" in report
    row = next(line for line in report.splitlines() if line.startswith("| `list_orders` | p95 |"))
    assert row.startswith("| `list_orders` | p95 | 100.0 ms | 210.0 ms | +110.0% | +")
    assert "| ±10% | +1.00 |" in row, row
    assert row.endswith("| regression |")
    assert " … " in row  # the interval of the change


async def test_without_a_promoted_baseline_the_last_passing_runs_are_used(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    earlier = []
    for seed in range(4):
        run = await make_run(session, plan, results=healthy())
        await add_seconds(session, run, {"list_orders": noisy(100, seed=seed)})
        verdict = (await client.post(f"{API}/analyse", json={"run_id": str(run.id)})).json()
        assert verdict["verdict"] == "pass"
        earlier.append(run)
    failing = await make_run(session, plan, results=[result("*", p95=900)])
    await client.post(f"{API}/analyse", json={"run_id": str(failing.id)})
    latest = await make_run(session, plan, results=healthy())
    await add_seconds(session, latest, {"list_orders": noisy(100, seed=9)})

    body = (await client.post(f"{API}/analyse", json={"run_id": str(latest.id)})).json()

    assert body["baseline_source"] == "last_passing"
    # The newest three that passed, newest first; the failing run is not a baseline.
    assert body["baseline_run_ids"] == [str(r.id) for r in reversed(earlier[1:])]
    assert body["verdict"] == "pass"
    assert {c["verdict"] for c in body["comparisons"]} <= {"unchanged", "insufficient_data"}


async def test_requested_baselines_must_be_succeeded_runs_of_the_same_plan(
    client: AsyncClient, session: AsyncSession
) -> None:
    plan = await make_plan(session)
    run = await make_run(session, plan, results=healthy())
    other_plan_run = await make_run(session, await make_plan(session), results=healthy())
    aborted = await make_run(session, plan, status=RunStatus.aborted, results=healthy())

    codes = []
    for baselines in ([other_plan_run.id], [aborted.id], [run.id], [uuid.uuid4()]):
        response = await client.post(
            f"{API}/analyse",
            json={"run_id": str(run.id), "baseline_run_ids": [str(b) for b in baselines]},
        )
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        codes.append(response.json()["code"])

    assert codes == [
        "baseline.other_plan",
        "baseline.not_succeeded",
        "baseline.self",
        "baseline.not_found",
    ]


async def test_a_run_stopped_early_is_analysed_as_partial_and_cannot_pass(
    client: AsyncClient, session: AsyncSession
) -> None:
    run = await make_run(session, await make_plan(session), status=RunStatus.timed_out,
                         results=healthy())  # fmt: skip

    body = (await client.post(f"{API}/analyse", json={"run_id": str(run.id)})).json()

    assert body["verdict"] == "fail"
    assert all(r["status"] == "pass" for r in body["slo_results"])
    assert "partial results" in body["warnings"][0]


async def test_the_last_passing_runs_are_the_newest_even_when_retention_rolled_one_up(
    client: AsyncClient, session: AsyncSession
) -> None:
    """Skipping a rolled-up run would reach for older runs — the ones that kept their seconds
    because their windows were incomplete: the newest are taken, and the analysis says so."""
    from datetime import UTC, datetime

    plan = await make_plan(session)
    earlier = []
    for seed in range(4):
        run = await make_run(session, plan, results=healthy())
        await add_seconds(session, run, {"list_orders": noisy(100, seed=seed)})
        await client.post(f"{API}/analyse", json={"run_id": str(run.id)})
        earlier.append(run)
    earlier[-1].samples_rolled_up_at = datetime.now(UTC)
    latest = await make_run(session, plan, results=healthy())
    await add_seconds(session, latest, {"list_orders": noisy(100, seed=9)})

    body = (await client.post(f"{API}/analyse", json={"run_id": str(latest.id)})).json()

    assert body["baseline_run_ids"] == [str(r.id) for r in reversed(earlier[1:])]
    assert any("rolled up into minutes" in w for w in body["warnings"])
