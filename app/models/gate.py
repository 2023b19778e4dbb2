from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, String, UniqueConstraint, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IdMixin


class Gate(IdMixin, Base):
    """A CI pipeline's question "may this build ship?": one run of a plan, judged once. A
    retried job sending the same idempotency key gets this gate back instead of a new run."""

    __tablename__ = "gates"
    __table_args__ = (
        UniqueConstraint("owner", "idempotency_key", name="uq_gates_owner_idempotency_key"),
    )

    owner: Mapped[str] = mapped_column(String(200), nullable=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # sha256 of the request: the same key with another request is refused, not replayed.
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    plan_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("plans.id", ondelete="CASCADE"), nullable=False, index=True
    )
    run_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("runs.id", ondelete="CASCADE")
    )
    baseline_run_ids: Mapped[list[str]] = mapped_column(JSONB, nullable=False, default=list)
    allow_warning: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    build: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    # Set by whoever analyses the finished run first, so it is analysed once.
    settling_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    analysis_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("analyses.id", ondelete="SET NULL")
    )
    verdict: Mapped[str | None] = mapped_column(String(20))
    passed: Mapped[bool | None] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(String(2000))
