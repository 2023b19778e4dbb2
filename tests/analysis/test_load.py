"""Load-aware comparison: throughput is compared, and latency moves that follow the load are
not called regressions or improvements."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.analysis.load import compare_load, explain, model_of, throughput_comparison
from app.analysis.schemas import Comparison
from tests.builders import API, add_seconds, make_plan, make_run, result


def summary(
    rps: float, *, vus: int = 10, iterations: int = 500, dropped: int = 0
) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "http_reqs": {"values": {"count": rps * 10, "rate": rps}},
        "iterations": {"values": {"count": iterations, "rate": iterations / 10}},
        "vus_max": {"values": {"value": vus, "min": vus, "max": vus}},
    }
    if dropped:
        metrics["dropped_iterations"] = {"values": {"count": dropped, "rate": dropped / 10}}
    return {"metrics": metrics}


def latency(endpoint: str, verdict: str, sli: str = "p95") -> Comparison:
    return Comparison(
        endpoint=endpoint,
        sli=sli,
        baseline=10.0,
        current=14.0 if verdict == "regression" else 7.0,
        change=0.4 if verdict == "regression" else -0.3,
        p_value=0.001,
        effect_size=0.9 if verdict == "regression" else -0.9,
        verdict=verdict,  # type: ignore[arg-type]
        method="test",
        n_current=10,
        n_baseline=10,
    )


def test_the_executor_tells_the_model() -> None:
    assert model_of(["constant-vus"]) == "closed"
    assert model_of(["ramping-arrival-rate"]) == "open"
    assert model_of(["as the script's options say"]) == "unknown"


def test_the_same_load_is_not_a_change() -> None:
    load = compare_load("closed", summary(100), [summary(104), summary(98)])

    assert not load.changed
    assert load.baseline is not None
    assert load.baseline.rps == 101
    assert load.reasons == []


def test_more_throughput_at_the_same_vus_is_a_change_the_plan_did_not_ask_for() -> None:
    load = compare_load("closed", summary(147), [summary(100)])

    assert (load.changed, load.offered_changed) == (True, False)
    assert load.change["rps"] == 0.47
    assert "throughput 100.0 → 147.0 req/s (+47%)" in load.reasons


def test_an_open_model_s_offered_rate_counts_the_iterations_it_dropped() -> None:
    # 40 iterations/s asked for; 100 of 400 were dropped, so 30/s ran.
    load = compare_load(
        "open", summary(120, iterations=300, dropped=100), [summary(160, iterations=400)]
    )

    assert load.current.offered == 40.0
    assert not load.offered_changed  # the plan asked for the same rate
    assert any("dropped 100 iterations" in reason for reason in load.reasons)


def test_under_constant_vus_the_endpoints_slower_with_the_load_are_explained_by_it() -> None:
    # A pool limit removed: checkout got much faster, every VU loops quicker, and the others
    # now serve 47 % more requests a second.
    load = compare_load("closed", summary(147), [summary(100)])
    comparisons = [
        latency("*", "regression"),
        latency("checkout", "improvement"),
        latency("catalog", "regression"),
        latency("catalog", "regression", sli="p50"),
    ]

    explain(comparisons, load)

    assert [c.verdict for c in comparisons] == [
        "explained_by_load",
        "improvement",
        "explained_by_load",
        "explained_by_load",
    ]
    assert comparisons[2].explained_by_load


def test_a_regression_with_no_cause_in_sight_stays_a_regression() -> None:
    # More throughput, yet nothing got faster: the slower endpoint is not the load's doing.
    load = compare_load("closed", summary(147), [summary(100)])
    comparisons = [latency("catalog", "regression")]

    explain(comparisons, load)

    assert comparisons[0].verdict == "regression"


def test_under_an_open_model_the_load_explains_nothing() -> None:
    load = compare_load("open", summary(80), [summary(160)])
    comparisons = [latency("checkout", "regression"), latency("catalog", "improvement")]

    explain(comparisons, load)

    assert [c.verdict for c in comparisons] == ["regression", "improvement"]


def test_another_offered_load_explains_the_changes_in_its_direction() -> None:
    load = compare_load("closed", summary(200, vus=20), [summary(100, vus=10)])
    comparisons = [latency("catalog", "regression"), latency("checkout", "improvement")]

    explain(comparisons, load)

    assert load.offered_changed
    assert [c.verdict for c in comparisons] == ["explained_by_load", "improvement"]


def test_throughput_that_fell_at_the_same_offered_load_is_a_regression() -> None:
    load = compare_load("closed", summary(45), [summary(100)])

    row = throughput_comparison(load, [45] * 12, [100] * 12)

    assert row is not None
    assert (row.endpoint, row.sli, row.verdict) == ("*", "rps", "regression")
    assert row.change == -0.55


def test_throughput_the_plan_changed_is_explained_by_the_load() -> None:
    load = compare_load("closed", summary(200, vus=20), [summary(100, vus=10)])

    row = throughput_comparison(load, [200] * 12, [100] * 12)

    assert row is not None
    assert row.verdict == "explained_by_load"


async def _pair(
    session: AsyncSession, before: dict[str, float], after: dict[str, float], rps: tuple[int, int]
) -> tuple[str, str]:
    plan = await make_plan(
        session,
        endpoints=[{"name": "catalog", "path": "/c"}, {"name": "checkout", "path": "/k"}],
        load={"profile": "load", "vus": 10, "duration": "12s"},
        slos=["p95 < 5000ms"],
    )
    runs = []
    for p95s, per_second in ((before, rps[0]), (after, rps[1])):
        rows = [result("*", p95=max(p95s.values()), requests=per_second * 24)]
        rows += [result(name, p95=v, requests=per_second * 12) for name, v in p95s.items()]
        run = await make_run(session, plan, results=rows)
        run.summary = summary(per_second * 2, vus=10)
        await add_seconds(
            session, run, {name: [v] * 12 for name, v in p95s.items()}, requests=per_second,
            generator={},
        )  # fmt: skip
        runs.append(str(run.id))
    await session.flush()
    return runs[0], runs[1]


async def test_a_pool_fix_under_constant_vus_is_an_improvement_not_a_regression(
    client: AsyncClient, session: AsyncSession
) -> None:
    before, after = await _pair(
        session, {"catalog": 10.0, "checkout": 169.0}, {"catalog": 14.0, "checkout": 32.0},
        rps=(50, 74),
    )  # fmt: skip

    response = await client.post(
        f"{API}/analyse", json={"run_id": after, "baseline_run_ids": [before]}
    )

    body = response.json()
    assert response.status_code == 201, body
    verdicts = {(c["endpoint"], c["sli"]): c["verdict"] for c in body["comparisons"]}
    assert verdicts[("checkout", "p95")] == "improvement"
    assert verdicts[("catalog", "p95")] == "explained_by_load"
    assert verdicts[("*", "rps")] == "improvement"
    assert body["load"]["changed"]
    assert body["load"]["model"] == "closed"
    assert body["verdict"] == "pass"
    kinds = [f["kind"] for f in body["findings"]]
    assert "load_change" in kinds
    assert "regression" not in kinds
    report = (await client.get(f"{API}/analyses/{body['id']}/report.md")).text
    assert "**the load changed**" in report
    assert "explained by load" in report


async def test_a_slower_endpoint_under_constant_vus_is_the_regression_the_others_follow(
    client: AsyncClient, session: AsyncSession
) -> None:
    before, after = await _pair(
        session, {"catalog": 10.0, "checkout": 32.0}, {"catalog": 7.0, "checkout": 169.0},
        rps=(74, 33),
    )  # fmt: skip

    body = (
        await client.post(f"{API}/analyse", json={"run_id": after, "baseline_run_ids": [before]})
    ).json()

    verdicts = {(c["endpoint"], c["sli"]): c["verdict"] for c in body["comparisons"]}
    assert verdicts[("checkout", "p95")] == "regression"
    assert verdicts[("catalog", "p95")] == "explained_by_load"  # less load, not faster code
    assert verdicts[("*", "rps")] == "regression"
    assert body["verdict"] == "fail"
    assert [f["endpoint"] for f in body["findings"] if f["kind"] == "regression"] == ["checkout"]
