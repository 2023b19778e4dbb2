from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, IdMixin


class Analysis(IdMixin, Base):
    """A run's results judged against its SLOs (and its baseline, when there is one)."""

    __tablename__ = "analyses"
    # A run's newest analysis (its verdict in GET /runs) without scanning its older ones.
    __table_args__ = (Index("ix_analyses_run_created", "run_id", "created_at"),)

    run_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    baseline_run_id: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, ForeignKey("runs.id", ondelete="SET NULL")
    )
    verdict: Mapped[str] = mapped_column(String(16), nullable=False)
    slo_results: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    warnings: Mapped[list[str]] = mapped_column(JSONB, nullable=False)
    report_md: Mapped[str] = mapped_column(Text, nullable=False)
    baseline_run_ids: Mapped[list[str]] = mapped_column(
        JSONB, nullable=False, default=list, server_default="[]"
    )
    baseline_source: Mapped[str | None] = mapped_column(String(16))
    comparisons: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, default=list, server_default="[]"
    )
    score: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Lasting shifts over the plan's history (its runs and imported points), this run included.
    history_shifts: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, default=list, server_default="[]"
    )
    saturation: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # The run's load against its baselines' (throughput, iterations, VUs) and whether it moved.
    load: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Was k6 short of CPU, or its machine busy with something else? (See analysis/generator.py.)
    load_generator: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # What the worker's profilers found in the run's steady middle (runs/profile.py).
    profile: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # The target's CPU/memory (psutil, when local) and the plan's PromQL series, summarised.
    system_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    narrative: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # status (ok, not_configured, timeout, provider_error, invalid_output, rejected), provider,
    # model, tokens, latency, and why a narrative is missing.
    narrative_meta: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
