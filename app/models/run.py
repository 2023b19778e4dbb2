from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql import func

from app.models.base import Base, IdMixin, utcnow


class RunStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    aborted = "aborted"  # stopped on request; partial results kept
    timed_out = "timed_out"  # stopped at the time limit; partial results kept
    partial = "partial"  # stopped by the cost budget; partial results kept

    @property
    def finished(self) -> bool:
        return self not in (RunStatus.queued, RunStatus.running)


FINISHED_STATUSES = tuple(s.value for s in RunStatus if s.finished)


class Run(IdMixin, Base):
    """One execution of a plan's script by k6."""

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'aborted', 'timed_out', "
            "'partial')",
            name="status_known",
        ),
        # The reaper scans running runs by heartbeat.
        Index("ix_runs_running", "heartbeat_at", postgresql_where="status = 'running'"),
        # The worker's claim query scans queued runs oldest first.
        Index("ix_runs_queued", "created_at", postgresql_where="status = 'queued'"),
        # ... and counts the runs loading a candidate's host.
        Index("ix_runs_running_target", "target_host", postgresql_where="status = 'running'"),
        # GET /runs pages newest first, seeking (created_at, id) below a cursor: one index per
        # filter, so no page sorts or skips rows whatever the history's size.
        Index("ix_runs_created", "created_at", "id"),
        Index("ix_runs_plan_created", "plan_id", "created_at", "id"),
        Index("ix_runs_status_created", "status", "created_at", "id"),
        Index(
            "ix_runs_to_roll_up",
            "finished_at",
            postgresql_where="samples_rolled_up_at IS NULL AND samples_kept_reason IS NULL "
            "AND finished_at IS NOT NULL",
        ),
    )

    plan_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("plans.id", ondelete="RESTRICT"), nullable=False, index=True
    )
    plan_version: Mapped[int] = mapped_column(Integer, nullable=False)
    script_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    # The plan's target host (normalised): at most max_runs_per_target run against it at once.
    target_host: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=RunStatus.queued)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The retention job (app/runs/retention.py): when it rolled the run's per-second samples up
    # into per-minute ones, or why it kept them (its windows did not cover them, it failed).
    samples_rolled_up_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    samples_kept_reason: Mapped[str | None] = mapped_column(Text)
    abort_requested: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default="false"
    )
    seed: Mapped[int | None] = mapped_column(Integer)
    # The load profile's length when queued: what a progress display counts towards.
    planned_duration_s: Mapped[float | None] = mapped_column(Float)
    load_factor: Mapped[float] = mapped_column(
        Float, nullable=False, default=1.0, server_default="1.0"
    )
    exit_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    stderr_tail: Mapped[str | None] = mapped_column(Text)
    k6_version: Mapped[str | None] = mapped_column(String(100))
    test_duration_s: Mapped[float | None] = mapped_column(Float)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class RunResult(Base):
    """Per-endpoint figures of a run, as k6 measured them. ``endpoint='*'`` is all requests."""

    __tablename__ = "run_results"
    __table_args__ = (UniqueConstraint("run_id", "endpoint", name="uq_run_results_run_endpoint"),)

    ALL = "*"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    endpoint: Mapped[str] = mapped_column(String(200), nullable=False)
    requests: Mapped[int] = mapped_column(Integer, nullable=False)
    failures: Mapped[int] = mapped_column(Integer, nullable=False)
    rps: Mapped[float] = mapped_column(Float, nullable=False)
    error_rate: Mapped[float] = mapped_column(Float, nullable=False)
    # Latency of responses with the expected status, in milliseconds (null: none succeeded).
    avg_ms: Mapped[float | None] = mapped_column(Float)
    min_ms: Mapped[float | None] = mapped_column(Float)
    p50_ms: Mapped[float | None] = mapped_column(Float)
    p90_ms: Mapped[float | None] = mapped_column(Float)
    p95_ms: Mapped[float | None] = mapped_column(Float)
    p99_ms: Mapped[float | None] = mapped_column(Float)
    max_ms: Mapped[float | None] = mapped_column(Float)
    # "histograms": read from the live histograms (app/runs/live.py); "summary": from k6's
    # end-of-test summary, when k6's metric stream gave nothing.
    source: Mapped[str] = mapped_column(
        String(16), nullable=False, default="summary", server_default="summary"
    )


class RunEvent(Base):
    """Something that happened to a run, in order: every transition, retry, fallback, alert."""

    __tablename__ = "run_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    run_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow, server_default=func.now()
    )
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class RunSample(Base):
    """One second of a running test: that second's requests, failures and VUs, and in ``data``
    its latency percentiles over all requests and per endpoint (app/runs/live.py)."""

    __tablename__ = "run_samples"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    run_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    vus: Mapped[int] = mapped_column(Integer, nullable=False)
    requests: Mapped[int] = mapped_column(Integer, nullable=False)
    failures: Mapped[int] = mapped_column(Integer, nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)


class RunHistogram(Base):
    """One endpoint's latency histogram over a window of seconds (``endpoint='*'``: all).

    ``counts`` is app/runs/histogram.py's fixed layout, its non-empty buckets deflated (tens
    to hundreds of bytes); ``count``/``sum_ms``/``min_ms``/``max_ms`` are exact, over expected
    responses only, while ``requests``/``failures`` count every response. Windows of one
    attempt add up to its totals.
    """

    __tablename__ = "run_histograms"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    run_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    endpoint: Mapped[str] = mapped_column(String(200), nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    start_s: Mapped[int] = mapped_column(Integer, nullable=False)
    seconds: Mapped[int] = mapped_column(Integer, nullable=False)
    requests: Mapped[int] = mapped_column(Integer, nullable=False)
    failures: Mapped[int] = mapped_column(Integer, nullable=False)
    count: Mapped[int] = mapped_column(Integer, nullable=False)
    sum_ms: Mapped[float] = mapped_column(Float, nullable=False)
    min_ms: Mapped[float | None] = mapped_column(Float)
    max_ms: Mapped[float | None] = mapped_column(Float)
    counts: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class RunArchive(Base):
    """A finished run's samples and histogram windows, packed (app/runs/archive.py): its
    ``run_samples`` and ``run_histograms`` rows are gone once this exists."""

    __tablename__ = "run_archives"

    run_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    format: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, default=utcnow
    )
    samples: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    windows: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
