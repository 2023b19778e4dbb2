from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IdMixin


class ApiKey(IdMixin, Base):
    """An API key: only its SHA-256 is stored (keys are 256 random bits), with a short prefix
    to recognise it by, its owner (the name recorded as having done what the key did) and its
    scopes. Keys are revoked, never deleted, so the audit trail keeps naming them."""

    __tablename__ = "api_keys"

    owner: Mapped[str] = mapped_column(String(200), nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSONB, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
