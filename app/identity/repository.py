from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ApiKey, AuditEvent


class KeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, key: ApiKey) -> ApiKey:
        self.session.add(key)
        await self.session.flush()
        return key

    async def get(self, key_id: uuid.UUID, *, for_update: bool = False) -> ApiKey | None:
        query = select(ApiKey).where(ApiKey.id == key_id)
        if for_update:
            query = query.with_for_update()
        key: ApiKey | None = (await self.session.execute(query)).scalar_one_or_none()
        return key

    async def by_hash(self, key_hash: str) -> ApiKey | None:
        query = select(ApiKey).where(ApiKey.key_hash == key_hash)
        key: ApiKey | None = (await self.session.execute(query)).scalar_one_or_none()
        return key

    async def list_all(self) -> Sequence[ApiKey]:
        query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
        return (await self.session.execute(query)).scalars().all()

    async def touch(self, key_id: uuid.UUID, now: datetime, unless_since: datetime) -> None:
        """Record a use, unless one was recorded since ``unless_since`` (one write a minute at
        most, not one per request)."""
        await self.session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < unless_since),
            )
            .values(last_used_at=now)
        )


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, event: AuditEvent) -> AuditEvent:
        self.session.add(event)
        await self.session.flush()
        return event

    async def page(self, *, limit: int, before: int | None) -> Sequence[AuditEvent]:
        """The newest events first; ``before``: only those older than that event id."""
        query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
        if before is not None:
            query = query.where(AuditEvent.id < before)
        return (await self.session.execute(query)).scalars().all()
