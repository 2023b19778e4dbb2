from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Run, RunEvent, RunHistogram, RunResult, RunStatus


class RunRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, run: Run) -> Run:
        self.session.add(run)
        await self.session.flush()
        return run

    async def get(self, run_id: uuid.UUID, *, for_update: bool = False) -> Run | None:
        return await self.session.get(Run, run_id, with_for_update=for_update)

    async def list_runs(
        self, *, plan_id: uuid.UUID | None, status: str | None, limit: int
    ) -> Sequence[Run]:
        query = select(Run).order_by(Run.created_at.desc()).limit(limit)
        if plan_id is not None:
            query = query.where(Run.plan_id == plan_id)
        if status is not None:
            query = query.where(Run.status == status)
        return (await self.session.scalars(query)).all()

    async def claim_next(self, *, worker_id: str, now: datetime) -> uuid.UUID | None:
        """Atomically move the oldest queued run to running for this worker.

        ``FOR UPDATE SKIP LOCKED`` lets any number of workers poll the same table: a row
        another worker is claiming is skipped, never waited for or claimed twice.
        """
        oldest_queued = (
            select(Run.id)
            .where(Run.status == RunStatus.queued)
            .order_by(Run.created_at)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        claimed = await self.session.scalar(
            update(Run)
            .where(Run.id == oldest_queued, Run.status == RunStatus.queued)
            .values(
                status=RunStatus.running,
                worker_id=worker_id,
                started_at=now,
                heartbeat_at=now,
                attempts=Run.attempts + 1,
            )
            .returning(Run.id)
        )
        return claimed

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

    async def histograms(self, run_id: uuid.UUID, endpoint: str) -> Sequence[RunHistogram]:
        """One endpoint's stored windows, of the run's latest attempt that stored any."""
        latest = (
            select(func.max(RunHistogram.attempt))
            .where(RunHistogram.run_id == run_id)
            .scalar_subquery()
        )
        query = (
            select(RunHistogram)
            .where(
                RunHistogram.run_id == run_id,
                RunHistogram.endpoint == endpoint,
                RunHistogram.attempt == latest,
            )
            .order_by(RunHistogram.start_s, RunHistogram.id)
        )
        return (await self.session.scalars(query)).all()
