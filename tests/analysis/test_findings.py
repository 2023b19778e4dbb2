"""Deterministic root-cause findings from the numbers alone."""

from __future__ import annotations

from app.analysis.findings import dropped_iterations, shared_slowdown, time_breakdown
from app.analysis.schemas import Comparison


def comparison(endpoint: str, verdict: str, change: float = 1.0) -> Comparison:
    return Comparison(endpoint=endpoint, sli="p95", baseline=10.0, current=10 * (1 + change),
                      change=change, p_value=0.001, effect_size=0.9, verdict=verdict,
                      method="test", n_current=30, n_baseline=30)  # fmt: skip


def test_most_endpoints_slower_together_point_at_a_shared_resource() -> None:
    together = [comparison(e, "regression") for e in ("a", "b", "c")] + [
        comparison("d", "unchanged")
    ]
    alone = [comparison("a", "regression")] + [comparison(e, "unchanged") for e in "bcd"]

    [finding] = shared_slowdown(together)

    assert finding.kind == "shared_slowdown"
    assert finding.evidence["endpoints"] == "a,b,c"
    assert "pools" in (finding.recommendation or "")
    assert shared_slowdown(alone) == []


def test_dropped_iterations_say_the_target_could_not_keep_up() -> None:
    summary = {"metrics": {"dropped_iterations": {"values": {"count": 292}},
                           "iterations": {"values": {"count": 1632}}}}  # fmt: skip

    [finding] = dropped_iterations(summary)

    assert finding.severity == "critical"
    assert "292 iterations (15.2%" in finding.summary
    assert dropped_iterations({"metrics": {"iterations": {"values": {"count": 10}}}}) == []


def summary_with(**avgs: float) -> dict[str, object]:
    return {"metrics": {f"http_req_{k}": {"values": {"avg": v}} for k, v in avgs.items()}}


def test_time_breakdown_tells_network_set_up_from_server_time() -> None:
    slow_connect = summary_with(duration=4.0, blocked=6.0, connecting=5.0, tls_handshaking=0.5,
                                sending=0.1, waiting=3.5, receiving=0.4)  # fmt: skip
    server = summary_with(duration=40.0, blocked=0.01, connecting=0.0, tls_handshaking=0.0,
                          sending=0.1, waiting=39.5, receiving=0.4)  # fmt: skip

    assert [f.kind for f in time_breakdown(slow_connect)] == ["connection_setup"]
    [finding] = time_breakdown(server)
    assert finding.kind == "time_breakdown"
    assert "39.5 ms of an average request's 40.0 ms (99%)" in finding.summary
