from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IdMixin, utcnow


class BudgetStatus:
    running = "running"  # iterations may still be recorded
    met = "met"  # an iteration's value was under the target
    exhausted = "exhausted"  # the last allowed iteration did not meet it


class PerformanceBudget(IdMixin, Base):
    """The seed's API Performance Budget loop: run, check an SLI against a target, change the
    code, run again — at most ``max_iterations`` times."""

    __tablename__ = "performance_budgets"

    plan_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("plans.id", ondelete="CASCADE"), nullable=False, index=True
    )
    sli: Mapped[str] = mapped_column(String(20), nullable=False)
    # Null: all requests.
    endpoint: Mapped[str | None] = mapped_column(String(200))
    target_ms: Mapped[float] = mapped_column(Float, nullable=False)
    max_iterations: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default=BudgetStatus.running)
    created_by: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow
    )


class BudgetIteration(Base):
    """One pass of a budget loop: its run, the SLI it measured, how it changed from the pass
    before (the analysis' own comparison of the two runs) and the top finding."""

    __tablename__ = "budget_iterations"
    __table_args__ = (UniqueConstraint("budget_id", "number", name="uq_budget_iterations_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    budget_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("performance_budgets.id", ondelete="CASCADE"), nullable=False, index=True
    )
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    run_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False
    )
    analysis_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("analyses.id", ondelete="SET NULL")
    )
    value_ms: Mapped[float | None] = mapped_column(Float)
    met: Mapped[bool] = mapped_column(Boolean, nullable=False)
    verdict: Mapped[str | None] = mapped_column(String(20))
    # Against the previous pass: (value − previous) / previous, and the analysis' comparison.
    change: Mapped[float | None] = mapped_column(Float)
    comparison: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    top_finding: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )
