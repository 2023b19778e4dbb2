"""Why an endpoint regressed, from the shape of its change: queueing, its own work, or stalls.

Per endpoint that regressed against its baseline, the percentiles that moved, the throughput
and the target's CPU per request (when the worker sampled it, in both runs) tell the kinds of
cause apart:

- **queueing** — p50 and p95 (or p99) up together, throughput flat or down, no more CPU per
  request: requests wait for something scarce (a pool of connections or threads, a lock, a
  concurrency limit), they do not work longer;
- **own work** — latency up with the target's CPU per request up: the handler computes more
  (a scan, a loop, serialisation);
- **tail only** — p99 up, median flat: most requests are fine and a few stall (GC pauses,
  retries, timeouts, a periodic job).

Each finding names its endpoint and evidence; CPU is judged against the baseline's, never
against a fixed share of a core.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from app.analysis.repository import Second
from app.analysis.schemas import Comparison, Finding, LoadComparison

CPU_UP = 0.20  # CPU per request this much above the baseline's: the handler works more
THROUGHPUT_UP = 0.05  # more throughput than this is not "flat or down"


def cpu_per_request(seconds: Sequence[Second]) -> float | None:
    """The target's CPU (percent of one core) per request per second, median over the run's
    seconds with a reading."""
    ratios = [
        float(s.system["cpu_percent"]) / s.requests
        for s in seconds
        if s.system and s.system.get("cpu_percent") is not None and s.requests > 0
    ]
    return statistics.median(ratios) if len(ratios) >= 3 else None


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:+.0f}%"


def signatures(
    comparisons: Sequence[Comparison],
    load: LoadComparison | None,
    cpu_now: float | None,
    cpu_base: float | None,
) -> list[Finding]:
    by_endpoint: dict[str, dict[str, Comparison]] = {}
    for c in comparisons:
        if c.endpoint != "*" and c.sli in ("p50", "p95", "p99"):
            by_endpoint.setdefault(c.endpoint, {})[c.sli] = c
    rps_change = load.change.get("rps") if load is not None else None
    cpu_change = (cpu_now / cpu_base - 1) if cpu_now is not None and cpu_base else None
    found: list[Finding] = []
    for endpoint, slis in sorted(by_endpoint.items()):
        moved = {sli for sli, c in slis.items() if c.verdict == "regression"}
        if not moved:
            continue
        changes = {sli: c.change for sli, c in slis.items()}
        evidence: dict[str, float | int | str | None] = {
            "p50_change": changes.get("p50"),
            "p95_change": changes.get("p95"),
            "p99_change": changes.get("p99"),
            "rps_change": rps_change,
            "cpu_per_request_change": cpu_change,
        }
        shape = (
            f"p50 {_pct(changes.get('p50'))}, p95 {_pct(changes.get('p95'))}, p99 "
            f"{_pct(changes.get('p99'))}"
        )
        median_flat = "p50" not in moved and abs(changes.get("p50") or 0) < 0.10
        if "p99" in moved and median_flat and "p95" not in moved:
            found.append(
                Finding(
                    kind="tail_latency",
                    severity="critical",
                    endpoint=endpoint,
                    summary=f"`{endpoint}`: only the tail moved ({shape}) — most requests are "
                    "as fast as before and a few stall: intermittent pauses (GC, retries, "
                    "timeouts, a periodic job or lock), not slower code on every request",
                    evidence=evidence,
                    recommendation=f"Look for what happens now and then on `{endpoint}`'s "
                    "path: GC pauses, retries with backoff, connection re-establishment, cache "
                    "expiry, a background job sharing its resources.",
                )
            )
            continue
        if "p50" not in moved:
            continue
        if cpu_change is not None and cpu_change >= CPU_UP:
            found.append(
                Finding(
                    kind="own_work",
                    severity="critical",
                    endpoint=endpoint,
                    summary=f"`{endpoint}` got slower throughout ({shape}) with the target's "
                    f"CPU per request up {_pct(cpu_change)}: the handler does more work per "
                    "request",
                    evidence=evidence,
                    recommendation=f"Profile `{endpoint}` under load (its hot functions are "
                    "in the profile when the target is local) and compare with the baseline's "
                    "code: a new scan, loop or serialisation.",
                )
            )
        elif rps_change is None or rps_change <= THROUGHPUT_UP:
            cpu_text = (
                f", the target's CPU per request {_pct(cpu_change)}"
                if cpu_change is not None
                else ""
            )
            found.append(
                Finding(
                    kind="queueing",
                    severity="critical",
                    endpoint=endpoint,
                    summary=f"`{endpoint}` got slower throughout ({shape}) with throughput "
                    f"{_pct(rps_change) if rps_change is not None else 'unchanged'}{cpu_text}: "
                    "requests wait rather than work — a pool (connections, threads), a lock "
                    "or a concurrency limit on its path",
                    evidence=evidence,
                    recommendation=f"Look at what `{endpoint}` waits for: connection and "
                    "thread pool sizes and wait times, locks held across I/O, semaphores, "
                    "rate limits of a downstream service.",
                )
            )
    return found


def _avg(summary: Mapping[str, Any] | None, metric: str) -> float | None:
    values = (((summary or {}).get("metrics") or {}).get(metric) or {}).get("values") or {}
    value = values.get("avg")
    return float(value) if isinstance(value, int | float) else None


CHURN_RATIO = 5.0  # connection set-up per request this many times the baseline's ...
CHURN_MIN_MS = 0.05  # ... and at least this much on average


def connection_churn(
    summary: Mapping[str, Any] | None, baselines: Sequence[Mapping[str, Any] | None]
) -> list[Finding]:
    """k6 opened new connections far more often than in the baseline: its average connection
    set-up per request (``http_req_connecting`` + TLS handshakes, zero on a reused connection)
    rose by CHURN_RATIO. The target (or a proxy) stopped keeping connections alive, and every
    new connection costs both sides set-up work."""
    known = [
        (_avg(b, "http_req_connecting") or 0.0) + (_avg(b, "http_req_tls_handshaking") or 0.0)
        for b in baselines
        if _avg(b, "http_req_connecting") is not None
    ]
    now = _avg(summary, "http_req_connecting")
    if now is None or not known:
        return []
    now += _avg(summary, "http_req_tls_handshaking") or 0.0
    before = statistics.median(known)
    if now < CHURN_MIN_MS or now < CHURN_RATIO * max(before, 0.001):
        return []
    return [
        Finding(
            kind="connection_churn",
            severity="critical",
            summary=f"k6 spent {now:.2f} ms per request setting up connections against the "
            f"baseline's {before:.3f} ms: connections are no longer kept alive (keep-alive off, "
            "`Connection: close`, a proxy or server closing them), so requests pay a new "
            "connection — and the target its set-up work — again and again",
            evidence={"connecting_ms_avg": now, "baseline_connecting_ms_avg": before},
            recommendation="Check the target's and any proxy's keep-alive settings (idle "
            "timeout, max requests per connection, `Connection: close` responses) and the "
            "client pools in front of it.",
        )
    ]


def scoped(found: Sequence[Finding]) -> Mapping[str, str]:
    """endpoint -> the kind of signature found for it."""
    return {
        f.endpoint: f.kind
        for f in found
        if f.endpoint and f.kind in ("queueing", "own_work", "tail_latency")
    }
