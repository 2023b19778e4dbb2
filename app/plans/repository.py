from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import pagination
from app.models import Plan

SUMMARY_COLUMNS = (
    Plan.id,
    Plan.family_id,
    Plan.name,
    Plan.version,
    Plan.status,
    Plan.reviewed_by,
    Plan.reviewed_at,
    Plan.created_at,
    Plan.script_sha256,
)


class PlanRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, plan: Plan) -> Plan:
        self.session.add(plan)
        await self.session.flush()
        return plan

    async def get(self, plan_id: uuid.UUID) -> Plan | None:
        return await self.session.get(Plan, plan_id)

    async def page(
        self,
        *,
        name: str | None = None,
        family_id: uuid.UUID | None = None,
        cursor: str | None = None,
        limit: int = pagination.DEFAULT_LIMIT,
    ) -> Sequence[Any]:
        """Plan versions newest first, without their spec and script (``SUMMARY_COLUMNS``):
        a page of 50 is a few KB however long the scripts are."""
        query = (
            select(*SUMMARY_COLUMNS)
            .order_by(Plan.created_at.desc(), Plan.id.desc())
            .limit(limit + 1)
        )
        if name is not None:
            query = query.where(Plan.name == name)
        if family_id is not None:
            query = query.where(Plan.family_id == family_id)
        after = pagination.seek(Plan.created_at, Plan.id, cursor)
        if after is not None:
            query = query.where(after)
        return (await self.session.execute(query)).all()

    async def latest_version_number(self, family_id: uuid.UUID) -> int:
        query = select(func.max(Plan.version)).where(Plan.family_id == family_id)
        return int(await self.session.scalar(query) or 0)
