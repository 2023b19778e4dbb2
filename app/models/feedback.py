from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IdMixin


class RecommendationFeedback(IdMixin, Base):
    """An engineer's verdict on one recommendation of an analysis; the latest one counts."""

    __tablename__ = "recommendation_feedback"
    __table_args__ = (
        UniqueConstraint(
            "analysis_id", "recommendation_id", name="uq_recommendation_feedback_analysis_rec"
        ),
    )

    analysis_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("analyses.id", ondelete="CASCADE"), nullable=False, index=True
    )
    recommendation_id: Mapped[str] = mapped_column(String(20), nullable=False)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)  # the finding's kind
    verdict: Mapped[str] = mapped_column(String(10), nullable=False)  # accepted | rejected
    comment: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(200))
