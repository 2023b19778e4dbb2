from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import pagination
from app.models import (
    Analysis,
    Baseline,
    Plan,
    Run,
    RunArchive,
    RunEvent,
    RunHistogram,
    RunResult,
    RunSample,
    RunStatus,
)
from app.runs import archive
from app.runs.archive import SampleRow, WindowRow
from app.runs.histogram import Histogram

ARCHIVE_FAILED = "archive_failed"  # the run event that takes a run out of the packing queue

# Rows per statement when replacing a run's seconds: one bound parameter per id, and
# PostgreSQL's protocol allows 65,535 (a 24-hour run has 86,400 seconds).
DELETE_CHUNK = 5_000
# Queued runs a claim considers, in turn order: beyond them, every target was full anyway.
CLAIM_CANDIDATES = 50
# The first key of the per-target advisory locks (the second is the host's hashtext).
TARGET_LOCK_SPACE = 0x7061_4754


SUMMARY_COLUMNS = (
    Run.id,
    Run.plan_id,
    Run.plan_version,
    Run.status,
    Run.created_at,
    Run.started_at,
    Run.finished_at,
    Run.test_duration_s,
    Run.error,
)


@dataclass(frozen=True)
class RunRow:
    """A run as its list shows it: no script, results per endpoint, events or samples."""

    id: uuid.UUID
    plan_id: uuid.UUID
    plan_version: int
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    test_duration_s: float | None
    error: str | None
    requests: int | None
    rps: float | None
    p95_ms: float | None
    error_rate: float | None
    verdict: str | None


class RunRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, run: Run) -> Run:
        self.session.add(run)
        await self.session.flush()
        return run

    async def get(self, run_id: uuid.UUID, *, for_update: bool = False) -> Run | None:
        return await self.session.get(Run, run_id, with_for_update=for_update)

    async def page(
        self,
        *,
        plan_id: uuid.UUID | None,
        status: str | None,
        cursor: str | None,
        limit: int,
        environment: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Sequence[RunRow]:
        query = self.page_query(
            plan_id=plan_id,
            status=status,
            cursor=cursor,
            limit=limit,
            environment=environment,
            since=since,
            until=until,
        )
        return [RunRow(**row._mapping) for row in await self.session.execute(query)]

    @staticmethod
    def page_query(
        *,
        plan_id: uuid.UUID | None,
        status: str | None,
        cursor: str | None,
        limit: int,
        environment: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Select[Any]:
        """One page of runs, newest first, as summaries: one query however many runs there
        are — the all-requests figures joined, the newest analysis' verdict a correlated
        lookup on ``ix_analyses_run_created`` — served by an index for every filter."""
        verdict = (
            select(Analysis.verdict)
            .where(Analysis.run_id == Run.id)
            .order_by(Analysis.created_at.desc())
            .limit(1)
            .correlate(Run)
            .scalar_subquery()
        )
        query = (
            select(
                *SUMMARY_COLUMNS,
                RunResult.requests,
                RunResult.rps,
                RunResult.p95_ms,
                RunResult.error_rate,
                verdict.label("verdict"),
            )
            .outerjoin(
                RunResult, (RunResult.run_id == Run.id) & (RunResult.endpoint == RunResult.ALL)
            )
            .order_by(Run.created_at.desc(), Run.id.desc())
            .limit(limit + 1)
        )
        if plan_id is not None:
            query = query.where(Run.plan_id == plan_id)
        if status is not None:
            query = query.where(Run.status == status)
        if since is not None:
            query = query.where(Run.created_at >= since)
        if until is not None:
            query = query.where(Run.created_at < until)
        if environment is not None:
            # The plan's target.environment, "staging" when the plan does not say (PlanSpec).
            planned = func.coalesce(Plan.spec["target"]["environment"].astext, "staging")
            query = query.join(Plan, Plan.id == Run.plan_id).where(planned == environment)
        after = pagination.seek(Run.created_at, Run.id, cursor)
        if after is not None:
            query = query.where(after)
        return cast(Select[Any], query)

    async def claim_next(
        self, *, worker_id: str, now: datetime, per_target: int | None = None
    ) -> uuid.UUID | None:
        """Atomically move the next queued run to running for this worker.

        Next, fairly between plans: a plan's k-th queued run waits behind every plan's
        earlier turns, and a plan's running runs count as turns taken (so one pipeline's
        twenty runs do not hold back another plan's one); oldest first among equals. With
        ``per_target``, a run whose target host already has that many running is passed over.

        ``FOR UPDATE SKIP LOCKED`` lets any number of workers poll the same table: a row
        another worker is claiming is skipped, never waited for or claimed twice. The count of
        a host's running runs and the claim are made under a transaction-scoped advisory lock
        on the host, so two workers cannot both take its last slot.
        """
        busy = (
            select(Run.plan_id, func.count().label("running"))
            .where(Run.status == RunStatus.running)
            .group_by(Run.plan_id)
            .subquery()
        )
        turn = func.row_number().over(partition_by=Run.plan_id, order_by=(Run.created_at, Run.id))
        queued = (
            select(
                Run.id,
                Run.target_host,
                Run.created_at,
                (turn + func.coalesce(busy.c.running, 0)).label("turn"),
            )
            .outerjoin(busy, busy.c.plan_id == Run.plan_id)
            .where(Run.status == RunStatus.queued)
            .subquery()
        )
        candidates = (
            await self.session.execute(
                select(queued.c.id, queued.c.target_host)
                .order_by(queued.c.turn, queued.c.created_at, queued.c.id)
                .limit(CLAIM_CANDIDATES)
            )
        ).all()
        full: set[str] = set()
        for run_id, host in candidates:
            if per_target is not None and host is not None:
                if host in full or not await self._target_has_room(host, per_target):
                    full.add(host)
                    continue
            mine = await self.session.scalar(
                select(Run.id)
                .where(Run.id == run_id, Run.status == RunStatus.queued)
                .with_for_update(skip_locked=True)
            )
            if mine is None:
                continue  # another worker is claiming it, or has
            claimed: uuid.UUID | None = await self.session.scalar(
                update(Run)
                .where(Run.id == run_id, Run.status == RunStatus.queued)
                .values(
                    status=RunStatus.running,
                    worker_id=worker_id,
                    started_at=now,
                    heartbeat_at=now,
                    attempts=Run.attempts + 1,
                )
                .returning(Run.id)
            )
            if claimed is not None:
                return claimed
        return None

    async def running_on(self, host: str | None) -> int:
        """Runs loading ``host`` now (through ``ix_runs_running_target``)."""
        if host is None:
            return 0
        found = await self.session.scalar(
            select(func.count())
            .select_from(Run)
            .where(Run.status == RunStatus.running, Run.target_host == host)
        )
        return int(found or 0)

    async def _target_has_room(self, host: str, per_target: int) -> bool:
        """Whether ``host`` has fewer than ``per_target`` running runs, holding its advisory
        lock until this transaction ends; a host another claimer holds has no room now."""
        locked = await self.session.scalar(
            select(func.pg_try_advisory_xact_lock(TARGET_LOCK_SPACE, func.hashtext(host)))
        )
        if not locked:
            return False
        return await self.running_on(host) < per_target

    async def heartbeat(self, run_id: uuid.UUID, *, worker_id: str, now: datetime) -> Run | None:
        """Refresh a running run's heartbeat; ``None`` if this worker no longer owns it."""
        run: Run | None = await self.session.scalar(
            update(Run)
            .where(Run.id == run_id, Run.status == RunStatus.running, Run.worker_id == worker_id)
            .values(heartbeat_at=now)
            .returning(Run)
        )
        return run

    async def take_stale(self, *, cutoff: datetime, limit: int = 20) -> Sequence[Run]:
        """Running runs whose worker stopped heartbeating, locked for this transaction."""
        query = (
            select(Run)
            .where(Run.status == RunStatus.running, Run.heartbeat_at < cutoff)
            .order_by(Run.heartbeat_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return (await self.session.scalars(query)).all()

    async def add_event(
        self, run_id: uuid.UUID, kind: str, message: str, data: dict[str, Any] | None = None
    ) -> None:
        self.session.add(RunEvent(run_id=run_id, kind=kind, message=message, data=data))
        await self.session.flush()

    async def events(self, run_id: uuid.UUID) -> Sequence[RunEvent]:
        query = select(RunEvent).where(RunEvent.run_id == run_id).order_by(RunEvent.id)
        return (await self.session.scalars(query)).all()

    async def results(self, run_id: uuid.UUID) -> Sequence[RunResult]:
        query = select(RunResult).where(RunResult.run_id == run_id).order_by(RunResult.id)
        return (await self.session.scalars(query)).all()

    async def replace_results(self, run_id: uuid.UUID, rows: list[RunResult]) -> None:
        await self.session.execute(delete(RunResult).where(RunResult.run_id == run_id))
        self.session.add_all(rows)
        await self.session.flush()

    async def histograms(
        self, run_id: uuid.UUID, endpoint: str
    ) -> Sequence[RunHistogram | WindowRow]:
        """One endpoint's stored windows — rows, or the run's archive — of the run's latest
        attempt that stored any, in order."""
        # The archive first: a pack committing between the two reads then shows neither, not
        # both (each statement sees what was committed when it began).
        packed = await self.archive_of(run_id)
        found: list[RunHistogram | WindowRow] = []
        if packed is not None:
            found += await asyncio.to_thread(archive.unpack_windows, packed.windows, endpoint)
        query = select(RunHistogram).where(
            RunHistogram.run_id == run_id, RunHistogram.endpoint == endpoint
        )
        found += list((await self.session.scalars(query)).all())
        if not found:
            return []
        latest = max(w.attempt for w in found)
        return sorted((w for w in found if w.attempt == latest), key=lambda w: w.start_s)

    async def take_to_roll_up(self, *, finished_before: datetime) -> uuid.UUID | None:
        """The oldest finished run the retention job has not handled, locked for this
        transaction (another worker skips it, a promotion waits for it). A run promoted as a
        baseline keeps its seconds: comparisons against it are made second by second."""
        promoted = select(Baseline.id).where(Baseline.run_id == Run.id).exists()
        query = (
            select(Run.id)
            .where(
                Run.samples_rolled_up_at.is_(None),
                Run.samples_kept_reason.is_(None),
                Run.finished_at.is_not(None),
                Run.finished_at < finished_before,
                ~promoted,
            )
            .order_by(Run.finished_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        return cast(uuid.UUID | None, await self.session.scalar(query))

    async def sample_rows(self, run_id: uuid.UUID) -> list[SampleRow]:
        """The run's samples in order, as plain rows (no ORM objects)."""
        query = (
            select(
                RunSample.id,
                RunSample.at,
                RunSample.vus,
                RunSample.requests,
                RunSample.failures,
                RunSample.data,
            )
            .where(RunSample.run_id == run_id)
            .order_by(RunSample.at, RunSample.id)
        )
        return [SampleRow(*row) for row in await self.session.execute(query)]

    async def all_histograms(self, run_id: uuid.UUID) -> Sequence[RunHistogram]:
        """Every stored window of every attempt, in order."""
        query = (
            select(RunHistogram)
            .where(RunHistogram.run_id == run_id)
            .order_by(RunHistogram.attempt, RunHistogram.endpoint, RunHistogram.start_s)
        )
        return (await self.session.scalars(query)).all()

    async def replace_seconds(
        self,
        run_id: uuid.UUID,
        *,
        samples: tuple[Sequence[int], list[dict[str, Any]]],
        windows: list[dict[str, Any]],
        now: datetime,
    ) -> None:
        """Samples (by id) and every histogram window of the run replaced, and the run marked
        rolled up."""
        old, new = samples
        for i in range(0, len(old), DELETE_CHUNK):
            chunk = list(old[i : i + DELETE_CHUNK])
            await self.session.execute(delete(RunSample).where(RunSample.id.in_(chunk)))
        await self.session.execute(delete(RunHistogram).where(RunHistogram.run_id == run_id))
        for model, rows in ((RunSample, new), (RunHistogram, windows)):
            for i in range(0, len(rows), DELETE_CHUNK):
                await self.session.execute(insert(model), rows[i : i + DELETE_CHUNK])
        await self.mark_rolled_up(run_id, now=now)

    async def mark_rolled_up(self, run_id: uuid.UUID, *, now: datetime) -> None:
        await self.session.execute(
            update(Run).where(Run.id == run_id).values(samples_rolled_up_at=now)
        )

    async def keep_seconds(self, run_id: uuid.UUID, reason: str) -> None:
        await self.session.execute(
            update(Run).where(Run.id == run_id).values(samples_kept_reason=reason)
        )
        await self.add_event(run_id, "retention", f"kept the per-second samples: {reason}")

    async def merged_histograms(
        self, run_ids: Sequence[uuid.UUID]
    ) -> dict[tuple[uuid.UUID, str], Histogram]:
        """Per run and endpoint, its latest attempt's windows merged: one query, plain
        columns (no ORM objects: a 30-minute, 20-endpoint pair is 7,560 windows)."""
        latest = (
            select(RunHistogram.run_id, func.max(RunHistogram.attempt).label("attempt"))
            .where(RunHistogram.run_id.in_(run_ids))
            .group_by(RunHistogram.run_id)
            .subquery()
        )
        query = select(
            RunHistogram.run_id,
            RunHistogram.endpoint,
            RunHistogram.counts,
            RunHistogram.count,
            RunHistogram.sum_ms,
            RunHistogram.min_ms,
            RunHistogram.max_ms,
        ).join(
            latest,
            (latest.c.run_id == RunHistogram.run_id) & (latest.c.attempt == RunHistogram.attempt),
        )
        merged: dict[tuple[uuid.UUID, str], Histogram] = {}
        for run_id, packed in (await self.archives(run_ids)).items():
            by_attempt = await asyncio.to_thread(archive.merged_windows, packed.windows)
            if by_attempt:
                newest = max(attempt for attempt, _ in by_attempt)
                for (attempt, endpoint), histogram in by_attempt.items():
                    if attempt == newest:
                        merged[(run_id, endpoint)] = histogram
        for run_id, endpoint, counts, count, sum_ms, min_ms, max_ms in await self.session.execute(
            query
        ):
            into = merged.get((run_id, endpoint))
            if into is None:
                into = merged[(run_id, endpoint)] = Histogram()
            into.add_encoded(counts, count=count, sum_ms=sum_ms, min_ms=min_ms, max_ms=max_ms)
        return merged

    async def archive_of(self, run_id: uuid.UUID) -> RunArchive | None:
        return await self.session.get(RunArchive, run_id)

    async def archives(self, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, RunArchive]:
        query = select(RunArchive).where(RunArchive.run_id.in_(run_ids))
        return {a.run_id: a for a in await self.session.scalars(query)}

    async def take_to_archive(self, *, finished_before: datetime) -> uuid.UUID | None:
        """The oldest finished run not packed yet (nor failed to pack), locked for this
        transaction."""
        packed = select(RunArchive.run_id).where(RunArchive.run_id == Run.id).exists()
        failed = (
            select(RunEvent.id)
            .where(RunEvent.run_id == Run.id, RunEvent.kind == ARCHIVE_FAILED)
            .exists()
        )
        query = (
            select(Run.id)
            .where(
                Run.finished_at.is_not(None),
                Run.finished_at < finished_before,
                ~packed,
                ~failed,
            )
            .order_by(Run.finished_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        return cast(uuid.UUID | None, await self.session.scalar(query))

    async def store_archive(
        self,
        run_id: uuid.UUID,
        *,
        samples: bytes,
        windows: bytes,
        sample_ids: Sequence[int],
        window_ids: Sequence[int],
    ) -> None:
        """The archive in, exactly the rows it holds out (a row stored since they were read
        stays a row)."""
        self.session.add(
            RunArchive(run_id=run_id, format=archive.FORMAT, samples=samples, windows=windows)
        )
        await self.session.flush()
        for model, ids in ((RunSample, sample_ids), (RunHistogram, window_ids)):
            for i in range(0, len(ids), DELETE_CHUNK):
                chunk = list(ids[i : i + DELETE_CHUNK])
                await self.session.execute(delete(model).where(model.id.in_(chunk)))
