"""Judge each SLO against the figures k6 measured for the run."""

from __future__ import annotations

import operator
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from app.analysis.schemas import Score, SloResult
from app.core import slis
from app.models import RunResult
from app.plans.k6script import slo_threshold
from app.plans.schemas import SLO, Scoring

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

# For an objective with no absolute criterion (so no k6 threshold): the metric it reads.
KIND_METRICS = {
    "latency": "http_req_duration{expected_response:true}",
    "error_rate": "http_req_failed",
    "throughput": "http_reqs",
}


def _k6_verdict(summary: Mapping[str, Any] | None, slo: SLO) -> bool | None:
    if not summary:
        return None
    metric, expression = slo_threshold(slo)
    verdict = summary.get("metrics", {}).get(metric, {}).get("thresholds", {}).get(expression)
    return None if verdict is None else bool(verdict.get("ok"))


def _baseline_value(slo: SLO, baselines: Sequence[Mapping[str, RunResult]]) -> float | None:
    column = slis.BY_NAME[slo.sli].column
    values = [
        float(getattr(row, column))
        for results in baselines
        if (row := results.get(slo.endpoint or RunResult.ALL)) is not None
        and getattr(row, column) is not None
    ]
    return statistics.median(values) if values else None


def evaluate_slo(
    slo: SLO,
    results: Mapping[str, RunResult],
    summary: Mapping[str, Any] | None,
    baselines: Sequence[Mapping[str, RunResult]] = (),
) -> SloResult:
    sli = slis.BY_NAME[slo.sli]
    column, stat = sli.column, sli.stat
    row = results.get(slo.endpoint or RunResult.ALL)
    measured = getattr(row, column) if row is not None else None
    baseline = _baseline_value(slo, baselines) if slo.relative_change is not None else None
    change = None
    note = None
    absolute_ok = None
    if measured is None:
        status = "no_data"
    else:
        value = float(measured)
        if slo.target is not None:
            absolute_ok = _OPS[slo.op](value, slo.target)
        ok = absolute_ok is not False
        if slo.relative_change is not None and slo.relative_op is not None:
            if baseline is None:
                note = "no baseline value: the relative criterion was not judged"
            else:
                change = (value - baseline) / baseline if baseline else 0.0
                limit = baseline * (1 + slo.relative_change)
                ok = ok and _OPS[slo.relative_op](value, limit)
        if ok:
            status = "pass"
        elif (
            slo.warning_op is not None
            and slo.warning_target is not None
            and _OPS[slo.warning_op](value, slo.warning_target)
        ):
            status = "warning"
        else:
            status = "fail"
    metric = slo_threshold(slo)[0] if slo.target is not None else KIND_METRICS[sli.kind]
    points = {"pass": float(slo.weight), "warning": slo.weight / 2}.get(status, 0.0)
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
        k6_threshold_ok=_k6_verdict(summary, slo) if slo.target is not None else None,
        baseline=baseline,
        change=change,
        warning=slo.warning_text,
        weight=slo.weight,
        key_sli=slo.key_sli,
        score=points,
        absolute_ok=absolute_ok,
        note=note,
    )


def evaluate(
    slos: list[SLO],
    results: Mapping[str, RunResult],
    summary: Mapping[str, Any] | None,
    baselines: Sequence[Mapping[str, RunResult]] = (),
) -> list[SloResult]:
    return [evaluate_slo(slo, results, summary, baselines) for slo in slos]


def total_score(slo_results: list[SloResult], scoring: Scoring) -> Score:
    """Keptn's rule: a failed key SLI fails everything; else the score decides."""
    possible = sum(r.weight for r in slo_results)
    value = 100 * sum(r.score for r in slo_results) / possible if possible else 100.0
    failed_keys = [r.key for r in slo_results if r.key_sli and r.status in ("fail", "no_data")]
    if failed_keys:
        result = "fail"
    elif value >= scoring.pass_:
        result = "pass"
    elif value >= scoring.warning:
        result = "warning"
    else:
        result = "fail"
    return Score(
        value=round(value, 2),
        pass_target=scoring.pass_,
        warning_target=scoring.warning,
        result=result,
        failed_key_slis=failed_keys,
    )
