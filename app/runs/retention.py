"""Retention: a finished run's per-second samples rolled up into per-minute ones.

A 30-minute run of 20 endpoints stores 1,800 per-second samples (each with every endpoint's
figures: ~2.4 MB) and 3,780 ten-second histogram windows (~0.9 MB). Once a run has been
finished for ``PERF_AGENT_SAMPLE_RETENTION_DAYS`` the worker replaces, per attempt:

- each endpoint's histogram windows **starting** in the same minute of the test with one
  window: counts added, so the run's whole-run percentiles and totals do not change at all
  (a window longer than a minute stays one window);
- the per-second samples that those windows cover (a window spans ``[start_s, start_s +
  seconds)`` of the attempt's seconds, the same seconds the live path emitted as samples) with
  one sample: requests, failures and iterations summed, the peak VUs, the running totals and
  system / generator readings of its last second, and its percentiles — over all requests and
  per endpoint — **from the merged windows**, so they are as exact as any stored percentile
  (within the layout's 0.5 %), not averages of per-second percentiles. ``span_s`` says how
  many seconds it stands for.

When the windows do not cover the samples — a second no window spans, an endpoint with
responses in a minute but no window for it (a window that failed to store, a live stream that
broke) — the run keeps its seconds and ``samples_kept_reason`` says why; so does a failure, so
one bad run never blocks the others. Samples of the old cumulative kind (no
``total_requests``) are left as they are. Promoted baselines keep their seconds (the
repository's query skips them, and a rolled-up run cannot be promoted). The analysis leaves
per-minute samples out of its per-second tests and charts, and says so.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import RunArchive, RunHistogram
from app.models.base import utcnow
from app.runs import archive
from app.runs.histogram import Histogram
from app.runs.repository import ARCHIVE_FAILED, RunRepository, SampleRow

log = logging.getLogger(__name__)

MINUTE_S = 60
ALL = "*"


class KeptSeconds(Exception):
    """The run's windows do not cover its seconds: rolling them up would lose figures."""


@dataclass
class _Window:
    first: RunHistogram | archive.WindowRow
    end_s: int
    requests: int
    failures: int
    latency: Histogram


# (attempt, minute of the window's start) → endpoint → the windows starting then, merged.
Minutes = dict[tuple[int, int], dict[str, _Window]]


def merged_minutes(rows: Sequence[RunHistogram | archive.WindowRow]) -> Minutes:
    found: Minutes = {}
    for row in rows:
        by_endpoint = found.setdefault((row.attempt, row.start_s // MINUTE_S), {})
        window = by_endpoint.get(row.endpoint)
        if window is None:
            window = by_endpoint[row.endpoint] = _Window(
                row, row.start_s + row.seconds, 0, 0, Histogram()
            )
        window.end_s = max(window.end_s, row.start_s + row.seconds)
        window.requests += row.requests
        window.failures += row.failures
        window.latency.add_encoded(
            row.counts, count=row.count, sum_ms=row.sum_ms, min_ms=row.min_ms, max_ms=row.max_ms
        )
    return found


def rolled_up_windows(minutes: Minutes, run_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = []
    for by_endpoint in minutes.values():
        for window in by_endpoint.values():
            first, record = window.first, window.latency.to_record()
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
                    **record,
                    "counts": window.latency.encode(),
                }
            )
    return rows


def _latency(histogram: Histogram) -> dict[str, float | None]:
    return {name: None if v is None else round(v, 3) for name, v in histogram.stats().items()}


def _spans(
    rows: Sequence[RunHistogram | archive.WindowRow],
) -> dict[int, tuple[list[int], list[tuple[int, int]]]]:
    """Per attempt: the stored all-requests windows as sorted (start, end) spans, and their
    starts for bisecting — the windows as stored, so a missing one leaves a gap."""
    spans: dict[int, list[tuple[int, int]]] = {}
    for row in rows:
        if row.endpoint == ALL:
            spans.setdefault(row.attempt, []).append((row.start_s, row.start_s + row.seconds))
    return {
        attempt: ([s for s, _ in sorted(found)], sorted(found)) for attempt, found in spans.items()
    }


def rolled_up_samples(
    samples: Sequence[SampleRow],
    stored: Sequence[RunHistogram | archive.WindowRow],
    minutes: Minutes,
    run_id: uuid.UUID,
) -> tuple[list[int], list[dict[str, Any]]]:
    """(ids of the per-second samples replaced, the per-minute rows replacing them); raises
    KeptSeconds when the stored windows do not cover them."""
    spans = _spans(stored)
    groups: dict[tuple[int, int], list[SampleRow]] = {}
    for sample in samples:
        figures = sample.data or {}
        if figures.get("total_requests") is None or figures.get("span_s"):
            continue  # the old cumulative kind, or rolled up already
        attempt = int(figures.get("attempt") or 1)
        second = int(float(figures.get("elapsed_s") or 0))
        starts, found = spans.get(attempt, ([], []))
        at = bisect.bisect_right(starts, second) - 1
        if at < 0 or not found[at][0] <= second < found[at][1]:
            raise KeptSeconds(f"second {second} of attempt {attempt} is in no histogram window")
        groups.setdefault((attempt, found[at][0] // MINUTE_S), []).append(sample)
    replaced: list[int] = []
    rows: list[dict[str, Any]] = []
    for (attempt, minute), group in sorted(groups.items()):
        windows = minutes[(attempt, minute)]
        replaced.extend(s.id for s in group)
        endpoints: dict[str, dict[str, Any]] = {}
        for sample in group:
            for name, figures in (sample.data.get("endpoints") or {}).items():
                into = endpoints.setdefault(name, {"requests": 0, "failures": 0})
                into["requests"] += int(figures.get("requests") or 0)
                into["failures"] += int(figures.get("failures") or 0)
        for name, into in endpoints.items():
            window = windows.get(name)
            if window is None and into["requests"] > into["failures"]:
                raise KeptSeconds(
                    f"endpoint {name!r} answered in minute {minute} of attempt {attempt}, "
                    "but no histogram window of it was stored"
                )
            into["latency_ms"] = _latency(window.latency if window else Histogram())
        last = group[-1].data
        vus = max(s.vus for s in group)
        requests = sum(s.requests for s in group)
        failures = sum(s.failures for s in group)
        data: dict[str, Any] = {
            "elapsed_s": int(float(group[0].data.get("elapsed_s") or 0)),
            "span_s": len(group),
            "vus": vus,
            "iterations": sum(int(s.data.get("iterations") or 0) for s in group),
            "requests": requests,
            "failures": failures,
            "latency_ms": _latency(windows[ALL].latency),
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
                "id": group[0].id,  # what a packed run keeps; a row gets a new one
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
    """Replace one run's seconds with minutes, in the caller's transaction (KeptSeconds when
    they cannot be)."""
    repo = RunRepository(session)
    packed = await repo.archive_of(run_id)
    if packed is not None:
        await _roll_up_packed(repo, packed, now=now)
        return
    stored = await repo.all_histograms(run_id)
    minutes = merged_minutes(stored)
    replaced, samples = rolled_up_samples(await repo.sample_rows(run_id), stored, minutes, run_id)
    for row in samples:
        del row["id"]  # a new row: the database numbers it
    await repo.replace_seconds(
        run_id, samples=(replaced, samples), windows=rolled_up_windows(minutes, run_id), now=now
    )


async def _roll_up_packed(repo: RunRepository, packed: RunArchive, *, now: datetime) -> None:
    """The same, inside a packed run's archive: unpacked, rolled up, packed again."""
    samples = await asyncio.to_thread(archive.unpack_samples, packed.samples)
    stored = await asyncio.to_thread(archive.unpack_windows, packed.windows)
    minutes = merged_minutes(stored)
    replaced, rows = rolled_up_samples(samples, stored, minutes, packed.run_id)
    gone = set(replaced)
    kept = [s for s in samples if s.id not in gone]
    minute_rows = [
        archive.SampleRow(r["id"], r["at"], r["vus"], r["requests"], r["failures"], r["data"])
        for r in rows
    ]
    windows = [
        archive.WindowRow(**{k: v for k, v in w.items() if k != "run_id"})
        for w in rolled_up_windows(minutes, packed.run_id)
    ]
    every = sorted([*kept, *minute_rows], key=lambda s: (s.at, s.id))
    packed.samples = await asyncio.to_thread(archive.pack_samples, every)
    packed.windows = await asyncio.to_thread(archive.pack_windows, windows)
    await repo.mark_rolled_up(packed.run_id, now=now)


async def roll_up_finished_runs(
    sessionmaker: async_sessionmaker[AsyncSession], retention_days: float, *, limit: int = 1
) -> list[uuid.UUID]:
    """Handle up to ``limit`` runs finished more than ``retention_days`` ago, one transaction
    each (a run is never left half rolled up); 0 days: never. The runs rolled up."""
    if retention_days <= 0:
        return []
    done: list[uuid.UUID] = []
    for _ in range(limit):
        now = utcnow()
        reason: str | None = None
        taken: uuid.UUID | None = None
        try:
            async with sessionmaker() as session, session.begin():
                taken = await RunRepository(session).take_to_roll_up(
                    finished_before=now - timedelta(days=retention_days)
                )
                if taken is None:
                    break
                try:
                    async with session.begin_nested():
                        await roll_up(session, taken, now=now)
                except KeptSeconds as exc:
                    reason = str(exc)
                    await RunRepository(session).keep_seconds(taken, reason)
        except Exception as exc:
            if taken is None:
                raise  # the queue itself could not be read: the worker's loop logs it
            # Marked in a transaction of its own, so the run does not block the queue.
            log.exception("run %s: the retention job failed", taken)
            reason = f"the roll-up failed: {exc!r}"[:500]
            async with sessionmaker() as session, session.begin():
                await RunRepository(session).keep_seconds(taken, reason)
        if reason is None:
            done.append(taken)
            log.info("run %s: per-second samples rolled up into minutes", taken)
        else:
            log.warning("run %s: kept its per-second samples: %s", taken, reason)
    return done


async def archive_finished_runs(
    sessionmaker: async_sessionmaker[AsyncSession], after_s: float, *, limit: int = 3
) -> list[uuid.UUID]:
    """Pack up to ``limit`` runs finished more than ``after_s`` ago (app/runs/archive.py), one
    transaction each; 0 s: never. The packing itself runs in a thread: it is ~0.7 s of CPU
    for a 30-minute, 20-endpoint run, and this loop also reads k6's stream. A run that cannot
    be packed keeps its rows, with an ``archive_failed`` event that takes it off the queue."""
    if after_s <= 0:
        return []
    done: list[uuid.UUID] = []
    for _ in range(limit):
        taken: uuid.UUID | None = None
        try:
            async with sessionmaker() as session, session.begin():
                repo = RunRepository(session)
                before = utcnow() - timedelta(seconds=after_s)
                taken = await repo.take_to_archive(finished_before=before)
                if taken is None:
                    break
                samples = await repo.sample_rows(taken)
                stored = await repo.all_histograms(taken)
                packed_samples = await asyncio.to_thread(archive.pack_samples, samples)
                packed_windows = await asyncio.to_thread(archive.pack_windows, stored)
                await repo.store_archive(
                    taken,
                    samples=packed_samples,
                    windows=packed_windows,
                    sample_ids=[s.id for s in samples],
                    window_ids=[w.id for w in stored],
                )
        except Exception as exc:
            if taken is None:
                raise  # the queue itself could not be read: the worker's loop logs it
            log.exception("run %s: could not be packed; it keeps its rows", taken)
            async with sessionmaker() as session, session.begin():
                await RunRepository(session).add_event(
                    taken, ARCHIVE_FAILED, f"could not be packed: {exc!r}"[:500]
                )
            continue
        done.append(taken)
    return done
