from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import BudgetIteration, PerformanceBudget, Plan


class BudgetRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, budget: PerformanceBudget) -> PerformanceBudget:
        self.session.add(budget)
        await self.session.flush()
        return budget

    async def get(self, budget_id: uuid.UUID, *, lock: bool = False) -> PerformanceBudget | None:
        query = select(PerformanceBudget).where(PerformanceBudget.id == budget_id)
        if lock:
            query = query.with_for_update()
        return (await self.session.scalars(query)).one_or_none()

    async def list(
        self, *, plan_id: uuid.UUID | None = None, limit: int = 50
    ) -> Sequence[PerformanceBudget]:
        query = select(PerformanceBudget)
        if plan_id is not None:
            family = select(Plan.family_id).where(Plan.id == plan_id).scalar_subquery()
            query = query.join(Plan, Plan.id == PerformanceBudget.plan_id).where(
                Plan.family_id == family
            )
        query = query.order_by(PerformanceBudget.created_at.desc(), PerformanceBudget.id)
        return (await self.session.scalars(query.limit(limit))).all()

    async def iterations(self, budget_id: uuid.UUID) -> Sequence[BudgetIteration]:
        query = (
            select(BudgetIteration)
            .where(BudgetIteration.budget_id == budget_id)
            .order_by(BudgetIteration.number)
        )
        return (await self.session.scalars(query)).all()

    async def add_iteration(self, iteration: BudgetIteration) -> BudgetIteration:
        self.session.add(iteration)
        await self.session.flush()
        return iteration

    async def same_family(self, plan_id: uuid.UUID, other_plan_id: uuid.UUID) -> bool:
        families = (
            await self.session.scalars(
                select(Plan.family_id).where(Plan.id.in_([plan_id, other_plan_id]))
            )
        ).all()
        return len(families) == (1 if plan_id == other_plan_id else 2) and len(set(families)) == 1
