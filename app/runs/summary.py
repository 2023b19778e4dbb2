"""Read per-endpoint figures out of k6's end-of-test summary (``handleSummary`` data).

Every number stored for a run comes from here, i.e. from k6's own measurement.
"""

from __future__ import annotations

from typing import Any

from app.core import slis
from app.models import RunResult
from app.plans.k6script import duration_metric, failed_metric, reqs_metric

_LATENCY_FIELDS = slis.STORED_LATENCY


class SummaryError(ValueError):
    """k6's summary lacks what the generated script always asks it to report."""


def _values(metrics: dict[str, Any], name: str) -> dict[str, float] | None:
    metric = metrics.get(name)
    if metric is None:
        return None
    values: dict[str, float] = metric.get("values", {})
    return values


def endpoint_result(metrics: dict[str, Any], endpoint: str | None) -> dict[str, Any]:
    reqs = _values(metrics, reqs_metric(endpoint))
    failed = _values(metrics, failed_metric(endpoint))
    duration = _values(metrics, duration_metric(endpoint))
    if duration is None and endpoint is None:
        # A hand-written script may not declare the expected_response sub-metric.
        duration = _values(metrics, "http_req_duration")
    if reqs is None and failed is None:
        # k6 omits a sub-metric with no samples at all: the endpoint was never called.
        reqs, failed = {"count": 0, "rate": 0.0}, {"passes": 0, "rate": 0.0}
    if reqs is None or failed is None:
        raise SummaryError(f"k6's summary has no request figures for {endpoint or 'the run'}")
    row: dict[str, Any] = {
        "endpoint": endpoint or RunResult.ALL,
        "requests": int(reqs.get("count", 0)),
        "rps": float(reqs.get("rate", 0.0)),
        # http_req_failed is a Rate whose "passes" are the *failed* requests.
        "failures": int(failed.get("passes", 0)),
        "error_rate": float(failed.get("rate", 0.0)),
    }
    has_latency = duration is not None and duration.get("count", 0) > 0
    for field, stat in _LATENCY_FIELDS.items():
        row[field] = float(duration[stat]) if has_latency and duration else None
    return row


def parse_results(summary: dict[str, Any], endpoints: list[str]) -> list[dict[str, Any]]:
    metrics = summary.get("metrics")
    if not isinstance(metrics, dict):
        raise SummaryError("k6's summary has no metrics")
    return [endpoint_result(metrics, None)] + [endpoint_result(metrics, e) for e in endpoints]
