from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IdMixin


class PlanStatus(enum.StrEnum):
    draft = "draft"
    approved = "approved"
    archived = "archived"


class Plan(IdMixin, Base):
    """One version of a test plan and the k6 script generated from it.

    Versions of the same plan share ``family_id``; an edit is a new row, never an update, so a
    run always points at exactly what it ran.
    """

    __tablename__ = "plans"
    __table_args__ = (
        UniqueConstraint("family_id", "version", name="uq_plans_family_version"),
        CheckConstraint("status IN ('draft', 'approved', 'archived')", name="status_known"),
        # GET /plans and /plans/{id}/versions page newest first by (created_at, id).
        Index("ix_plans_created", "created_at", "id"),
        Index("ix_plans_family_created", "family_id", "created_at", "id"),
        Index("ix_plans_name_created", "name", "created_at", "id"),
    )

    family_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=PlanStatus.draft)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    source: Mapped[str] = mapped_column(Text, nullable=False)
    source_format: Mapped[str] = mapped_column(String(8), nullable=False)
    script: Mapped[str] = mapped_column(Text, nullable=False)
    script_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    reviewed_by: Mapped[str | None] = mapped_column(String(200))
    review_comment: Mapped[str | None] = mapped_column(Text)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
