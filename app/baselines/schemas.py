from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.core import slis


class PromoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: uuid.UUID
    note: str | None = Field(default=None, max_length=2000)
    scenario: str | None = Field(
        default=None,
        max_length=100,
        description="Only for this scenario's steps; unset: the baseline of the whole plan",
    )


class BaselineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    plan_id: uuid.UUID
    run_id: uuid.UUID
    environment: str
    scenario: str | None = None
    note: str | None
    created_at: datetime


HISTORY_FORMAT = "perf-agent.history/v1"


class HistoryValue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: datetime = Field(description="When that run happened (ISO 8601, with a time zone)")
    value: float = Field(ge=0, allow_inf_nan=False)
    label: str | None = Field(default=None, max_length=200, description="e.g. a build number")
    run_id: uuid.UUID | None = Field(default=None, description="Set on export for perf-agent runs")

    @field_validator("at")
    @classmethod
    def _zoned(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("give the time zone, e.g. 2026-11-01T10:00:00Z")
        return value


class HistorySeries(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(min_length=1, max_length=200, description="'*': all requests")
    sli: slis.HistorySliName
    unit: str | None = Field(default=None, description="ms for latency, a fraction or req/s")
    points: list[HistoryValue] = Field(max_length=10_000)


class ChangePoint(BaseModel):
    endpoint: str
    sli: str
    at: datetime = Field(description="The first run after the change")
    before: float = Field(description="The series' median before it")
    after: float = Field(description="The median after it")
    change: float | None = Field(description="(after − before) / before")
    points_before: int
    points_after: int


class HistoryDocument(BaseModel):
    """A plan's history as a time series: per endpoint and SLI, one value per past run.
    ``GET …/plans/{id}/history`` exports it; ``POST`` the same shape to import one."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["perf-agent.history/v1"] = "perf-agent.history/v1"
    plan_id: uuid.UUID | None = None
    environment: str | None = Field(default=None, max_length=100)
    series: list[HistorySeries] = Field(max_length=500)
    next: str | None = Field(
        default=None,
        description="Export only: the next, older window of the history (ignored on import)",
    )
    changes: list[ChangePoint] | None = Field(
        default=None,
        description="Export only: lasting shifts found in this window's p95 and error-rate "
        "series (PELT on the values; the same search analysis runs), dated (ignored on import)",
    )

    @field_validator("series")
    @classmethod
    def _bounded(cls, value: list[HistorySeries]) -> list[HistorySeries]:
        total = sum(len(s.points) for s in value)
        if total > 50_000:
            raise ValueError(f"{total} points in one import; at most 50000 (split it up)")
        return value


MAX_IMPORT_POINTS = 50_000


class HistoryImported(BaseModel):
    points: int
    series: int
    environment: str
