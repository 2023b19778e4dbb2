from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Baseline, HistoryPoint, Plan, Run, RunResult, RunStatus


class BaselineRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, baseline: Baseline) -> Baseline:
        self.session.add(baseline)
        await self.session.flush()
        return baseline

    async def list_for_plan(self, plan_id: uuid.UUID, *, limit: int = 50) -> Sequence[Baseline]:
        query = self._family(plan_id).order_by(Baseline.created_at.desc(), Baseline.id).limit(limit)
        return (await self.session.scalars(query)).all()

    def _family(self, plan_id: uuid.UUID) -> Any:
        """Baselines of every version of the plan ``plan_id`` belongs to."""
        family = select(Plan.family_id).where(Plan.id == plan_id).scalar_subquery()
        return (
            select(Baseline).join(Plan, Plan.id == Baseline.plan_id).where(Plan.family_id == family)
        )

    async def current(
        self, plan_id: uuid.UUID, *, environment: str, excluding_run: uuid.UUID | None = None
    ) -> Baseline | None:
        """The newest whole-plan baseline of the plan's family for an environment (a baseline
        promoted on version 3 still counts when version 4 runs)."""
        query = (
            self._family(plan_id)
            .where(Baseline.environment == environment, Baseline.scenario.is_(None))
            .order_by(Baseline.created_at.desc())
            .limit(1)
        )
        if excluding_run is not None:
            query = query.where(Baseline.run_id != excluding_run)
        return await self.session.scalar(query)

    async def current_per_scenario(
        self, plan_id: uuid.UUID, *, environment: str, excluding_run: uuid.UUID
    ) -> dict[str, Baseline]:
        """The newest baseline of each scenario that has one of its own."""
        query = (
            self._family(plan_id)
            .where(
                Baseline.environment == environment,
                Baseline.scenario.is_not(None),
                Baseline.run_id != excluding_run,
            )
            .order_by(Baseline.created_at)
        )
        return {b.scenario: b for b in await self.session.scalars(query) if b.scenario}

    async def window_runs(
        self,
        family_id: uuid.UUID,
        environment: str,
        *,
        before: datetime | None,
        limit: int,
    ) -> Sequence[tuple[uuid.UUID, datetime, datetime]]:
        """The family's newest ``limit`` succeeded runs in ``environment`` created before
        ``before``: (id, when it ran, when it was created), newest first. Ids and times only,
        never the runs' summaries: the window costs the same at 10 or 10,000 runs."""
        environment_of = func.coalesce(Plan.spec["target"]["environment"].astext, "staging")
        query = (
            select(Run.id, func.coalesce(Run.started_at, Run.created_at), Run.created_at)
            .join(Plan, Plan.id == Run.plan_id)
            .where(
                Plan.family_id == family_id,
                Run.status == RunStatus.succeeded,
                environment_of == environment,
            )
            .order_by(Run.created_at.desc(), Run.id.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(Run.created_at < before)
        return [(row[0], row[1], row[2]) for row in await self.session.execute(query)]

    async def results_of(
        self, run_ids: Sequence[uuid.UUID], columns: Sequence[str]
    ) -> Sequence[Row[Any]]:
        """(run_id, endpoint, *columns) of the runs' results: plain rows, not entities (the
        history reads ~1,000 results a request)."""
        if not run_ids:
            return []
        fields = [getattr(RunResult, column) for column in columns]
        query = select(RunResult.run_id, RunResult.endpoint, *fields).where(
            RunResult.run_id.in_(run_ids)
        )
        return (await self.session.execute(query)).all()

    async def history_points(
        self,
        family_id: uuid.UUID,
        environment: str,
        *,
        before: datetime | None = None,
        per_series: int,
    ) -> Sequence[HistoryPoint]:
        """Imported points: the newest ``per_series`` of each (endpoint, SLI) before
        ``before``, read through ``uq_history_points_point`` (family, environment, endpoint,
        SLI, time)."""
        conditions = [HistoryPoint.family_id == family_id, HistoryPoint.environment == environment]
        if before is not None:
            conditions.append(HistoryPoint.at < before)
        rank = (
            func.row_number()
            .over(
                partition_by=(HistoryPoint.endpoint, HistoryPoint.sli),
                order_by=HistoryPoint.at.desc(),
            )
            .label("rank")
        )
        ranked = select(HistoryPoint.id, rank).where(*conditions).subquery()
        query = (
            select(HistoryPoint)
            .join(ranked, ranked.c.id == HistoryPoint.id)
            .where(ranked.c.rank <= per_series)
            .order_by(HistoryPoint.at)
        )
        return (await self.session.scalars(query)).all()

    async def upsert_points(self, rows: list[dict[str, Any]]) -> None:
        """Insert points; one at the same time for the same series replaces the old value."""
        for start in range(0, len(rows), 1000):
            chunk = rows[start : start + 1000]
            statement = insert(HistoryPoint).values(chunk)
            await self.session.execute(
                statement.on_conflict_do_update(
                    constraint="uq_history_points_point",
                    set_={
                        "value": statement.excluded.value,
                        "label": statement.excluded.label,
                        "imported_at": statement.excluded.imported_at,
                    },
                )
            )
        await self.session.flush()
