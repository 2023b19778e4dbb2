"""Deterministic observations drawn from the run's numbers (no LLM involved).

Each finding carries the numbers it rests on, so an engineer can check it.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from app.analysis.saturation import Saturation
from app.analysis.schemas import (
    Comparison,
    Finding,
    LoadComparison,
    LoadGenerator,
    SloResult,
)
from app.models import RunResult

# An endpoint is "confined-slow" when its p95 is this many times the others' median p95 ...
CONFINED_RATIO = 5.0
# ... and slower by at least this much, so that 0.4 ms vs 2 ms does not count.
CONFINED_MIN_GAP_MS = 20.0
LONG_TAIL_RATIO = 10.0
LONG_TAIL_MIN_P99_MS = 50.0


def _fmt(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:.1f} ms"


def slo_breaches(slo_results: list[SloResult]) -> list[Finding]:
    found = []
    for res in slo_results:
        scope = f"`{res.endpoint}`" if res.endpoint else "all requests"
        if res.status == "no_data":
            found.append(
                Finding(
                    kind="slo_no_data",
                    severity="critical",
                    endpoint=res.endpoint,
                    summary=f"{scope}: {res.objective} could not be judged — k6 measured no "
                    "successful responses",
                    evidence={"objective": res.objective},
                    recommendation=f"Check that {scope} answers with its expected status.",
                )
            )
        elif res.status in ("fail", "warning") and res.measured is not None:
            if res.absolute_ok is not False and res.change is not None:
                shown = (
                    f"{res.measured:g} against {res.baseline:g} in the baseline "
                    f"({res.change * 100:+.1f}%)"
                )
            elif res.target is None:
                shown = f"{res.measured:g}"
            elif res.sli == "error_rate":
                shown = f"{res.measured * 100:.2f}% against {res.target * 100:g}%"
            elif res.sli == "rps":
                shown = f"{res.measured:.1f}/s against {res.target:g}/s"
            else:
                ratio = res.measured / res.target if res.target else float("inf")
                shown = f"{res.measured:.1f} ms, {ratio:.1f}× its {res.target:g} ms target"
            found.append(
                Finding(
                    kind="slo_breach" if res.status == "fail" else "slo_warning",
                    severity="critical" if res.status == "fail" else "warning",
                    endpoint=res.endpoint,
                    summary=f"{scope} {'breaks' if res.status == 'fail' else 'only warns on'} "
                    f"{res.objective}: {res.sli} = {shown}",
                    evidence={"measured": res.measured, "target": res.target, "sli": res.sli},
                )
            )
    return found


def confined_slowness(results: Mapping[str, RunResult]) -> list[Finding]:
    per_endpoint = {
        name: row.p95_ms
        for name, row in results.items()
        if name != RunResult.ALL and row.p95_ms is not None
    }
    if len(per_endpoint) < 2:
        return []
    found = []
    for name, p95 in per_endpoint.items():
        others = statistics.median(v for k, v in per_endpoint.items() if k != name)
        if p95 >= CONFINED_RATIO * max(others, 0.001) and p95 - others >= CONFINED_MIN_GAP_MS:
            ratio = p95 / max(others, 0.001)
            found.append(
                Finding(
                    kind="slow_endpoint",
                    severity="warning",
                    endpoint=name,
                    summary=f"Slowness is confined to `{name}`: p95 {_fmt(p95)} is "
                    f"{ratio:.0f}× the median p95 of the other endpoints ({_fmt(others)}) "
                    "under the same load",
                    evidence={"p95_ms": p95, "others_median_p95_ms": others, "ratio": ratio},
                    recommendation=f"Profile the handler of `{name}`: with the other endpoints "
                    "fast under the same load, the cost is in this request's own work — look "
                    "for N+1 queries, scans without an index, or synchronous calls to other "
                    "services.",
                )
            )
    return found


def errors(results: Mapping[str, RunResult]) -> list[Finding]:
    found = []
    for name, row in results.items():
        if name == RunResult.ALL or row.failures == 0:
            continue
        found.append(
            Finding(
                kind="errors",
                severity="critical" if row.error_rate >= 0.01 else "warning",
                endpoint=name,
                summary=f"`{name}` failed {row.failures} of {row.requests} requests "
                f"({row.error_rate * 100:.2f}%) — responses without the expected status",
                evidence={"failures": row.failures, "requests": row.requests},
                recommendation=f"Read the server's logs for `{name}` over the run's window; "
                "errors that appear only under load point at timeouts or exhausted pools.",
            )
        )
    return found


def long_tails(results: Mapping[str, RunResult]) -> list[Finding]:
    found = []
    for name, row in results.items():
        if name == RunResult.ALL or row.p50_ms is None or row.p99_ms is None:
            continue
        if row.p99_ms >= LONG_TAIL_MIN_P99_MS and row.p99_ms >= LONG_TAIL_RATIO * row.p50_ms:
            found.append(
                Finding(
                    kind="long_tail",
                    severity="info",
                    endpoint=name,
                    summary=f"`{name}` has a long tail: p99 {_fmt(row.p99_ms)} against p50 "
                    f"{_fmt(row.p50_ms)}",
                    evidence={"p50_ms": row.p50_ms, "p99_ms": row.p99_ms},
                    recommendation="A tail this long with a fast median usually means "
                    "queueing, lock contention or pauses (GC, connection set-up).",
                )
            )
    return found


def _sli_text(comparison: Comparison) -> str:
    if comparison.sli == "rps":
        change = f" ({comparison.change * 100:+.0f}%)" if comparison.change is not None else ""
        return (
            f"throughput {comparison.baseline or 0:,.1f} → {comparison.current or 0:,.1f} "
            f"req/s{change}"
        )
    if comparison.sli == "error_rate":
        return (
            f"error rate {(comparison.baseline or 0) * 100:.2f}% → "
            f"{(comparison.current or 0) * 100:.2f}%"
        )
    change = f" ({comparison.change * 100:+.0f}%)" if comparison.change is not None else ""
    return f"{comparison.sli} {_fmt(comparison.baseline)} → {_fmt(comparison.current)}{change}"


def baseline_changes(comparisons: list[Comparison]) -> list[Finding]:
    """One finding per endpoint that regressed (or improved) against its baseline."""
    found = []
    endpoints = {c.endpoint for c in comparisons if c.endpoint != RunResult.ALL}
    for kind in ("regression", "improvement"):
        hits: dict[str, list[Comparison]] = {}
        for comparison in comparisons:
            if comparison.verdict == kind:
                hits.setdefault(comparison.endpoint, []).append(comparison)
        moved = [name for name in hits if name != RunResult.ALL]
        for name, changed in hits.items():
            if name == RunResult.ALL and moved:
                continue  # the endpoints that moved say more than the total they moved
            scope = "all requests" if name == RunResult.ALL else f"`{name}`"
            confined = len(moved) == 1 and name != RunResult.ALL and len(endpoints) > 1
            lead = max(changed, key=lambda c: abs(c.effect_size or 0))
            summary = (
                f"{scope} {'regressed' if kind == 'regression' else 'improved'} against the "
                f"baseline: " + "; ".join(_sli_text(c) for c in changed)
            )
            if lead.p_value is None and lead.effect_size is not None:
                summary += (
                    f" — {abs(lead.effect_size):.1f} robust standard deviations "
                    f"{'above' if kind == 'regression' else 'below'} the median of "
                    f"{lead.n_baseline} past runs"
                )
            elif lead.sli != "error_rate" and lead.effect_size is not None:
                summary += (
                    f" — per-second {lead.sli} {'higher' if kind == 'regression' else 'lower'} "
                    f"than the baseline's in most seconds (Cliff's δ {lead.effect_size:+.2f}; "
                    f"p = {lead.p_value:.2g})"
                )
            if confined:
                summary += "; the other endpoints did not change"
            evidence: dict[str, float | int | str | None] = {
                "slis": ",".join(c.sli for c in changed),
                f"{lead.sli}_baseline": lead.baseline,
                f"{lead.sli}_current": lead.current,
                "effect_size": lead.effect_size,
                "p_value": lead.p_value,
            }
            recommendation = None
            if kind == "regression":
                recommendation = (
                    f"Compare what changed in {scope} since the baseline run (code, queries, "
                    "configuration, dependencies)"
                    + (
                        ": only this endpoint moved, so look at its own path first."
                        if confined
                        else "."
                    )
                )
            found.append(
                Finding(
                    kind=kind,
                    severity="critical" if kind == "regression" else "info",
                    endpoint=None if name == RunResult.ALL else name,
                    summary=summary,
                    evidence=evidence,
                    recommendation=recommendation,
                )
            )
    return found


def _load(knee: Saturation, load: float | None) -> str:
    if load is None:
        return "-"
    return f"{load:g} VUs" if knee.load_metric == "vus" else f"about {load:,.0f} req/s"


def saturation_findings(knee: Saturation | None) -> list[Finding]:
    """What the knee of a varying-load run says: where latency broke, errors began, the
    throughput stopped."""
    if knee is None:
        return []
    found = []
    if knee.knee_load is not None:
        found.append(
            Finding(
                kind="saturation",
                severity="warning",
                summary=f"Latency grows with load: p95 broke away at {_load(knee, knee.knee_load)}"
                f" ({knee.knee_rps:,.0f} req/s) — {_fmt(knee.p95_before_knee_ms)} on the level "
                f"below, {_fmt(knee.p95_after_knee_ms)} (median) from there on, against "
                f"{_fmt(knee.reference_p95_ms)} at low load",
                evidence={
                    "knee_load": knee.knee_load,
                    "knee_rps": knee.knee_rps,
                    "reference_p95_ms": knee.reference_p95_ms,
                    "p95_after_knee_ms": knee.p95_after_knee_ms,
                    "max_sustainable_rps": knee.max_sustainable_rps,
                },
                recommendation="The system saturates there: find the resource that runs out "
                "first (CPU, a connection or thread pool, a lock) on the target at that load, "
                "and keep production traffic below "
                + (
                    f"{knee.max_sustainable_rps:,.0f} req/s"
                    if knee.max_sustainable_rps
                    else "the knee"
                )
                + " until it is fixed.",
            )
        )
    if knee.error_knee_load is not None:
        found.append(
            Finding(
                kind="errors_under_load",
                severity="critical",
                summary=f"Errors appear only under load: from {_load(knee, knee.error_knee_load)}"
                " on, every load level fails at least 1 % of its requests",
                evidence={"error_knee_load": knee.error_knee_load},
                recommendation="Errors that start at a load level usually mean timeouts or an "
                "exhausted pool (connections, workers, file descriptors): read the target's "
                "logs for that moment of the run.",
            )
        )
    if knee.throughput_ceiling:
        found.append(
            Finding(
                kind="throughput_ceiling",
                severity="warning",
                summary=f"Throughput stopped at about {knee.knee_rps:,.0f} req/s: past "
                f"{_load(knee, knee.knee_load)} more virtual users only waited longer",
                evidence={"knee_rps": knee.knee_rps, "knee_load": knee.knee_load},
                recommendation="A flat throughput with rising latency is a queue: if the "
                "target's CPU is not busy at that point, look for a lock or a pool limit "
                "(database connections, worker threads) rather than for slow code.",
            )
        )
    return found


def history_findings(shifts: list[dict[str, Any]]) -> list[Finding]:
    found = []
    for shift in shifts:
        scope = "all requests" if shift["endpoint"] == RunResult.ALL else f"`{shift['endpoint']}`"
        shown = (lambda v: f"{v * 100:.2f}%") if shift["sli"] == "error_rate" else _fmt
        change = f" ({shift['change'] * 100:+.0f}%)" if shift["change"] is not None else ""
        found.append(
            Finding(
                kind="history_shift",
                severity="info",
                endpoint=None if shift["endpoint"] == RunResult.ALL else shift["endpoint"],
                summary=f"{scope} {shift['sli']} shifted for good at {shift['at'][:16]}: median "
                f"{shown(shift['before'])} over {shift['points_before']} runs before, "
                f"{shown(shift['after'])} over {shift['points_after']} from there{change}",
                evidence={k: shift[k] for k in ("at", "before", "after", "change")},
            )
        )
    return found


SHARED_SHARE = 0.6  # of the endpoints regressing together: a shared cause


def shared_slowdown(comparisons: list[Comparison]) -> list[Finding]:
    """Most endpoints slower together: a resource they share, not each one's own code."""
    endpoints = {c.endpoint for c in comparisons if c.endpoint != RunResult.ALL}
    slower = {
        c.endpoint
        for c in comparisons
        if c.endpoint != RunResult.ALL and c.sli != "error_rate" and c.verdict == "regression"
    }
    if len(endpoints) < 3 or len(slower) < SHARED_SHARE * len(endpoints):
        return []
    changes = [
        c.change
        for c in comparisons
        if c.endpoint in slower and c.sli == "p95" and c.change is not None
    ]
    spread = f" (p95 {min(changes) * 100:+.0f}% to {max(changes) * 100:+.0f}%)" if changes else ""
    return [
        Finding(
            kind="shared_slowdown",
            severity="critical",
            summary=f"{len(slower)} of {len(endpoints)} endpoints got slower together{spread}: "
            "a resource they share — a connection or thread pool, CPU, the database — is the "
            "likelier cause than any one endpoint's code",
            evidence={"endpoints": ",".join(sorted(slower)), "of": len(endpoints)},
            recommendation="Look at what every request goes through: connection and thread "
            "pools (their size and wait time), the database, CPU and memory of the target, a "
            "shared downstream service.",
        )
    ]


def dropped_iterations(summary: Mapping[str, Any] | None) -> list[Finding]:
    """An arrival-rate test that could not start its iterations on time: the target was too
    slow for the planned rate, so the load it received was lower than planned."""
    if not summary:
        return []
    values = summary.get("metrics", {}).get("dropped_iterations", {}).get("values", {})
    dropped = int(values.get("count", 0) or 0)
    started = int(
        summary.get("metrics", {}).get("iterations", {}).get("values", {}).get("count", 0) or 0
    )
    if dropped <= 0:
        return []
    share = dropped / (dropped + started) if dropped + started else 1.0
    return [
        Finding(
            kind="dropped_iterations",
            severity="warning" if share < 0.05 else "critical",
            summary=f"k6 dropped {dropped} iterations ({share:.1%} of the planned ones): the "
            "target saturated — every VU was still waiting on it when the next iteration was "
            "due, so it received less load than planned",
            evidence={"dropped_iterations": dropped, "iterations": started},
            recommendation="The target is saturated at this arrival rate: find its bottleneck "
            "(a pool, CPU, locks), or raise max_vus only if the generator was the limit.",
        )
    ]


BUSY_CPU = 85.0  # % of one core
IDLE_CPU = 50.0
MEMORY_GROWTH_MB = 50.0


def system_findings(system: Mapping[str, Any] | None, struggling: bool) -> list[Finding]:
    """What the target's CPU and memory say, when the worker could sample it (psutil), and
    the Prometheus series, cited with their correlation to load and latency."""
    if not system:
        return []
    found = []
    local = system.get("local")
    if local:
        cpu = local["series"]["cpu_percent"]
        rss = local["series"]["rss_mb"]
        evidence: dict[str, float | int | str | None] = {
            "cpu_p95_percent": cpu["p95"],
            "cpu_max_percent": cpu["max"],
            "cpu_corr_with_p95": cpu.get("corr_with_p95"),
            "cores": local.get("cores"),
        }
        if struggling and cpu["max"] < IDLE_CPU:
            found.append(
                Finding(
                    kind="idle_cpu",
                    severity="critical",
                    summary=f"The target fell behind with its CPU mostly idle (at most "
                    f"{cpu['max']:.0f}% of one core, p95 {cpu['p95']:.0f}%): requests were "
                    "waiting — on a lock, a pool (connections, threads) or a downstream "
                    "service — not computing",
                    evidence=evidence,
                    recommendation="Look at pool sizes and wait times (database connections, "
                    "worker threads, HTTP client pools) and at locks held across I/O.",
                )
            )
        elif struggling and cpu["p95"] >= BUSY_CPU:
            found.append(
                Finding(
                    kind="cpu_bound",
                    severity="warning",
                    summary=f"The target was busy computing: its CPU at p95 was "
                    f"{cpu['p95']:.0f}% of one core (max {cpu['max']:.0f}%, "
                    f"{local.get('cores')} cores on the machine)",
                    evidence=evidence,
                    recommendation="Profile the target under this load (a sampling profiler): "
                    "the time is spent in its own code; more cores or workers help only if it "
                    "can use them.",
                )
            )
        growth = rss["last"] - rss["first"]
        if growth >= max(MEMORY_GROWTH_MB, 0.2 * rss["first"]):
            found.append(
                Finding(
                    kind="memory_growth",
                    severity="warning",
                    summary=f"The target's memory grew from {rss['first']:.0f} MB to "
                    f"{rss['last']:.0f} MB during the run",
                    evidence={"rss_first_mb": rss["first"], "rss_last_mb": rss["last"]},
                    recommendation="Run a longer soak test: memory that keeps growing under "
                    "steady load is a leak or an unbounded cache.",
                )
            )
    remote = system.get("prometheus")
    if remote:
        parts = []
        for name, series in remote["series"].items():
            corr = series.get("corr_with_rps")
            follows = f", r = {corr:+.2f} with throughput" if corr is not None else ""
            parts.append(f"{name} median {series['median']:g}, max {series['max']:g}{follows}")
        found.append(
            Finding(
                kind="system_metrics",
                severity="info",
                summary="Prometheus over the run: " + "; ".join(parts),
                evidence={
                    f"{name}_max": series["max"] for name, series in remote["series"].items()
                },
            )
        )
    return found


def _avg(summary: Mapping[str, Any], metric: str) -> float | None:
    values = summary.get("metrics", {}).get(metric, {}).get("values", {})
    value = values.get("avg")
    return float(value) if value is not None else None


def time_breakdown(summary: Mapping[str, Any] | None) -> list[Finding]:
    """Where an average request's time goes (k6's timing phases): setting up connections,
    the server's time to first byte, or the transfer of the response."""
    if not summary:
        return []
    phases = {
        name: _avg(summary, f"http_req_{name}")
        for name in ("blocked", "connecting", "tls_handshaking", "sending", "waiting", "receiving")
    }
    duration = _avg(summary, "http_req_duration")
    if duration is None or duration <= 0 or any(v is None for v in phases.values()):
        return []
    ms = {k: float(v or 0.0) for k, v in phases.items()}
    setup = ms["blocked"]  # blocked covers DNS, TCP connect and TLS, waiting for a socket
    total = duration + setup
    evidence: dict[str, float | int | str | None] = {
        f"{k}_avg_ms": round(v, 3) for k, v in ms.items()
    }
    evidence["duration_avg_ms"] = round(duration, 3)
    if setup >= 0.25 * total and setup >= 1.0:
        return [
            Finding(
                kind="connection_setup",
                severity="warning",
                summary=f"Connections cost {setup:.1f} ms of an average request's {total:.1f} ms "
                f"({setup / total:.0%}): TCP connect {ms['connecting']:.1f} ms, TLS "
                f"{ms['tls_handshaking']:.1f} ms — network set-up, not the server's work",
                evidence=evidence,
                recommendation="Reuse connections: check that keep-alive is on at the load "
                "balancer and the server, and that TLS sessions resume.",
            )
        ]
    if ms["receiving"] >= 0.3 * duration and ms["receiving"] >= 1.0:
        return [
            Finding(
                kind="transfer_time",
                severity="warning",
                summary=f"Receiving responses takes {ms['receiving']:.1f} ms of "
                f"{duration:.1f} ms ({ms['receiving'] / duration:.0%}): large bodies or a "
                "slow link, not the server's thinking time",
                evidence=evidence,
                recommendation="Compress responses, page or trim large payloads, or move the "
                "load generator closer to the target.",
            )
        ]
    return [
        Finding(
            kind="time_breakdown",
            severity="info",
            summary=f"The server's time to first byte is {ms['waiting']:.1f} ms of an average "
            f"request's {duration:.1f} ms ({ms['waiting'] / duration:.0%}); connection set-up "
            f"{setup:.2f} ms, transfer {ms['sending'] + ms['receiving']:.2f} ms: latency is the "
            "server's, not the network's",
            evidence=evidence,
        )
    ]


def generator_findings(health: LoadGenerator | None, doubt: str | None) -> list[Finding]:
    """The measurement itself in doubt: said first, and nothing is blamed on the target."""
    if doubt is None or health is None:
        return []
    evidence: dict[str, float | int | str | None] = {"status": health.status}
    if health.k6_cpu_percent:
        evidence["k6_cpu_median_percent"] = health.k6_cpu_percent["median"]
    if health.other_cpu_percent:
        evidence["other_cpu_mean_percent"] = health.other_cpu_percent["mean"]
    if health.machine_cpu_percent:
        evidence["machine_cpu_median_percent"] = health.machine_cpu_percent["median"]
    evidence["cores"] = health.cores
    return [
        Finding(
            kind="load_generator",
            severity="critical",
            summary=f"Inconclusive: {doubt}. k6's timings include its own wait for CPU, so "
            "no regression and no root cause is claimed from this comparison",
            evidence=evidence,
            recommendation="Run it again on a quiet machine (nothing else busy), or give k6 "
            "more cores: a generator should stay under about 80 % of its CPU.",
        )
    ]


def load_findings(load: LoadComparison | None, comparisons: list[Comparison]) -> list[Finding]:
    """The run carried another load than its baseline: say so, and what that explains."""
    if load is None or not load.changed or load.baseline is None:
        return []
    explained = sorted(
        {f"{c.endpoint}:{c.sli}" for c in comparisons if c.verdict == "explained_by_load"}
    )
    summary = "The load differs from the baseline's: " + "; ".join(load.reasons)
    if explained:
        summary += (
            f". {len(explained)} latency changes follow the load and are not called "
            f"regressions or improvements ({', '.join(explained[:6])}"
            + (", …" if len(explained) > 6 else "")
            + ")"
        )
    if load.offered_changed:
        advice = "Compare runs at the same load (the same VUs or arrival rate) to judge code."
    elif load.model == "closed":
        advice = (
            "Under constant VUs the throughput follows the latency: the endpoint that moved "
            "against the load is the cause; an arrival-rate plan compares at a fixed load."
        )
    else:
        advice = "The target did not keep up with the arrival rate: find its bottleneck."
    return [
        Finding(
            kind="load_change",
            severity="warning",
            summary=summary,
            evidence={
                "model": load.model,
                "rps_baseline": load.baseline.rps,
                "rps_current": load.current.rps,
                "rps_change": load.change.get("rps"),
                "offered_change": load.change.get("offered"),
                "explained_changes": len(explained),
            },
            recommendation=advice,
        )
    ]


def all_findings(
    slo_results: list[SloResult],
    results: Mapping[str, RunResult],
    comparisons: list[Comparison],
    knee: Saturation | None = None,
    shifts: list[dict[str, Any]] | None = None,
    summary: Mapping[str, Any] | None = None,
    system: Mapping[str, Any] | None = None,
    generator: LoadGenerator | None = None,
    doubt: str | None = None,
    load: LoadComparison | None = None,
    profiled: list[Finding] | None = None,
    signed: list[Finding] | None = None,
    cpu_relative: bool = False,
) -> list[Finding]:
    if doubt is not None:
        found = generator_findings(generator, doubt) + slo_breaches(slo_results)
        _number(found)
        return found
    found = slo_breaches(slo_results)
    # A profile names the function and the query: the strongest evidence there is.
    found += sorted(profiled or [], key=lambda f: f.severity != "critical")
    # Then the shape of each regressed endpoint's change: queueing, own work, stalls.
    found += signed or []
    explained = {f.endpoint for f in signed or []}
    found += load_findings(load, comparisons)
    found += shared_slowdown(comparisons)
    found += baseline_changes(comparisons)
    found += dropped_iterations(summary)
    found += history_findings(shifts or [])
    found += saturation_findings(knee)
    # A signature says more about an endpoint than "it is the slow one" does.
    found += [f for f in confined_slowness(results) if f.endpoint not in explained]
    found += errors(results)
    found += long_tails(results)
    found += time_breakdown(summary)
    struggling = any(
        f.kind
        in (
            "shared_slowdown",
            "dropped_iterations",
            "saturation",
            "throughput_ceiling",
            "regression",
            "slo_breach",
        )
        for f in found
    )
    local = system_findings(system, struggling)
    if cpu_relative:
        # The target's CPU was judged per endpoint against the baseline's (signatures):
        # a fixed share of a core says nothing about a target that is always that idle.
        local = [f for f in local if f.kind not in ("idle_cpu", "cpu_bound")]
    found += local
    _number(found)
    return found


def _number(found: list[Finding]) -> None:
    numbered = 0
    for finding in found:
        if finding.recommendation:
            numbered += 1
            finding.recommendation_id = f"r{numbered}"
