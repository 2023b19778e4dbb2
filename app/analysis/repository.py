from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import exists, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.analysis.regression import PerSecond
from app.models import Analysis, Plan, RecommendationFeedback, Run, RunEvent, RunStatus
from app.runs import archive
from app.runs.repository import RunRepository


class Second(NamedTuple):
    """One second of a run, overall: load, latency, the target's process readings."""

    elapsed: int
    vus: int
    requests: int
    failures: int
    p50: float | None
    p95: float | None
    p99: float | None
    system: dict[str, Any] | None  # psutil readings of a local target, if sampled
    epoch: float  # when the second started
    generator: dict[str, Any] | None = None  # k6's CPU and the machine's (runs/system.py)


# One endpoint's seconds as columns: elapsed (whole seconds), requests, failures, p50, p95,
# p99 (ms; NaN where the second had no response).
EndpointTimeline = tuple[
    Sequence[int], Sequence[int], Sequence[int], Sequence[float], Sequence[float], Sequence[float]
]


class AnalysisRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, analysis: Analysis) -> Analysis:
        self.session.add(analysis)
        await self.session.flush()
        return analysis

    async def get(self, analysis_id: uuid.UUID) -> Analysis | None:
        return await self.session.get(Analysis, analysis_id)

    async def of_run(self, run_id: uuid.UUID, *, limit: int) -> list[tuple[Any, ...]]:
        """The run's analyses, newest first (on ``ix_analyses_run_created``), briefly."""
        query = (
            select(Analysis.id, Analysis.run_id, Analysis.verdict, Analysis.created_at)
            .where(Analysis.run_id == run_id)
            .order_by(Analysis.created_at.desc())
            .limit(limit)
        )
        return [tuple(row) for row in await self.session.execute(query)]

    async def feedback(
        self, analysis_id: uuid.UUID, recommendation_id: str
    ) -> RecommendationFeedback | None:
        return await self.session.scalar(
            select(RecommendationFeedback).where(
                RecommendationFeedback.analysis_id == analysis_id,
                RecommendationFeedback.recommendation_id == recommendation_id,
            )
        )

    async def add_feedback(self, feedback: RecommendationFeedback) -> RecommendationFeedback:
        self.session.add(feedback)
        await self.session.flush()
        return feedback

    async def feedback_counts(self) -> list[tuple[str, str, int]]:
        """(finding kind, verdict, count) over every recommendation's latest verdict."""
        rows = await self.session.execute(
            select(
                RecommendationFeedback.kind, RecommendationFeedback.verdict, func.count()
            ).group_by(RecommendationFeedback.kind, RecommendationFeedback.verdict)
        )
        return [(kind, verdict, count) for kind, verdict, count in rows]

    async def runs(self, run_ids: Sequence[uuid.UUID]) -> Sequence[Run]:
        return (await self.session.scalars(select(Run).where(Run.id.in_(run_ids)))).all()

    async def last_passing_runs(
        self, family_id: uuid.UUID, *, before: datetime, excluding: uuid.UUID, limit: int
    ) -> Sequence[Run]:
        """The plan family's newest succeeded runs, older than ``before``, that an analysis
        passed."""
        passed = exists().where(Analysis.run_id == Run.id, Analysis.verdict == "pass")
        query = (
            select(Run)
            .join(Plan, Plan.id == Run.plan_id)
            .where(
                Plan.family_id == family_id,
                Run.status == RunStatus.succeeded,
                Run.id != excluding,
                Run.created_at < before,
                # Rolled-up runs stay candidates: skipping them would reach for older runs (the
                # ones that kept their seconds); the analysis says when one is compared.
                passed,
            )
            .order_by(Run.created_at.desc())
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def per_second(
        self, run_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, dict[str, PerSecond]]:
        """Per run and endpoint ('*': all), each second's (requests, failures, p50, p95, p99)
        in order, of the run's latest attempt only. PostgreSQL takes the figures out of the
        stored samples, so only numbers cross the wire."""
        return await self._per_endpoint(run_ids, archive.endpoint_seconds, _PER_SECOND)

    async def endpoint_timelines(
        self, run_ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, dict[str, EndpointTimeline]]:
        """Per run and endpoint ('*': all), the seconds it had responses in: each one's whole
        elapsed seconds, requests, failures, p50, p95, p99 (NaN where none), in order, of the
        latest attempt (``per_second`` with the time axis: an endpoint skips seconds)."""
        return await self._per_endpoint(run_ids, archive.endpoint_timelines, _TIMELINES)

    async def _per_endpoint(
        self, run_ids: Sequence[uuid.UUID], unpack: Callable[[bytes], Any], query: str
    ) -> dict[uuid.UUID, dict[str, Any]]:
        """Per run and endpoint, from its archive (``unpack``) when packed, else its rows
        (``query``, one row per endpoint: run id, endpoint, then the columns)."""
        found: dict[uuid.UUID, dict[str, Any]] = {run_id: {} for run_id in run_ids}
        packed = await RunRepository(self.session).archives(run_ids)
        for run_id, blob in packed.items():
            found[run_id] = dict(await asyncio.to_thread(unpack, blob.samples))
        rows_of = [run_id for run_id in run_ids if run_id not in packed]
        rows = await self.session.execute(text(query), {"runs": rows_of})
        for run_id, endpoint, *columns in rows:
            found[run_id][endpoint] = tuple(columns)
        return found

    async def k6_warnings(self, run_id: uuid.UUID) -> dict[str, int]:
        """What k6 warned about during the run (message -> times), over its attempts."""
        rows = await self.session.scalars(
            select(RunEvent.data).where(RunEvent.run_id == run_id, RunEvent.kind == "k6_warnings")
        )
        found: dict[str, int] = {}
        for data in rows:
            for message, count in ((data or {}).get("warnings") or {}).items():
                found[message] = found.get(message, 0) + int(count)
        return found

    async def profile(self, run_id: uuid.UUID) -> dict[str, Any] | None:
        """The run's latest profile (its last attempt's), as the worker recorded it."""
        data: dict[str, Any] | None = await self.session.scalar(
            select(RunEvent.data)
            .where(RunEvent.run_id == run_id, RunEvent.kind == "profile")
            .order_by(RunEvent.at.desc(), RunEvent.id.desc())
            .limit(1)
        )
        return data

    async def seconds(self, run_id: uuid.UUID) -> list[Second]:
        """The run's seconds in order, of its latest attempt."""
        packed = await RunRepository(self.session).archive_of(run_id)
        if packed is not None:
            rows = await asyncio.to_thread(archive.overall_seconds, packed.samples)
            return [Second(*row) for row in rows]
        found = await self.session.execute(text(_SECONDS), {"run": run_id})
        return [Second(*row) for row in found]


# The latest attempt's per-second samples (older samples, cumulative, are left out, and so
# are the per-minute ones retention made: they are not seconds — app/runs/retention.py).
_SECONDS = """
SELECT floor(coalesce((data->>'elapsed_s')::float8, 0))::int,
       coalesce((data->>'vus')::int, vus), requests, failures,
       (data->'latency_ms'->>'p50')::float8, (data->'latency_ms'->>'p95')::float8,
       (data->'latency_ms'->>'p99')::float8, data->'system', extract(epoch FROM at)::float8,
       data->'generator'
FROM run_samples
WHERE run_id = :run
  AND data->>'total_requests' IS NOT NULL
  AND NOT data ? 'span_s'
  AND coalesce((data->>'attempt')::int, 1) = (
      SELECT max(coalesce((data->>'attempt')::int, 1)) FROM run_samples WHERE run_id = :run)
ORDER BY at, id
"""

# Each sample's overall figures and every endpoint's, as rows; the latest attempt's only.
_PER_SECOND = """
WITH samples AS (
    SELECT s.run_id, s.at, s.id, s.data,
           coalesce((s.data->>'attempt')::int, 1) AS attempt,
           max(coalesce((s.data->>'attempt')::int, 1)) OVER (PARTITION BY s.run_id) AS latest
    FROM run_samples s
    WHERE s.run_id = ANY(:runs) AND s.data->>'total_requests' IS NOT NULL
      AND NOT s.data ? 'span_s'
), figures AS (
    SELECT run_id, at, id, '*' AS endpoint, data AS f FROM samples WHERE attempt = latest
    UNION ALL
    SELECT run_id, at, id, e.key, e.value
    FROM samples CROSS JOIN LATERAL jsonb_each(coalesce(data->'endpoints', '{}'::jsonb)) e
    WHERE attempt = latest
)
-- One row per run and endpoint, its seconds as arrays: 42 rows cross the wire for a
-- 20-endpoint pair, not 75,000.
SELECT run_id, endpoint,
       array_agg(coalesce((f->>'requests')::int, 0) ORDER BY at, id),
       array_agg(coalesce((f->>'failures')::int, 0) ORDER BY at, id),
       array_agg(coalesce((f->'latency_ms'->>'p50')::float8, 'NaN') ORDER BY at, id),
       array_agg(coalesce((f->'latency_ms'->>'p95')::float8, 'NaN') ORDER BY at, id),
       array_agg(coalesce((f->'latency_ms'->>'p99')::float8, 'NaN') ORDER BY at, id)
FROM figures
GROUP BY run_id, endpoint
"""

# _PER_SECOND with each second's whole elapsed seconds first (the HTML report's time axis).
_TIMELINES = """
WITH samples AS (
    SELECT s.run_id, s.at, s.id, s.data,
           floor(coalesce((s.data->>'elapsed_s')::float8, 0))::int AS elapsed,
           coalesce((s.data->>'attempt')::int, 1) AS attempt,
           max(coalesce((s.data->>'attempt')::int, 1)) OVER (PARTITION BY s.run_id) AS latest
    FROM run_samples s
    WHERE s.run_id = ANY(:runs) AND s.data->>'total_requests' IS NOT NULL
      AND NOT s.data ? 'span_s'
), figures AS (
    SELECT run_id, at, id, elapsed, '*' AS endpoint, data AS f FROM samples WHERE attempt = latest
    UNION ALL
    SELECT run_id, at, id, elapsed, e.key, e.value
    FROM samples CROSS JOIN LATERAL jsonb_each(coalesce(data->'endpoints', '{}'::jsonb)) e
    WHERE attempt = latest
)
SELECT run_id, endpoint,
       array_agg(elapsed ORDER BY at, id),
       array_agg(coalesce((f->>'requests')::int, 0) ORDER BY at, id),
       array_agg(coalesce((f->>'failures')::int, 0) ORDER BY at, id),
       array_agg(coalesce((f->'latency_ms'->>'p50')::float8, 'NaN') ORDER BY at, id),
       array_agg(coalesce((f->'latency_ms'->>'p95')::float8, 'NaN') ORDER BY at, id),
       array_agg(coalesce((f->'latency_ms'->>'p99')::float8, 'NaN') ORDER BY at, id)
FROM figures
GROUP BY run_id, endpoint
"""
