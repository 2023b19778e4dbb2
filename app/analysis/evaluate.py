"""Judge each SLO against the figures k6 measured for the run."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from app.analysis.schemas import SloResult
from app.models import RunResult
from app.plans.k6script import slo_threshold
from app.plans.schemas import SLO

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

# SLI → (RunResult column, k6 statistic it was read from)
SLI_SOURCES = {
    "avg": ("avg_ms", "avg"),
    "min": ("min_ms", "min"),
    "med": ("p50_ms", "med"),
    "p50": ("p50_ms", "p(50)"),
    "p90": ("p90_ms", "p(90)"),
    "p95": ("p95_ms", "p(95)"),
    "p99": ("p99_ms", "p(99)"),
    "max": ("max_ms", "max"),
    "error_rate": ("error_rate", "rate"),
    "rps": ("rps", "rate"),
}


def _k6_verdict(summary: Mapping[str, Any] | None, slo: SLO) -> bool | None:
    if not summary:
        return None
    metric, expression = slo_threshold(slo)
    verdict = summary.get("metrics", {}).get(metric, {}).get("thresholds", {}).get(expression)
    return None if verdict is None else bool(verdict.get("ok"))


def evaluate_slo(
    slo: SLO, results: Mapping[str, RunResult], summary: Mapping[str, Any] | None
) -> SloResult:
    column, stat = SLI_SOURCES[slo.sli]
    row = results.get(slo.endpoint or RunResult.ALL)
    measured = getattr(row, column) if row is not None else None
    if measured is None:
        status = "no_data"
    else:
        status = "pass" if _OPS[slo.op](float(measured), slo.target) else "fail"
    metric, _ = slo_threshold(slo)
    return SloResult(
        key=slo.key,
        objective=slo.text,
        endpoint=slo.endpoint,
        sli=slo.sli,
        op=slo.op,
        target=slo.target,
        unit=slo.unit,
        measured=None if measured is None else float(measured),
        status=status,
        source=f"k6 {metric} {stat}",
        k6_threshold_ok=_k6_verdict(summary, slo),
    )


def evaluate(
    slos: list[SLO], results: Mapping[str, RunResult], summary: Mapping[str, Any] | None
) -> list[SloResult]:
    return [evaluate_slo(slo, results, summary) for slo in slos]
