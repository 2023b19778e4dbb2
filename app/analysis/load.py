"""Did the run carry the same load as its baselines? Latency only compares at the same load.

From k6's own summaries (exact): throughput (requests/s), iterations/s, dropped iterations
and the peak VUs; the offered load is the peak VUs under a closed model (constant or ramping
VUs) and the arrival rate (iterations + dropped iterations per second) under an open one.

Two ways the load moves between runs, and what each explains:

- **The plan asked for another load** (more VUs, another arrival rate): more load explains
  slower endpoints, less load faster ones.
- **A closed model carried more (or less) throughput at the same VUs**: one endpoint got
  faster (a pool limit removed, say), each VU loops quicker, and the other endpoints now serve
  more requests per second — their latency rises with the load, though their code did not
  change. A latency change in the direction of the load change on an endpoint is
  ``explained_by_load`` when another endpoint moved the other way (the cause of the load
  change); the endpoint that moved against the load is the finding.

Under an open model the arrival rate is fixed: a throughput that fell short of it (dropped
iterations) is the target falling behind — a regression in its own right, never an
explanation.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from scipy.stats import mannwhitneyu

from app.analysis.schemas import Comparison, LoadComparison, LoadSide, Model

# A load this far from the baseline's (relative) is a different load.
LOAD_CHANGE = 0.15
OFFERED_CHANGE = 0.10
ALPHA = 0.01


def _metric(summary: Mapping[str, Any] | None, name: str, key: str) -> float | None:
    values = (((summary or {}).get("metrics") or {}).get(name) or {}).get("values") or {}
    value = values.get(key)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def side(summary: Mapping[str, Any] | None, model: Model) -> LoadSide:
    rps = _metric(summary, "http_reqs", "rate")
    iterations = _metric(summary, "iterations", "count") or 0.0
    iteration_rate = _metric(summary, "iterations", "rate")
    dropped = _metric(summary, "dropped_iterations", "count") or 0.0
    vus = _metric(summary, "vus_max", "max") or _metric(summary, "vus_max", "value")
    offered: float | None = vus
    if model == "open" and iteration_rate is not None and iterations:
        # k6's rates divide by the test's duration: scale the iterations that did run up by
        # those it dropped.
        offered = iteration_rate * (iterations + dropped) / iterations
    return LoadSide(
        rps=rps,
        iterations_per_s=iteration_rate,
        dropped_iterations=int(dropped),
        vus_max=int(vus) if vus is not None else None,
        offered=offered,
    )


def model_of(executors: Sequence[str]) -> Model:
    """closed (VUs loop), open (arrival rate) or unknown (a hand-written script, a mix)."""
    kinds: set[Model] = {
        "open" if "arrival" in e else "closed" for e in executors if e and "script" not in e
    }
    return kinds.pop() if len(kinds) == 1 else "unknown"


def _median(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _relative(current: float | None, baseline: float | None) -> float | None:
    if current is None or baseline is None or baseline <= 0:
        return None
    return (current - baseline) / baseline


def compare_load(
    model: Model,
    run: Mapping[str, Any] | None,
    baselines: Sequence[Mapping[str, Any] | None],
) -> LoadComparison:
    current = side(run, model)
    if not baselines:
        return LoadComparison(model=model, current=current)
    sides = [side(b, model) for b in baselines]
    baseline = LoadSide(
        rps=_median([s.rps for s in sides]),
        iterations_per_s=_median([s.iterations_per_s for s in sides]),
        dropped_iterations=int(statistics.median([s.dropped_iterations for s in sides])),
        vus_max=int(v) if (v := _median([s.vus_max for s in sides])) is not None else None,
        offered=_median([s.offered for s in sides]),
    )
    change = {
        "rps": _relative(current.rps, baseline.rps),
        "iterations_per_s": _relative(current.iterations_per_s, baseline.iterations_per_s),
        "offered": _relative(current.offered, baseline.offered),
    }
    reasons: list[str] = []
    offered_changed = change["offered"] is not None and abs(change["offered"]) >= OFFERED_CHANGE
    if offered_changed:
        unit = "VUs" if model != "open" else "iterations/s"
        reasons.append(
            f"the plan asked for {current.offered:,.4g} {unit} against the baseline's "
            f"{baseline.offered:,.4g} ({change['offered']:+.0%})"
        )
    rps_changed = change["rps"] is not None and abs(change["rps"]) >= LOAD_CHANGE
    if rps_changed:
        reasons.append(
            f"throughput {baseline.rps:,.1f} → {current.rps:,.1f} req/s ({change['rps']:+.0%})"
        )
    if current.dropped_iterations > 2 * baseline.dropped_iterations + 10:
        reasons.append(
            f"k6 dropped {current.dropped_iterations} iterations (baseline "
            f"{baseline.dropped_iterations}): the target fell behind the arrival rate"
        )
    return LoadComparison(
        model=model,
        current=current,
        baseline=baseline,
        change=change,
        changed=offered_changed or rps_changed,
        offered_changed=offered_changed,
        reasons=reasons,
    )


def throughput_comparison(
    load: LoadComparison, per_second: Sequence[int], base_per_second: Sequence[int]
) -> Comparison | None:
    """Throughput over all requests as one more comparison: a fall at an unchanged offered
    load is the target doing less work (a regression); at another offered load it is the
    plan's doing. ``per_second``, ``base_per_second``: requests of each steady second (each
    run's first and last, cut short, left out by the caller)."""
    if load.baseline is None or load.current.rps is None or load.baseline.rps is None:
        return None
    ours, theirs = list(per_second), list(base_per_second)
    change = load.change.get("rps")
    method = (
        f"Mann-Whitney U on requests per second ({len(ours)} s vs {len(theirs)} s), practical "
        f"change ≥ {LOAD_CHANGE:.0%}; k6's own rates"
    )
    p_value = effect = None
    verdict: Any = "insufficient_data"
    if len(ours) >= 3 and len(theirs) >= 3:
        test = mannwhitneyu(ours, theirs, alternative="two-sided")
        p_value = float(test.pvalue) if not math.isnan(test.pvalue) else 1.0
        effect = 2 * float(test.statistic) / (len(ours) * len(theirs)) - 1
        verdict = "unchanged"
        if change is not None and abs(change) >= LOAD_CHANGE and p_value < ALPHA:
            if load.offered_changed:
                verdict = "explained_by_load"
            else:
                verdict = "regression" if change < 0 else "improvement"
    return Comparison(
        endpoint="*",
        sli="rps",
        baseline=load.baseline.rps,
        current=load.current.rps,
        change=change,
        p_value=p_value,
        effect_size=effect,
        verdict=verdict,
        method=method,
        n_current=len(ours),
        n_baseline=len(theirs),
        explained_by_load=verdict == "explained_by_load",
    )


def explain(comparisons: list[Comparison], load: LoadComparison) -> None:
    """Mark the latency changes the load change explains (see the module's docstring)."""
    if not load.changed:
        return
    rps = load.change.get("rps") or 0.0
    offered = load.change.get("offered") or 0.0
    direction = offered if load.offered_changed else rps
    if direction == 0:
        return
    with_load = "regression" if direction > 0 else "improvement"
    against = "improvement" if direction > 0 else "regression"
    latency = [c for c in comparisons if c.sli in ("p50", "p95", "p99")]
    for comparison in latency:
        if comparison.verdict != with_load:
            continue
        if load.offered_changed:
            explained = True
        elif load.model == "closed":
            # The cause must be somewhere: another endpoint moved against the load.
            explained = any(
                other.verdict == against and other.endpoint not in ("*", comparison.endpoint)
                for other in latency
            )
        else:
            explained = False
        if explained:
            comparison.verdict = "explained_by_load"
            comparison.explained_by_load = True
