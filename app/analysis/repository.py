from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Analysis, Plan, Run, RunSample, RunStatus


class AnalysisRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, analysis: Analysis) -> Analysis:
        self.session.add(analysis)
        await self.session.flush()
        return analysis

    async def get(self, analysis_id: uuid.UUID) -> Analysis | None:
        return await self.session.get(Analysis, analysis_id)

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
                passed,
            )
            .order_by(Run.created_at.desc())
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def samples(self, run_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[dict[str, Any]]]:
        """Each run's per-second samples, in order, of its latest attempt only."""
        rows = await self.session.execute(
            select(RunSample.run_id, RunSample.data)
            .where(RunSample.run_id.in_(run_ids))
            .order_by(RunSample.run_id, RunSample.at, RunSample.id)
        )
        found: dict[uuid.UUID, list[dict[str, Any]]] = {run_id: [] for run_id in run_ids}
        for run_id, data in rows:
            found[run_id].append(data)
        for run_id, samples in found.items():
            latest = max((s.get("attempt", 1) for s in samples), default=1)
            found[run_id] = [s for s in samples if s.get("attempt", 1) == latest]
        return found
