"""Did a run regress against its baseline? Per endpoint and SLI, on responses and seconds.

For a latency SLI (p50, p95, p99) four things must hold before a change is claimed:

- **it is there in the responses**: Mood's quantile test on the whole-run histograms — how
  many of the run's responses and how many of the baselines' were slower than the SLI's
  percentile of both pooled (Fisher's exact test). Every latency comparison of an analysis is
  one test of a family, each held to ``ALPHA / tests`` (Bonferroni): an analysis makes ~15 of
  them (5 endpoints × 3 SLIs), and at ``ALPHA`` each an unchanged system would raise a false
  alarm in one analysis of ten (the family is the latency tests; error rates and throughput
  are tested apart, each at ``ALPHA``). Runs without stored histograms fall back on the per-second
  test below, held to the same α — far weaker on short runs (six seconds a side never reach
  p 0.001);
- **it is there second by second**: a Mann-Whitney U test of the per-second values at
  ``ALPHA`` and Cliff's δ from its U — the share of (run, baseline) second pairs in which the
  run was slower, minus the share in which it was faster — at least ``MIN_EFFECT``. Responses
  of one run are not independent of one another (a slow minute, a GC pause, a neighbour): on a
  long, busy run the response-level test finds any shift at all, and the seconds are what
  says it held through the run;
- **it is beyond the data's own noise**: a 99 % interval of the relative change by block
  bootstrap of the mean per-second value of each side (contiguous blocks of seconds, so slow
  minutes stay together) excludes zero;
- **it is worth an alarm**: a practical change of the whole-run figure of at least a small
  floor (``FLOOR_BY_SLI``, ``MIN_DELTA_MS_BY_SLI`` absolute), raised to the **run-to-run
  spread of the baselines** when several are given (1.5 × the largest distance of one
  baseline from their median): with one baseline the run's own noise decides, with several
  the noise between runs decides too.

An improvement is the same in the other direction. A change that is statistically there but
under the practical threshold, or over it with an interval that reaches zero, is marked
``watch``: reported, not judged. For the error rate the run's and the baselines' failures are
compared with Fisher's exact test, with a practical change of ``MIN_ERROR_RATE_DELTA``
(absolute) and 1.5× the baseline rate.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import fisher_exact, mannwhitneyu

from app.analysis.schemas import Comparison
from app.core import slis
from app.runs.histogram import Histogram

LATENCY_SLIS = ("p50", "p95", "p99")
ALPHA = 0.01
MIN_EFFECT = 0.33  # Cliff's δ: "medium" and above (Romano et al.)
# Against baseline runs: the smallest practical change (relative and absolute) per SLI; the
# baselines' own spread raises it (see the module's docstring). Tails move more than medians.
FLOOR_BY_SLI = {"p50": 0.10, "p95": 0.10, "p99": 0.20}
MIN_DELTA_MS_BY_SLI = {"p50": 0.3, "p95": 0.5, "p99": 1.0}
SPREAD_FACTOR = 1.5
CONFIDENCE = 0.99
BOOTSTRAP = 1000
MAX_BLOCKS = 60
# Against history (robust z of past whole-run values, baselines/history.py): no per-second
# data, so a fixed practical change above the drift between runs of an unchanged system.
MIN_CHANGE = 0.15
MIN_CHANGE_BY_SLI = {"p50": 0.25, "p95": 0.25, "p99": 0.40}
HISTORY_MIN_DELTA_MS_BY_SLI = {"p50": 1.0, "p95": 2.0, "p99": 3.0}
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


def _blocks(values: Sequence[float]) -> np.ndarray:
    """The values' medians over at most MAX_BLOCKS contiguous blocks of seconds."""
    array = np.asarray(values, dtype=float)
    if len(array) <= MAX_BLOCKS:
        return array
    return np.array([np.median(chunk) for chunk in np.array_split(array, MAX_BLOCKS)])


def change_interval(
    ours: Sequence[float], theirs: Sequence[float], seed: int = 0
) -> tuple[float, float] | None:
    """The CONFIDENCE interval of mean(ours) / mean(theirs) − 1, by block bootstrap. The mean
    of the seconds, not their median: a change in a part of the run (its second half, its
    slow minutes) moves it as it moves the whole-run percentile."""
    run, base = _blocks(ours), _blocks(theirs)
    if not len(run) or not len(base):
        return None
    rng = np.random.default_rng(seed)
    run_means = rng.choice(run, (BOOTSTRAP, len(run))).mean(axis=1)
    base_means = rng.choice(base, (BOOTSTRAP, len(base))).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = run_means / base_means - 1
    ratios = ratios[np.isfinite(ratios)]
    if not len(ratios):
        return None
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return float(low), float(high)


def practical_floor(sli: str, base_values: Sequence[float | None]) -> float:
    """The relative change that counts: the SLI's floor, or the baselines' own spread."""
    floor = FLOOR_BY_SLI.get(sli, MIN_CHANGE)
    known = [v for v in base_values if v is not None and v > 0]
    if len(known) >= 2:
        middle = statistics.median(known)
        spread = max(abs(v / middle - 1) for v in known)
        floor = max(floor, SPREAD_FACTOR * spread)
    return floor


def _latency(
    sli: str, endpoint: str, run: RunSeries, base: Sequence[RunSeries], tests: int = 1
) -> Comparison:
    current = run.whole.get(sli)
    base_values = [b.whole.get(sli) for b in base]
    known = [v for v in base_values if v is not None]
    baseline = statistics.median(known) if known else None
    ours = list(run.per_second.get(sli, ()))
    theirs = [v for b in base for v in b.per_second.get(sli, ())]
    floor = practical_floor(sli, base_values)
    min_delta = MIN_DELTA_MS_BY_SLI.get(sli, 1.0)
    method = (
        f"Mann-Whitney U on per-second {sli} ({len(ours)} s vs {len(theirs)} s), Cliff's δ, "
        f"{CONFIDENCE:.0%} block-bootstrap interval of the change, practical change ≥ "
        f"{floor:.0%}"
        + (" (the baselines' spread)" if floor > FLOOR_BY_SLI.get(sli, 0) else "")
        + f" and ≥ {min_delta:g} ms"
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
            threshold=floor,
        )
    test = mannwhitneyu(ours, theirs, alternative="two-sided")
    p_value = float(test.pvalue) if not math.isnan(test.pvalue) else 1.0
    delta = 2 * float(test.statistic) / (len(ours) * len(theirs)) - 1
    change = (current - baseline) / baseline if baseline else None
    interval = change_interval(ours, theirs)
    alpha = ALPHA / max(1, tests)
    verdict, watch = _decide(
        sli, current, baseline, floor, delta, interval, p_value, alpha, direction=delta
    )
    return Comparison(
        endpoint=endpoint,
        sli=sli,
        baseline=baseline,
        current=current,
        change=change,
        p_value=p_value,
        effect_size=delta,
        verdict=verdict,
        method=method + f", α {alpha:.2g} for {tests} latency tests",
        n_current=len(ours),
        n_baseline=len(theirs),
        interval=list(interval) if interval is not None else None,
        threshold=floor,
        watch=watch,
    )


def _decide(
    sli: str,
    current: float,
    baseline: float,
    floor: float,
    delta: float,
    interval: tuple[float, float] | Sequence[float] | None,
    p_value: float,
    alpha: float,
    *,
    direction: float,
    seconds_agree: bool = True,
) -> tuple[str, bool]:
    """(verdict, watch) from the four conditions of the module's docstring. ``direction``: the
    sign of the change the significance test saw (δ, or the difference of the shares of
    responses beyond the cut), which must agree with the whole-run figures and δ."""
    change = (current - baseline) / baseline if baseline else None
    practical = abs(current - baseline) >= MIN_DELTA_MS_BY_SLI.get(sli, 1.0) and (
        change is None or abs(change) >= floor
    )
    significant = p_value < alpha and seconds_agree and abs(delta) >= MIN_EFFECT
    slower = delta > 0 and direction > 0 and current > baseline
    faster = delta < 0 and direction < 0 and current < baseline
    beyond_noise = interval is not None and (
        (slower and interval[0] > 0) or (faster and interval[1] < 0)
    )
    if significant and (slower or faster):
        if practical and beyond_noise:
            return ("regression" if slower else "improvement"), False
        if change is not None and abs(change) >= floor / 2:
            return "unchanged", True  # there, but under the threshold or within the noise
    return "unchanged", False


def quantile_comparison(
    comparison: Comparison,
    run_above: tuple[int, int],
    base_above: tuple[int, int],
    tests: int,
    cut_ms: float,
    percentile: float,
) -> Comparison:
    """A latency comparison judged per second (``_latency``) judged again with the responses
    as the significance test: Mood's quantile test at ``cut_ms``, the SLI's ``percentile`` of
    the run's and the baselines' responses pooled (so when nothing changed every response is
    as likely as any other to be beyond it), Fisher's exact test, two-sided, at ALPHA /
    ``tests``. δ, the interval and the practical floor still decide with it."""
    (k, n), (k0, n0) = run_above, base_above
    c = comparison
    if (
        not n
        or not n0
        or c.current is None
        or c.baseline is None
        or c.effect_size is None
        or c.threshold is None
        or c.verdict == "insufficient_data"
    ):
        return comparison
    p_value = beyond_p(k, n, k0, n0, "two-sided")
    per_second_p = c.p_value if c.p_value is not None else 1.0
    share, base_share = k / n, k0 / n0
    alpha = ALPHA / max(1, tests)
    verdict, watch = _decide(
        c.sli,
        c.current,
        c.baseline,
        c.threshold,
        c.effect_size,
        c.interval,
        p_value,
        alpha,
        direction=share - base_share,
        seconds_agree=per_second_p < ALPHA,
    )
    return c.model_copy(
        update={
            "p_value": p_value,
            "verdict": verdict,
            "watch": watch,
            "method": f"Mood's quantile test on responses: {k}/{n} vs {k0}/{n0} slower than "
            f"the pooled p{percentile:g} ({cut_ms:.1f} ms), Fisher's exact test at α "
            f"{alpha:.2g} for {tests} latency tests; per-second {c.sli} ({c.n_current} s vs "
            f"{c.n_baseline} s): Mann-Whitney p {per_second_p:.2g} (< {ALPHA:g} needed), "
            f"Cliff's δ {c.effect_size:+.2f}, {CONFIDENCE:.0%} block-bootstrap interval of the "
            "change; "
            f"practical change ≥ {c.threshold:.0%} and ≥ "
            f"{MIN_DELTA_MS_BY_SLI.get(c.sli, 1.0):g} ms",
        }
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


def beyond_p(
    k: int, n: int, k0: int, n0: int, alternative: Literal["two-sided", "less", "greater"]
) -> float:
    """p of k/n against k0/n0 responses beyond a cut, by Fisher's exact test; two-sided as
    twice the smaller one-sided p (the doubling rule, a little conservative): scipy's
    two-sided sum over the table's support takes ~4 ms at 45,000 responses a side, the two
    one-sided tails ~0.5 ms, and an analysis makes ~80 of them."""
    table = np.array([[k, n - k], [k0, n0 - k0]])
    if alternative != "two-sided":
        return float(fisher_exact(table, alternative=alternative).pvalue)
    greater = float(fisher_exact(table, alternative="greater").pvalue)
    less = float(fisher_exact(table, alternative="less").pvalue)
    return min(1.0, 2 * min(greater, less))


TAIL_RATIO = 2.0  # the run's share of responses beyond the cut, against the baselines'
TAIL_QUANTILE = 99.0  # the cut: this percentile of the run's and baselines' responses pooled


def tail_comparison(
    comparison: Comparison,
    run_above: tuple[int, int],
    base_above: tuple[int, int],
    tests: int = 1,
    cut_ms: float | None = None,
) -> Comparison:
    """A p99 that had too few responses per second to be compared second by second, judged
    on the whole run instead with Mood's quantile test: how many of the run's responses, and
    how many of the baselines', were slower than the pooled p99 (``cut_ms``) — Fisher's exact
    test, one-sided for each direction. The cut comes from both samples together, so when
    nothing changed each response is as likely as any other to be beyond it and the test
    holds its α; a cut from the baselines alone would leave them ~1 % beyond by construction
    and the run more by chance. ``*_above``: (slower, responses). ``tests``: how many such
    tests the analysis makes (one per endpoint, often): each is held to ALPHA / tests
    (Bonferroni), or five endpoints of an unchanged system would raise a false alarm in one
    pair of twenty."""
    (k, n), (k0, n0) = run_above, base_above
    current, baseline = comparison.current, comparison.baseline
    if current is None or baseline is None or not n or not n0 or baseline <= 0:
        return comparison
    floor = comparison.threshold or FLOOR_BY_SLI["p99"]
    change = (current - baseline) / baseline
    slower = beyond_p(k, n, k0, n0, "greater")
    faster = beyond_p(k, n, k0, n0, "less")
    share, base_share = k / n, k0 / n0
    practical = abs(current - baseline) >= MIN_DELTA_MS_BY_SLI["p99"] and abs(change) >= floor
    alpha = ALPHA / max(1, tests)
    verdict: str = "unchanged"
    if practical and slower < alpha and share >= TAIL_RATIO * base_share and change > 0:
        verdict = "regression"
    elif practical and faster < alpha and base_share >= TAIL_RATIO * share and change < 0:
        verdict = "improvement"
    return comparison.model_copy(
        update={
            "change": change,
            "p_value": min(slower, faster),
            "effect_size": share - base_share,
            "verdict": verdict,
            "method": "too few responses per second for a per-second p99: Mood's quantile "
            "test, the responses slower than the pooled p99"
            + (f" ({cut_ms:.1f} ms)" if cut_ms is not None else "")
            + f", {k}/{n} vs {k0}/{n0} (Fisher's exact test; α "
            f"{alpha:.2g} for {tests} such tests), "
            f"practical change ≥ {floor:.0%} and ≥ {MIN_DELTA_MS_BY_SLI['p99']:g} ms",
            "n_current": n,
            "n_baseline": n0,
        }
    )


def judge_on_histograms(
    comparisons: Sequence[Comparison],
    sides: Mapping[int, tuple[Histogram, Sequence[Histogram]]],
) -> list[Comparison]:
    """The comparisons, each latency one with its run's and baselines' whole-run histograms
    in ``sides`` (by its index) judged again on the responses: a p99 with too few responses
    per second by the tail test, the others by Mood's quantile test at the pooled percentile;
    all of them one family of tests for the α. Without stored histograms (a side empty) the
    per-second verdict stands."""
    tests = len(sides)
    judged = list(comparisons)
    for index, (run_hist, base_hists) in sides.items():
        c = comparisons[index]
        if not run_hist.total or not base_hists or not all(h.total for h in base_hists):
            continue
        pooled = run_hist.copy()
        for h in base_hists:
            pooled.add(h)
        percentile = slis.PERCENTILES[c.sli]
        cut = pooled.percentile(percentile)
        if cut is None:
            continue
        run_above = (run_hist.above(cut), run_hist.total)
        base_above = (sum(h.above(cut) for h in base_hists), sum(h.total for h in base_hists))
        if c.verdict != "insufficient_data":
            judged[index] = quantile_comparison(c, run_above, base_above, tests, cut, percentile)
        elif c.sli == "p99":
            judged[index] = tail_comparison(c, run_above, base_above, tests, cut)
    return judged


def compare(
    run: Mapping[str, RunSeries], baselines: Sequence[Mapping[str, RunSeries]]
) -> list[Comparison]:
    """Every endpoint of ``run`` ('*' first) against the same endpoint in the baselines."""
    found: list[Comparison] = []
    tests = len(LATENCY_SLIS) * sum(any(e in b for b in baselines) for e in run)
    for endpoint in sorted(run, key=lambda name: (name != "*", name)):
        base = [b[endpoint] for b in baselines if endpoint in b]
        if not base:
            continue
        for sli in LATENCY_SLIS:
            found.append(_latency(sli, endpoint, run[endpoint], base, tests))
        found.append(_error_rate(endpoint, run[endpoint], base))
    return found
