"""Retention: a finished run's per-second samples rolled up into per-minute ones.

A 30-minute run of 20 endpoints stores 1,800 per-second samples (each with every endpoint's
figures) and 3,780 ten-second histogram windows. Once a run has been finished for
``PERF_AGENT_SAMPLE_RETENTION_DAYS`` the worker replaces, per attempt:

- each minute of samples (``elapsed_s // 60``) with one sample: requests, failures and
  iterations summed, the peak VUs, the running totals and the system / generator readings of
  its last second, and its percentiles — over all requests and per endpoint — **from the
  minute's histogram windows merged**, so they are as exact as any stored percentile (within
  the layout's 0.5 %), not averages of per-second percentiles. ``span_s`` says how many
  seconds it stands for;
- each endpoint's histogram windows starting in the same minute with one window: counts
  added, so the run's whole-run percentiles and totals do not change at all.

Samples of the old cumulative kind (no ``total_requests``) are left as they are. Promoted
baselines keep their seconds (the repository's query skips them). The analysis reads a
rolled-up run's per-minute values where it read per-second ones; readers of windows see
minute windows.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import RunHistogram, RunSample
from app.models.base import utcnow
from app.runs.histogram import Histogram
from app.runs.repository import RunRepository

log = logging.getLogger(__name__)

MINUTE_S = 60
ALL = "*"


@dataclass
class _Window:
    first: RunHistogram
    end_s: int
    requests: int
    failures: int
    latency: Histogram


def _decoded(row: RunHistogram) -> Histogram:
    return Histogram.decode(
        row.counts, count=row.count, sum_ms=row.sum_ms, min_ms=row.min_ms, max_ms=row.max_ms
    )


def _minutes_of_windows(
    rows: Iterable[RunHistogram],
) -> dict[tuple[int, int, str], _Window]:
    """(attempt, minute, endpoint) → the windows starting in that minute, merged."""
    found: dict[tuple[int, int, str], _Window] = {}
    for row in rows:
        key = (row.attempt, row.start_s // MINUTE_S, row.endpoint)
        window = found.get(key)
        if window is None:
            found[key] = _Window(
                row, row.start_s + row.seconds, row.requests, row.failures, _decoded(row)
            )
            continue
        window.end_s = max(window.end_s, row.start_s + row.seconds)
        window.requests += row.requests
        window.failures += row.failures
        window.latency.add(_decoded(row))
    return found


def _latency(histogram: Histogram | None) -> dict[str, float | None]:
    figures = (histogram or Histogram()).stats()
    return {name: None if v is None else round(v, 3) for name, v in figures.items()}


def rolled_up_windows(
    windows: dict[tuple[int, int, str], _Window], run_id: uuid.UUID
) -> list[dict[str, Any]]:
    rows = []
    for window in windows.values():
        first, latency = window.first, window.latency
        record = latency.to_record()
        rows.append(
            {
                "run_id": run_id,
                "attempt": first.attempt,
                "endpoint": first.endpoint,
                "at": first.at,
                "start_s": first.start_s,
                "seconds": window.end_s - first.start_s,
                "requests": window.requests,
                "failures": window.failures,
                "count": record["count"],
                "sum_ms": record["sum_ms"],
                "min_ms": record["min_ms"],
                "max_ms": record["max_ms"],
                "counts": latency.encode(),
            }
        )
    return rows


def rolled_up_samples(
    samples: Sequence[RunSample],
    windows: dict[tuple[int, int, str], _Window],
    run_id: uuid.UUID,
) -> tuple[list[int], list[dict[str, Any]]]:
    """(ids of the per-second samples replaced, the per-minute rows replacing them)."""
    minutes: dict[tuple[int, int], list[RunSample]] = {}
    for sample in samples:
        data = sample.data or {}
        if data.get("total_requests") is None or data.get("span_s"):
            continue  # the old cumulative kind, or rolled up already
        attempt = int(data.get("attempt") or 1)
        minute = int(float(data.get("elapsed_s") or 0)) // MINUTE_S
        minutes.setdefault((attempt, minute), []).append(sample)
    replaced: list[int] = []
    rows: list[dict[str, Any]] = []
    for (attempt, minute), group in sorted(minutes.items()):
        replaced.extend(s.id for s in group)
        last = group[-1].data
        endpoints: dict[str, dict[str, Any]] = {}
        for sample in group:
            for name, figures in (sample.data.get("endpoints") or {}).items():
                into = endpoints.setdefault(name, {"requests": 0, "failures": 0})
                into["requests"] += int(figures.get("requests") or 0)
                into["failures"] += int(figures.get("failures") or 0)
        for name, into in endpoints.items():
            window = windows.get((attempt, minute, name))
            into["latency_ms"] = _latency(window.latency if window else None)
        overall = windows.get((attempt, minute, ALL))
        requests = sum(s.requests for s in group)
        failures = sum(s.failures for s in group)
        vus = max(s.vus for s in group)
        data: dict[str, Any] = {
            "elapsed_s": minute * MINUTE_S,
            "span_s": len(group),
            "vus": vus,
            "iterations": sum(int(s.data.get("iterations") or 0) for s in group),
            "requests": requests,
            "failures": failures,
            "latency_ms": _latency(overall.latency if overall else None),
            "total_requests": last.get("total_requests"),
            "total_failures": last.get("total_failures"),
            "vu_seconds": last.get("vu_seconds"),
            "endpoints": endpoints,
            "attempt": attempt,
        }
        for reading in ("system", "generator"):
            if last.get(reading) is not None:
                data[reading] = last[reading]
        rows.append(
            {
                "run_id": run_id,
                "at": group[0].at,
                "vus": vus,
                "requests": requests,
                "failures": failures,
                "data": data,
            }
        )
    return replaced, rows


async def roll_up(session: AsyncSession, run_id: uuid.UUID, *, now: datetime) -> None:
    """Replace one run's seconds with minutes, in the caller's transaction."""
    repo = RunRepository(session)
    stored = await repo.all_histograms(run_id)
    windows = _minutes_of_windows(stored)
    replaced, samples = rolled_up_samples(await repo.samples(run_id), windows, run_id)
    await repo.replace_seconds(
        run_id,
        samples=(replaced, samples),
        histograms=([w.id for w in stored], rolled_up_windows(windows, run_id)),
        now=now,
    )


async def roll_up_finished_runs(
    sessionmaker: async_sessionmaker[AsyncSession], retention_days: float, *, limit: int = 5
) -> list[uuid.UUID]:
    """Roll up to ``limit`` runs finished more than ``retention_days`` ago, one transaction
    each (a run is never left half rolled up); 0 days: never."""
    if retention_days <= 0:
        return []
    done: list[uuid.UUID] = []
    for _ in range(limit):
        now = utcnow()
        async with sessionmaker() as session, session.begin():
            taken = await RunRepository(session).take_to_roll_up(
                finished_before=now - timedelta(days=retention_days), limit=1
            )
            if not taken:
                break
            await roll_up(session, taken[0], now=now)
        done.append(taken[0])
        log.info("run %s: per-second samples rolled up into minutes", taken[0])
    return done
