from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Run, RunResult, RunStatus


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
                attempts=Run.attempts + 1,
            )
            .returning(Run.id)
        )
        return claimed

    async def results(self, run_id: uuid.UUID) -> Sequence[RunResult]:
        query = select(RunResult).where(RunResult.run_id == run_id).order_by(RunResult.id)
        return (await self.session.scalars(query)).all()

    async def replace_results(self, run_id: uuid.UUID, rows: list[RunResult]) -> None:
        await self.session.execute(delete(RunResult).where(RunResult.run_id == run_id))
        self.session.add_all(rows)
        await self.session.flush()
