"""Where does the system under test saturate? The knee of a run whose load changes.

The run's seconds are grouped by load level — VUs for a closed model, requests per second
offered for an arrival-rate (open) model — and each level gets the median of its seconds' p95,
its error rate and its throughput. The reference is the lowest quarter of the levels. The
latency knee is the lowest level from which p95 stays at or above ``KNEE_FACTOR`` × the
reference (and ``KNEE_MIN_DELTA_MS`` above it) at every higher level; past it, in a closed
model, a throughput that grows far less than the load marks a ceiling (a queue); the error
knee is the lowest level from which the error rate stays at or above ``ERROR_KNEE``. The
maximum sustainable throughput is the highest throughput of a level that meets the run's p95
and error-rate SLOs (their global objectives; p95 below the knee when there is no p95
objective).

All of it is read off per-second samples, so every figure can be checked against the charts.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field

KNEE_FACTOR = 1.5
KNEE_MIN_DELTA_MS = 5.0
ERROR_KNEE = 0.01
MIN_LEVELS = 4
RATE_BINS = 12
MIN_SECONDS_PER_LEVEL = 1


@dataclass(frozen=True)
class Second:
    vus: int
    requests: int
    failures: int
    p95_ms: float | None


class Level(BaseModel):
    load: float = Field(description="VUs, or requests/s offered, of this level")
    seconds: int
    rps: float
    p95_ms: float | None = Field(description="Median of the level's per-second p95")
    error_rate: float


class Saturation(BaseModel):
    load_metric: str = Field(description="vus (closed model) or rps (arrival rate)")
    reference_p95_ms: float | None
    knee_load: float | None = Field(description="Lowest load from which p95 broke away")
    knee_rps: float | None
    p95_before_knee_ms: float | None
    p95_after_knee_ms: float | None
    error_knee_load: float | None = Field(description="Lowest load from which errors stayed")
    max_sustainable_rps: float | None = Field(
        description="Highest throughput of a level within the p95 and error-rate objectives"
    )
    throughput_ceiling: bool = Field(
        description="Throughput stopped growing while the load kept rising (closed model)"
    )
    levels: list[Level]


def _levels(seconds: Sequence[Second], metric: str) -> list[Level]:
    if metric == "vus":
        keyed = [(float(s.vus), s) for s in seconds if s.vus > 0]
    else:
        top = max(s.requests for s in seconds)
        width = max(top / RATE_BINS, 1.0)
        keyed = [(round((s.requests // width) * width + width / 2, 1), s) for s in seconds]
    grouped: dict[float, list[Second]] = {}
    for load, second in keyed:
        grouped.setdefault(load, []).append(second)
    levels = []
    for load in sorted(grouped):
        group = grouped[load]
        if len(group) < MIN_SECONDS_PER_LEVEL:
            continue
        requests = sum(s.requests for s in group)
        p95s = [s.p95_ms for s in group if s.p95_ms is not None]
        levels.append(
            Level(
                load=load,
                seconds=len(group),
                rps=requests / len(group),
                p95_ms=statistics.median(p95s) if p95s else None,
                error_rate=(sum(s.failures for s in group) / requests) if requests else 0.0,
            )
        )
    return levels


def _first_sustained(flags: list[bool]) -> int | None:
    """Index of the first True from which every later flag is True too."""
    for index in range(len(flags)):
        if flags[index] and all(flags[index:]):
            return index
    return None


def detect(
    seconds: Sequence[Second],
    *,
    open_model: bool,
    p95_target_ms: float | None = None,
    error_target: float | None = None,
) -> Saturation | None:
    """The knee of a run whose load varied; ``None`` when the load hardly changed."""
    metric = "rps" if open_model else "vus"
    busy = [s for s in seconds if s.requests > 0]
    if len(busy) < MIN_LEVELS:
        return None
    levels = _levels(busy, metric)
    if len(levels) < MIN_LEVELS or levels[-1].load < 2 * max(levels[0].load, 1e-9):
        return None
    lowest = levels[: max(1, len(levels) // 4)]
    reference_values = [lv.p95_ms for lv in lowest if lv.p95_ms is not None]
    reference = statistics.median(reference_values) if reference_values else None
    knee = None
    if reference is not None:
        broke = [
            lv.p95_ms is not None
            and lv.p95_ms >= KNEE_FACTOR * reference
            and lv.p95_ms - reference >= KNEE_MIN_DELTA_MS
            for lv in levels
        ]
        knee = _first_sustained(broke)
    error_knee = _first_sustained([lv.error_rate >= ERROR_KNEE for lv in levels])

    def within(level: Level) -> bool:
        latency_ok = (
            level.p95_ms is not None and level.p95_ms < p95_target_ms
            if p95_target_ms is not None
            else knee is None or level.load < levels[knee].load
        )
        return latency_ok and level.error_rate < (
            error_target if error_target is not None else ERROR_KNEE
        )

    sustainable = [lv.rps for lv in levels if within(lv)]
    before = levels[knee - 1].p95_ms if knee else None
    ceiling = False
    if not open_model and knee is not None:
        # Closed model: past the knee more VUs mostly queue, so throughput grows far less
        # than the load does (flat, at a hard ceiling).
        after = levels[knee:]
        load_gain = after[-1].load / after[0].load
        rps_gain = after[-1].rps / after[0].rps if after[0].rps else 1.0
        ceiling = len(after) >= 2 and load_gain >= 1.5 and rps_gain - 1 <= 0.35 * (load_gain - 1)
    return Saturation(
        load_metric=metric,
        reference_p95_ms=reference,
        knee_load=levels[knee].load if knee is not None else None,
        knee_rps=levels[knee].rps if knee is not None else None,
        p95_before_knee_ms=before,
        p95_after_knee_ms=(
            statistics.median([lv.p95_ms for lv in levels[knee:] if lv.p95_ms is not None])
            if knee is not None
            else None
        ),
        error_knee_load=levels[error_knee].load if error_knee is not None else None,
        max_sustainable_rps=max(sustainable) if sustainable else None,
        throughput_ceiling=ceiling,
        levels=levels,
    )
