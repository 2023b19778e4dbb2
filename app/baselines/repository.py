from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Baseline


class BaselineRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, baseline: Baseline) -> Baseline:
        self.session.add(baseline)
        await self.session.flush()
        return baseline

    async def list_for_plan(self, plan_id: uuid.UUID, *, limit: int = 50) -> Sequence[Baseline]:
        query = (
            select(Baseline)
            .where(Baseline.plan_id == plan_id)
            .order_by(Baseline.created_at.desc(), Baseline.id)
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def current(
        self, plan_id: uuid.UUID, *, environment: str, excluding_run: uuid.UUID | None = None
    ) -> Baseline | None:
        query = (
            select(Baseline)
            .where(Baseline.plan_id == plan_id, Baseline.environment == environment)
            .order_by(Baseline.created_at.desc())
            .limit(1)
        )
        if excluding_run is not None:
            query = query.where(Baseline.run_id != excluding_run)
        return await self.session.scalar(query)
