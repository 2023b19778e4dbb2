"""Each regressed endpoint's change has a shape, and the shape names the kind of cause."""

from __future__ import annotations

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.analysis.repository import Second
from app.analysis.schemas import Comparison, LoadComparison, LoadSide
from app.analysis.signatures import cpu_per_request, signatures
from tests.builders import API, add_seconds, make_plan, make_run, result


def moved(endpoint: str, **changes: float) -> list[Comparison]:
    """Comparisons of ``endpoint``: the SLIs given changed by that much, the rest did not."""
    found = []
    for sli in ("p50", "p95", "p99"):
        change = changes.get(sli, 0.01)
        found.append(
            Comparison(
                endpoint=endpoint,
                sli=sli,
                baseline=10.0,
                current=10.0 * (1 + change),
                change=change,
                p_value=0.001 if sli in changes else 0.5,
                effect_size=0.9 if sli in changes else 0.0,
                verdict="regression" if sli in changes else "unchanged",
                method="test",
                n_current=20,
                n_baseline=20,
            )
        )
    return found


def load(rps_change: float) -> LoadComparison:
    return LoadComparison(
        model="closed",
        current=LoadSide(rps=100 * (1 + rps_change)),
        baseline=LoadSide(rps=100),
        change={"rps": rps_change},
    )


def kinds(found: list[object]) -> list[tuple[str, str | None]]:
    return [(f.kind, f.endpoint) for f in found]  # type: ignore[attr-defined]


def test_slower_throughout_with_no_more_cpu_and_less_throughput_is_queueing() -> None:
    found = signatures(moved("checkout", p50=4.3, p95=3.0), load(-0.3), 0.5, 0.5)

    assert kinds(found) == [("queueing", "checkout")]
    assert "a pool (connections, threads), a lock or a concurrency limit" in found[0].summary


def test_slower_with_more_cpu_per_request_is_the_handler_s_own_work() -> None:
    found = signatures(moved("search", p50=0.3, p95=0.3), load(-0.1), 0.9, 0.6)

    assert kinds(found) == [("own_work", "search")]
    assert "CPU per request up +50%" in found[0].summary


def test_only_the_tail_moving_is_intermittent_stalls() -> None:
    found = signatures(moved("orders", p99=2.0), load(0.0), None, None)

    assert kinds(found) == [("tail_latency", "orders")]


def test_without_cpu_readings_a_slower_endpoint_at_flat_throughput_is_queueing() -> None:
    assert kinds(signatures(moved("a", p50=0.5, p95=0.5), None, None, None)) == [("queueing", "a")]


def test_more_throughput_is_no_queueing_and_an_unmoved_endpoint_has_no_signature() -> None:
    comparisons = moved("a", p50=0.5, p95=0.5) + moved("b")

    assert signatures(comparisons, load(0.4), 0.5, 0.5) == []


def test_cpu_per_request_is_the_median_of_its_seconds() -> None:
    seconds = [Second(i, 5, 100, 0, 1.0, 2.0, 3.0, {"cpu_percent": 50.0}, 0.0) for i in range(5)]

    assert cpu_per_request(seconds) == 0.5
    assert cpu_per_request(seconds[:2]) is None


async def test_a_small_pool_on_one_endpoint_is_named_queueing_not_n_plus_one_or_idle_cpu(
    client: AsyncClient, session: AsyncSession
) -> None:
    # A 4-slot pool on checkout: p50 32 -> 169 ms, the target's CPU as idle as before.
    plan = await make_plan(
        session,
        endpoints=[{"name": "catalog", "path": "/c"}, {"name": "checkout", "path": "/k"}],
        slos=["p95 < 5000ms"],
    )
    before = await make_run(
        session,
        plan,
        results=[
            result("*", p95=64.0),
            result("catalog", p95=10.0, p50=5.0),
            result("checkout", p95=64.0, p50=32.0),
        ],
    )
    after = await make_run(
        session,
        plan,
        results=[
            result("*", p95=338.0),
            result("catalog", p95=10.0, p50=5.0),
            result("checkout", p95=338.0, p50=169.0),
        ],
    )
    await add_seconds(session, before, {"checkout": [64.0] * 12, "catalog": [10.0] * 12},
                      cpu=[20.0] * 12, generator={})  # fmt: skip
    await add_seconds(session, after, {"checkout": [338.0] * 12, "catalog": [10.0] * 12},
                      cpu=[19.0] * 12, generator={})  # fmt: skip

    response = await client.post(
        f"{API}/analyse", json={"run_id": str(after.id), "baseline_run_ids": [str(before.id)]}
    )

    body = response.json()
    assert response.status_code == 201, body
    by_kind = {f["kind"]: f for f in body["findings"]}
    assert by_kind["queueing"]["endpoint"] == "checkout"
    assert "idle_cpu" not in by_kind  # judged against the baseline's CPU instead
    assert "slow_endpoint" not in by_kind  # no "look for N+1 queries" for a queue
    kinds_in_order = [f["kind"] for f in body["findings"]]
    assert kinds_in_order.index("queueing") < kinds_in_order.index("regression")


def _connecting(ms: float) -> dict[str, object]:
    return {"metrics": {"http_req_connecting": {"values": {"avg": ms}}}}


def test_connections_no_longer_kept_alive_are_named() -> None:
    from app.analysis.signatures import connection_churn

    found = connection_churn(_connecting(0.39), [_connecting(0.002)])

    assert [f.kind for f in found] == ["connection_churn"]
    assert "no longer kept alive" in found[0].summary
    assert connection_churn(_connecting(0.004), [_connecting(0.002)]) == []  # reuse as before
    assert connection_churn(_connecting(0.39), []) == []  # nothing to compare with
