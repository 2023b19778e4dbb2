from __future__ import annotations

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Gate


class GateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, gate_id: uuid.UUID) -> Gate | None:
        return await self.session.get(Gate, gate_id)

    async def by_key(self, owner: str, key: str) -> Gate | None:
        query = select(Gate).where(Gate.owner == owner, Gate.idempotency_key == key)
        return (await self.session.scalars(query)).one_or_none()

    async def add(self, gate: Gate) -> Gate:
        self.session.add(gate)
        await self.session.flush()
        return gate

    async def claim_settling(self, gate_id: uuid.UUID) -> bool:
        """Whoever sets ``settling_at`` first analyses the run; the others do not."""
        result = await self.session.execute(
            update(Gate)
            .where(Gate.id == gate_id, Gate.settling_at.is_(None))
            .values(settling_at=func.now())
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
