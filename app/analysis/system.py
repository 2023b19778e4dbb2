"""System metrics of the target beside the run's load and latency.

Two sources: the target's own process sampled by the worker (psutil, stored in each live
second under ``system``) when the target is on the worker's machine, and the plan's PromQL
queries fetched from Prometheus (``/api/v1/query_range``) over the run's window. Each series
is summarised (median, p95, max) and correlated (Pearson, second by second) with the run's
throughput and p95; findings cite them.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from app.core.errors import GuardrailViolation
from app.core.settings import Settings, get_settings
from app.guardrails.network import check_outbound, pinned_client
from app.plans.schemas import SystemMetrics

log = logging.getLogger(__name__)

PROMETHEUS_TIMEOUT_S = 5.0
MAX_POINTS = 5000


def _pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    if len(xs) < 5 or len(xs) != len(ys):
        return None
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    if float(x.std()) == 0 or float(y.std()) == 0:
        return None
    return round(float(np.corrcoef(x, y)[0, 1]), 3)


def summarise(
    values: Sequence[float], rps: Sequence[float] | None, p95: Sequence[float | None] | None
) -> dict[str, Any]:
    ordered = sorted(values)
    result: dict[str, Any] = {
        "points": len(values),
        "median": round(statistics.median(ordered), 3),
        "p95": round(ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)], 3),
        "max": round(ordered[-1], 3),
        "first": round(values[0], 3),
        "last": round(values[-1], 3),
    }
    if rps is not None:
        result["corr_with_rps"] = _pearson(values, rps)
    if p95 is not None:
        pairs = [(v, p) for v, p in zip(values, p95, strict=True) if p is not None]
        result["corr_with_p95"] = _pearson([v for v, _ in pairs], [p for _, p in pairs])
    return result


def from_samples(
    seconds: Sequence[tuple[dict[str, Any] | None, int, float | None]],
) -> dict[str, Any] | None:
    """The worker's psutil readings: (system, requests, p95) per second."""
    rows = [(s, r, p) for s, r, p in seconds if s]
    if len(rows) < 3:
        return None
    cpu = [float(s["cpu_percent"]) for s, _, _ in rows]
    rss = [float(s["rss_mb"]) for s, _, _ in rows]
    rps = [float(r) for _, r, _ in rows]
    p95 = [p for _, _, p in rows]
    return {
        "source": "psutil",
        "note": "the target's processes on the worker's machine; CPU in % of one core",
        "cores": rows[-1][0].get("cores") if rows[-1][0] else None,
        "series": {
            "cpu_percent": summarise(cpu, rps, p95),
            "rss_mb": summarise(rss, rps, p95),
        },
    }


def _prometheus_totals(status: int, body: Any) -> dict[float, float]:
    """A query_range answer as one value per timestamp (the sum over its series)."""
    if not isinstance(body, dict):
        raise ValueError(f"not a Prometheus answer (HTTP {status})")
    if status != 200 or body.get("status") != "success":
        raise ValueError(str(body.get("error") or f"HTTP {status}"))
    data = body.get("data")
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(result, list) or not result:
        raise ValueError("no data over the run's window")
    # Several series (labels): their sum per timestamp, e.g. CPU over all pods.
    totals: dict[float, float] = {}
    for item in result:
        values = item.get("values") if isinstance(item, dict) else None
        for point in (values or [])[:MAX_POINTS]:
            try:
                stamp, number = float(point[0]), float(point[1])
            except (TypeError, ValueError, IndexError):
                continue
            if math.isfinite(number):
                totals[stamp] = totals.get(stamp, 0.0) + number
    if not totals:
        raise ValueError("only missing or non-finite values over the run's window")
    return totals


async def from_prometheus(
    config: SystemMetrics,
    start: float,
    end: float,
    load: Sequence[tuple[float, int, float | None]],
    settings: Settings | None = None,
) -> tuple[dict[str, Any] | None, list[str]]:
    """Each query's series over [start, end] (epoch seconds; ``start`` is the run's first
    second), aligned with the run's seconds (elapsed, requests, p95) by time. Returns the
    summary and what could not be fetched.

    The URL passes the guardrails' outbound policy first (its host patterns, then every
    address it resolves to against the denied networks) and the requests go to the addresses
    that were checked; a refused URL is not called at all, and is a problem, not an error."""
    problems: list[str] = []
    series: dict[str, Any] = {}
    begin = start
    by_second = {int(elapsed): (requests, p95) for elapsed, requests, p95 in load}
    try:
        prometheus = await check_outbound(
            config.prometheus_url,
            settings or get_settings(),
            purpose="system_metrics.prometheus_url",
        )
    except GuardrailViolation as exc:
        return None, [f"Prometheus not queried: {exc.detail} ({exc.code})"]
    async with pinned_client(prometheus, timeout=PROMETHEUS_TIMEOUT_S) as client:
        for name, query in config.queries.items():
            try:
                response = await client.get(
                    f"{prometheus.url}/api/v1/query_range",
                    params={
                        "query": query,
                        "start": f"{begin:.3f}",
                        "end": f"{end:.3f}",
                        "step": f"{config.step:g}s",
                    },
                )
                body = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                problems.append(f"{name}: Prometheus did not answer ({type(exc).__name__})")
                continue
            try:
                totals = _prometheus_totals(response.status_code, body)
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
                continue
            stamps = sorted(totals)
            values = [totals[t] for t in stamps]
            rps, p95 = [], []
            for stamp in stamps:
                requests, latency = by_second.get(int(stamp - begin), (None, None))
                rps.append(requests)
                p95.append(latency)
            aligned = [i for i, r in enumerate(rps) if r is not None]
            summary = summarise(values, None, None)
            if len(aligned) >= 5:
                summary["corr_with_rps"] = _pearson(
                    [values[i] for i in aligned], [float(rps[i] or 0) for i in aligned]
                )
                pairs = [(values[i], p95[i]) for i in aligned if p95[i] is not None]
                summary["corr_with_p95"] = _pearson(
                    [v for v, _ in pairs], [float(p or 0) for _, p in pairs]
                )
            series[name] = {"query": query, **summary}
    if not series:
        return None, problems
    return {"source": "prometheus", "url": config.prometheus_url, "series": series}, problems
