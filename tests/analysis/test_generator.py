"""The load generator's health: a starved or crowded k6 makes a comparison inconclusive."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.analysis.generator import assess, describe
from app.analysis.repository import Second
from tests.builders import API, QUIET_GENERATOR, add_seconds, make_plan, make_run, result


def seconds(count: int = 10, **reading: float) -> list[Second]:
    return [
        Second(
            i, 10, 100, 0, 5.0, 9.0, 12.0, None, 1_700_000_000.0 + i, {**QUIET_GENERATOR, **reading}
        )
        for i in range(count)
    ]


def summary(dropped: int = 0, iterations: int = 1000) -> dict[str, Any]:
    metrics: dict[str, Any] = {"iterations": {"values": {"count": iterations, "rate": 100.0}}}
    if dropped:
        metrics["dropped_iterations"] = {"values": {"count": dropped, "rate": dropped / 10}}
    return {"metrics": metrics}


def test_a_quiet_machine_is_healthy() -> None:
    health = assess(seconds())

    assert health.status == "healthy"
    assert health.reasons == []
    assert health.k6_cpu_percent == {"median": 30.0, "p95": 30.0, "max": 30.0}
    assert health.trustworthy


def test_a_busy_neighbour_that_makes_k6_wait_for_cpu_disturbs_the_generator() -> None:
    health = assess(seconds(other_cpu_percent=80.0, machine_cpu_percent=70.0, k6_wait_percent=20))

    assert health.status == "disturbed"
    assert "0.80 cores on average" in health.reasons[0]
    assert "k6 waited for a CPU 67% as long as it ran" in health.reasons[0]
    assert not health.trustworthy


def test_a_busy_neighbour_on_a_mostly_busy_machine_disturbs_it_too() -> None:
    assert assess(seconds(other_cpu_percent=80.0, machine_cpu_percent=85.0)).status == "disturbed"


def test_a_busy_neighbour_with_cpu_to_spare_disturbs_nothing() -> None:
    # A target in a container on the same runner, say: busy, but k6 never waited for a core.
    assert assess(seconds(other_cpu_percent=80.0, machine_cpu_percent=55.0)).status == "healthy"


def test_a_neighbour_busy_in_a_third_of_the_seconds_disturbs_it_too() -> None:
    readings = seconds(12, k6_wait_percent=25.0)
    for second in readings[2:6]:
        assert second.generator is not None
        second.generator["other_cpu_percent"] = 90.0

    assert assess(readings).status == "disturbed"


def test_k6_filling_a_machine_with_no_idle_cpu_is_saturated() -> None:
    health = assess(seconds(k6_cpu_percent=150.0, machine_cpu_percent=99.0))

    assert health.status == "saturated"
    assert "no idle CPU" in health.reasons[0]


def test_a_machine_kept_busy_by_a_local_target_is_the_target_s_result() -> None:
    # k6 at a fifth of a core; the target, on the same machine, takes the rest.
    assert assess(seconds(k6_cpu_percent=20.0, machine_cpu_percent=99.0)).status == "healthy"


def test_dropped_iterations_count_against_the_generator_only_when_it_was_short_of_cpu() -> None:
    busy = assess(seconds(k6_cpu_percent=150.0, machine_cpu_percent=80.0), summary(dropped=300))
    idle = assess(seconds(k6_cpu_percent=20.0), summary(dropped=300))

    assert busy.status == "saturated"
    assert any("dropped 300 iterations" in r for r in busy.reasons)
    assert (idle.status, idle.dropped_iterations) == ("healthy", 300)


def test_a_run_without_readings_is_unknown_and_trusted() -> None:
    health = assess([Second(i, 10, 100, 0, 5.0, 9.0, 12.0, None, 0.0) for i in range(10)])

    assert health.status == "unknown"
    assert health.trustworthy


def test_a_disturbed_baseline_makes_the_comparison_doubtful_too() -> None:
    healthy = assess(seconds())
    crowded = assess(seconds(other_cpu_percent=100.0, machine_cpu_percent=90.0))

    assert describe(healthy, [healthy]) is None
    doubt = describe(healthy, [crowded])
    assert doubt is not None
    assert "during its baseline" in doubt
    assert "during this run" in (describe(crowded, []) or "")


async def _pair(session: AsyncSession, *, other_cpu: float) -> tuple[str, str]:
    plan = await make_plan(session, slos=["p95 < 500ms"])
    before = await make_run(session, plan, results=[result("*", p95=10.0), result("api", p95=10.0)])
    after = await make_run(session, plan, results=[result("*", p95=20.0), result("api", p95=20.0)])
    await add_seconds(session, before, {"api": [10.0] * 12}, generator={})
    crowded = {"other_cpu_percent": other_cpu, "machine_cpu_percent": min(100.0, 25 + other_cpu)}
    await add_seconds(session, after, {"api": [20.0] * 12}, generator=crowded)
    return str(before.id), str(after.id)


async def test_a_slower_run_on_a_crowded_generator_is_inconclusive_not_a_regression(
    client: AsyncClient, session: AsyncSession
) -> None:
    before, after = await _pair(session, other_cpu=110.0)

    response = await client.post(
        f"{API}/analyse", json={"run_id": after, "baseline_run_ids": [before]}
    )

    body = response.json()
    assert response.status_code == 201, body
    assert body["verdict"] == "inconclusive"
    assert body["load_generator"]["status"] == "disturbed"
    p95 = next(c for c in body["comparisons"] if (c["endpoint"], c["sli"]) == ("api", "p95"))
    assert p95["verdict"] == "inconclusive"
    assert p95["current"] == 20.0  # the numbers stay; only the judgement is withheld
    assert [f["kind"] for f in body["findings"]] == ["load_generator"]
    assert any(
        w.startswith("Inconclusive: the load generator was disturbed") for w in body["warnings"]
    )
    report = (await client.get(f"{API}/analyses/{body['id']}/report.md")).text
    assert "INCONCLUSIVE" in report.upper()


async def test_the_same_pair_on_a_quiet_generator_is_a_regression(
    client: AsyncClient, session: AsyncSession
) -> None:
    before, after = await _pair(session, other_cpu=1.0)

    response = await client.post(
        f"{API}/analyse", json={"run_id": after, "baseline_run_ids": [before]}
    )

    body = response.json()
    assert (body["verdict"], body["load_generator"]["status"]) == ("fail", "healthy")
    assert "regression" in {f["kind"] for f in body["findings"]}
