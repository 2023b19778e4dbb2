from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Plan


class PlanRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, plan: Plan) -> Plan:
        self.session.add(plan)
        await self.session.flush()
        return plan

    async def get(self, plan_id: uuid.UUID) -> Plan | None:
        return await self.session.get(Plan, plan_id)

    async def list_recent(self, *, name: str | None = None, limit: int = 50) -> Sequence[Plan]:
        query = select(Plan).order_by(Plan.created_at.desc()).limit(limit)
        if name is not None:
            query = query.where(Plan.name == name)
        return (await self.session.scalars(query)).all()

    async def versions(self, family_id: uuid.UUID) -> Sequence[Plan]:
        query = select(Plan).where(Plan.family_id == family_id).order_by(Plan.version.desc())
        return (await self.session.scalars(query)).all()

    async def latest_version_number(self, family_id: uuid.UUID) -> int:
        query = select(func.max(Plan.version)).where(Plan.family_id == family_id)
        return int(await self.session.scalar(query) or 0)
