"""A plan's history: its own runs and imported past figures, as time series per endpoint and SLI.

Export and import share one JSON shape (``HistoryDocument``), so history kept by another tool
can be brought in and detection works from the first run. Two detectors use it:

- ``compare_to_history``: with no baseline run, the run's whole-run value against the past
  values' median, in robust standard deviations (1.4826 × MAD). A regression needs a robust z
  of at least ``Z`` *and* the practical change of ``app.analysis.regression``.
- ``shifts``: change points over the newest ``MAX_POINTS_FOR_SHIFTS`` points (exact PELT
  with an L2 cost, ``changepoints.pelt_l2``, the same optimum as ``ruptures``' in a fiftieth
  of the time; a BIC-like penalty scaled by the noise of the series), which tell when a
  metric moved for good.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from app.analysis import regression
from app.analysis.schemas import Comparison
from app.baselines.changepoints import pelt_l2
from app.core import slis

SLI_COLUMNS = slis.HISTORY
COMPARED = ("p50", "p95", "p99", "error_rate")
# Watched for lasting shifts over the plan's runs.
SHIFTED = ("p95", "error_rate")
Z = 3.0
MIN_POINTS = 5
MIN_POINTS_FOR_SHIFTS = 8
MIN_SEGMENT = 3
# PELT's cost grows about quadratically with the points: the newest ones are what matters.
MAX_POINTS_FOR_SHIFTS = 200

Series = Mapping[tuple[str, str], Sequence[tuple[datetime, float]]]


def unit_of(sli: str) -> str:
    return {"error_rate": "fraction", "throughput": "req/s"}.get(slis.BY_NAME[sli].kind, "ms")


def _robust(values: Sequence[float]) -> tuple[float, float]:
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    # A perfectly steady history still has some noise: never divide by ~0.
    scale = max(1.4826 * mad, 0.01 * abs(median), 1e-9)
    return median, scale


def compare_to_history(
    current: Mapping[str, Mapping[str, float | None]], past: Series
) -> list[Comparison]:
    """Each endpoint's SLIs (``current[endpoint][sli]``) against its past values."""
    found = []
    for endpoint in sorted(current, key=lambda name: (name != "*", name)):
        for sli in COMPARED:
            value = current[endpoint].get(sli)
            history = [v for _, v in past.get((endpoint, sli), ())]
            method = f"robust z against {len(history)} past values (median, 1.4826 × MAD)"
            if value is None or len(history) < MIN_POINTS:
                found.append(
                    Comparison(
                        endpoint=endpoint,
                        sli=sli,
                        baseline=None,
                        current=value,
                        change=None,
                        p_value=None,
                        effect_size=None,
                        verdict="insufficient_data",
                        method=method,
                        n_current=1,
                        n_baseline=len(history),
                    )
                )
                continue
            median, scale = _robust(history)
            z = (value - median) / scale
            change = (value - median) / median if median else (math.inf if value else 0.0)
            if sli == "error_rate":
                practical = abs(value - median) >= regression.MIN_ERROR_RATE_DELTA
            else:
                practical = (
                    abs(change) >= regression.MIN_CHANGE_BY_SLI[sli]
                    and abs(value - median) >= regression.HISTORY_MIN_DELTA_MS_BY_SLI[sli]
                )
            verdict = "unchanged"
            if practical and z >= Z:
                verdict = "regression"
            elif practical and z <= -Z:
                verdict = "improvement"
            found.append(
                Comparison(
                    endpoint=endpoint,
                    sli=sli,
                    baseline=median,
                    current=value,
                    change=change if math.isfinite(change) else None,
                    p_value=None,
                    effect_size=z,
                    verdict=verdict,
                    method=method,
                    n_current=1,
                    n_baseline=len(history),
                )
            )
    return found


def _change(values: np.ndarray, start: int, end: int, after_end: int) -> float | None:
    before = float(np.median(values[start:end]))
    after = float(np.median(values[end:after_end]))
    return (after - before) / before if before else None


def _lasting(values: np.ndarray, breaks: list[int]) -> list[int]:
    """PELT's segment ends without the breaks that change the median by less than
    ``MIN_CHANGE``, each merged into its neighbours (smallest first), so a change's before and
    after are the whole stretches between changes (a noisy plateau split in two is one)."""
    bounds = [0, *breaks]
    while len(bounds) > 2:
        changes = [
            (abs(change), i)
            for i in range(1, len(bounds) - 1)
            if (change := _change(values, bounds[i - 1], bounds[i], bounds[i + 1])) is not None
        ]
        small = min((c for c in changes if c[0] < regression.MIN_CHANGE), default=None)
        if small is None:
            break
        del bounds[small[1]]
    return bounds[1:]


def shifts(series: Series, slis: Sequence[str] = SHIFTED) -> list[dict[str, Any]]:
    """Lasting shifts in each series: when, and the medians before and after."""
    found = []
    for (endpoint, sli), points in sorted(series.items()):
        if sli not in slis or len(points) < MIN_POINTS_FOR_SHIFTS:
            continue
        ordered = sorted(points)[-MAX_POINTS_FOR_SHIFTS:]
        values = np.array([v for _, v in ordered], dtype=float)
        noise = np.median(np.abs(np.diff(values))) / 0.6745 / math.sqrt(2)
        sigma = max(float(noise), 0.01 * float(np.median(np.abs(values))), 1e-9)
        penalty = 3 * math.log(len(values)) * sigma**2
        breaks = _lasting(values, pelt_l2(values, penalty=penalty, min_size=MIN_SEGMENT))
        bounds = [0, *breaks]
        for start, end, after_end in zip(bounds, bounds[1:], bounds[2:], strict=False):
            before = float(np.median(values[start:end]))
            after = float(np.median(values[end:after_end]))
            found.append(
                {
                    "endpoint": endpoint,
                    "sli": sli,
                    "at": ordered[end][0].isoformat(),
                    "before": before,
                    "after": after,
                    "change": (after - before) / before if before else None,
                    "points_before": end - start,
                    "points_after": after_end - end,
                }
            )
    return found
