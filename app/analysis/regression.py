"""Did a run regress against its baseline? Per endpoint and SLI, tested on per-second samples.

For a latency SLI (p50, p95, p99) the evidence is the run's per-second values of that
percentile (one per second of the test, from the live histograms) against those of the
baseline runs, pooled:

- a Mann-Whitney U test (two-sided) says whether the two samples differ beyond chance;
- Cliff's δ (from the same U) says by how much: the share of (run, baseline) second pairs in
  which the run was slower, minus the share in which it was faster, from −1 to +1;
- a practical change on the whole-run figure (at least ``MIN_CHANGE_BY_SLI`` relative *and*
  ``MIN_DELTA_MS_BY_SLI`` absolute) keeps a statistically certain but harmless shift, or the
  drift between two runs of an unchanged system, from alarming.

A regression needs all three; an improvement is the same in the other direction. Run-to-run
noise (a busier machine, a warmer cache) moves whole runs by a few per cent: the practical
change is set above that. For the error rate the run's and the baselines' failures are
compared with Fisher's exact test, with a practical change of ``MIN_ERROR_RATE_DELTA``
(absolute) and 1.5× the baseline rate.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import fisher_exact, mannwhitneyu

from app.analysis.schemas import Comparison

LATENCY_SLIS = ("p50", "p95", "p99")
ALPHA = 0.01
MIN_EFFECT = 0.33  # Cliff's δ: "medium" and above (Romano et al.)
# Practical change of the whole-run value, per SLI: above the run-to-run drift of an unchanged
# system. eval/golden's no-change pairs drifted by up to +19 % at p50 and +28 % at p99 between
# two 6-second runs on a busy 2-core machine; tails move more than medians.
MIN_CHANGE = 0.15
MIN_CHANGE_BY_SLI = {"p50": 0.25, "p95": 0.25, "p99": 0.40}
MIN_DELTA_MS = 1.0
MIN_DELTA_MS_BY_SLI = {"p50": 1.0, "p95": 2.0, "p99": 3.0}
MIN_ERROR_RATE_DELTA = 0.005
MIN_SECONDS = 5
# A second's percentile is taken seriously only with enough responses for it: its p99 from 20
# responses is the second's maximum, which a single stall sets.
MIN_RESPONSES_PER_SECOND = 3
MIN_RESPONSES_BY_SLI = {"p50": 3, "p95": 10, "p99": 50}


@dataclass
class RunSeries:
    """What one run measured for one endpoint: whole-run figures and per-second values."""

    whole: Mapping[str, float | None]  # p50/p95/p99 in ms, error_rate
    requests: int
    failures: int
    per_second: Mapping[str, Sequence[float]]  # p50/p95/p99 of each second with enough responses


# A run's seconds for one endpoint, as columns: requests, failures, p50, p95, p99 (ms; NaN
# where the second had no response).
PerSecond = tuple[Sequence[int], Sequence[int], Sequence[float], Sequence[float], Sequence[float]]


def series_from_seconds(seconds: PerSecond | None) -> dict[str, list[float]]:
    """Per-second percentile values, leaving out seconds with too few expected responses to
    have a percentile worth the name."""
    if seconds is None or not len(seconds[0]):
        return {sli: [] for sli in LATENCY_SLIS}
    requests, failures, *percentiles = (np.asarray(column, dtype=float) for column in seconds)
    responses = requests - failures
    values: dict[str, list[float]] = {}
    for sli, column in zip(LATENCY_SLIS, percentiles, strict=True):
        keep = ~np.isnan(column) & (responses >= MIN_RESPONSES_BY_SLI[sli])
        values[sli] = column[keep].tolist()
    return values


def _latency(sli: str, endpoint: str, run: RunSeries, base: Sequence[RunSeries]) -> Comparison:
    current = run.whole.get(sli)
    base_values = [b.whole.get(sli) for b in base]
    known = [v for v in base_values if v is not None]
    baseline = statistics.median(known) if known else None
    ours = list(run.per_second.get(sli, ()))
    theirs = [v for b in base for v in b.per_second.get(sli, ())]
    min_change = MIN_CHANGE_BY_SLI.get(sli, MIN_CHANGE)
    min_delta = MIN_DELTA_MS_BY_SLI.get(sli, MIN_DELTA_MS)
    method = (
        f"Mann-Whitney U on per-second {sli} ({len(ours)} s vs {len(theirs)} s), Cliff's δ, "
        f"practical change ≥ {min_change:.0%} and ≥ {min_delta:g} ms"
    )
    if current is None or baseline is None or len(ours) < MIN_SECONDS or len(theirs) < MIN_SECONDS:
        return Comparison(
            endpoint=endpoint,
            sli=sli,
            baseline=baseline,
            current=current,
            change=None,
            p_value=None,
            effect_size=None,
            verdict="insufficient_data",
            method=method,
            n_current=len(ours),
            n_baseline=len(theirs),
        )
    test = mannwhitneyu(ours, theirs, alternative="two-sided")
    p_value = float(test.pvalue) if not math.isnan(test.pvalue) else 1.0
    delta = 2 * float(test.statistic) / (len(ours) * len(theirs)) - 1
    change = (current - baseline) / baseline if baseline else None
    practical = abs(current - baseline) >= min_delta and (
        change is None or abs(change) >= min_change
    )
    verdict = "unchanged"
    if p_value < ALPHA and abs(delta) >= MIN_EFFECT and practical:
        if delta > 0 and current > baseline:
            verdict = "regression"
        elif delta < 0 and current < baseline:
            verdict = "improvement"
    return Comparison(
        endpoint=endpoint,
        sli=sli,
        baseline=baseline,
        current=current,
        change=change,
        p_value=p_value,
        effect_size=delta,
        verdict=verdict,
        method=method,
        n_current=len(ours),
        n_baseline=len(theirs),
    )


def _error_rate(endpoint: str, run: RunSeries, base: Sequence[RunSeries]) -> Comparison:
    base_requests = sum(b.requests for b in base)
    base_failures = sum(b.failures for b in base)
    method = (
        f"Fisher's exact test on failures ({run.failures}/{run.requests} vs "
        f"{base_failures}/{base_requests}), practical change ≥ "
        f"{MIN_ERROR_RATE_DELTA * 100:g} points and ≥ 1.5× the baseline rate"
    )
    if run.requests == 0 or base_requests == 0:
        return Comparison(
            endpoint=endpoint,
            sli="error_rate",
            baseline=None,
            current=None,
            change=None,
            p_value=None,
            effect_size=None,
            verdict="insufficient_data",
            method=method,
            n_current=run.requests,
            n_baseline=base_requests,
        )
    current = run.failures / run.requests
    baseline = base_failures / base_requests
    table = np.array(
        [
            [run.failures, run.requests - run.failures],
            [base_failures, base_requests - base_failures],
        ]
    )
    p_value = float(fisher_exact(table).pvalue)
    diff = current - baseline
    verdict = "unchanged"
    if p_value < ALPHA and abs(diff) >= MIN_ERROR_RATE_DELTA:
        if diff > 0 and current >= 1.5 * baseline:
            verdict = "regression"
        elif diff < 0 and baseline >= 1.5 * current:
            verdict = "improvement"
    return Comparison(
        endpoint=endpoint,
        sli="error_rate",
        baseline=baseline,
        current=current,
        change=(diff / baseline) if baseline else None,
        p_value=p_value,
        effect_size=diff,
        verdict=verdict,
        method=method,
        n_current=run.requests,
        n_baseline=base_requests,
    )


def compare(
    run: Mapping[str, RunSeries], baselines: Sequence[Mapping[str, RunSeries]]
) -> list[Comparison]:
    """Every endpoint of ``run`` ('*' first) against the same endpoint in the baselines."""
    found: list[Comparison] = []
    for endpoint in sorted(run, key=lambda name: (name != "*", name)):
        base = [b[endpoint] for b in baselines if endpoint in b]
        if not base:
            continue
        for sli in LATENCY_SLIS:
            found.append(_latency(sli, endpoint, run[endpoint], base))
        found.append(_error_rate(endpoint, run[endpoint], base))
    return found
