from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from app.models.run import FINISHED_STATUSES, RunStatus


class ExecuteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan_id: uuid.UUID = Field(description="A plan version; it must be approved")
    auto_approve: bool = Field(
        default=False,
        description="Approve a draft on the way (CI): the key needs `approve` as well as "
        "`execute`; its owner is recorded as the reviewer",
    )


class EndpointResult(BaseModel):
    """One endpoint's figures from k6 (``endpoint='*'``: all requests). Latency in ms, over
    responses with the expected status; null when none had it."""

    model_config = ConfigDict(from_attributes=True)

    endpoint: str
    requests: int
    failures: int
    rps: float
    error_rate: float
    avg_ms: float | None
    min_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    source: str = Field(
        default="histograms",
        description="histograms: read from the run's live latency histograms; summary: from "
        "k6's end-of-test summary (when k6's metric stream gave nothing)",
    )


class CheckResult(BaseModel):
    name: str
    group: str | None
    passes: int
    fails: int


class RunEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    kind: str = Field(
        description="queued, claimed, k6_started, retry, fallback, abort_requested, …"
    )
    message: str
    data: dict[str, Any] | None


class QueueState(BaseModel):
    """Why a queued run has not started yet."""

    target_host: str | None
    running_on_target: int = Field(description="Runs loading the target host now")
    per_target_limit: int = Field(description="At most this many at once (all workers)")
    reason: str


class RunOut(BaseModel):
    id: uuid.UUID
    plan_id: uuid.UUID
    plan_version: int
    script_sha256: str
    status: RunStatus = Field(
        description="queued → running → one of the finished states: " + ", ".join(FINISHED_STATUSES)
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    worker_id: str | None
    attempts: int
    exit_code: int | None
    error: str | None
    stderr_tail: str | None = Field(default=None, description="The last lines k6 logged")
    k6_version: str | None
    test_duration_s: float | None
    planned_duration_s: float | None = Field(
        default=None, description="The load profile's length: what a progress display shows"
    )
    thresholds_failed: list[str] = Field(
        default_factory=list, description="k6's own verdicts: thresholds it marked failed."
    )
    results: list[EndpointResult]
    checks: list[CheckResult] = Field(default_factory=list, description="k6 checks, per name")
    events: list[RunEventOut] = Field(default_factory=list, description="Oldest first")
    seed: int | None = Field(default=None, description="The seed every random choice used")
    load_factor: float = Field(
        default=1.0, description="Below 1 when the run fell back to a reduced load"
    )
    abort_requested: bool = False
    heartbeat_at: datetime | None = None
    queue: QueueState | None = Field(
        default=None, description="While queued: what it waits for (its target, or a worker)"
    )
    links: dict[str, str]

    @computed_field(  # type: ignore[prop-decorator]
        description="True once the run is in a final state (it will not change again); poll "
        "until this, not until particular states"
    )
    @property
    def finished(self) -> bool:
        return self.status.finished


class RunSummary(BaseModel):
    """A run in a list: its state and key figures over all requests. The whole run (results
    per endpoint, checks, events) is at ``links.self``."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    plan_id: uuid.UUID
    plan_version: int
    status: RunStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    test_duration_s: float | None
    error: str | None = Field(description="Why it failed, when it did")
    requests: int | None = Field(description="All requests; null until the run has results")
    rps: float | None
    p95_ms: float | None
    error_rate: float | None
    verdict: str | None = Field(
        description="The newest analysis' verdict (pass, warn, fail, inconclusive); null when "
        "the run has not been analysed"
    )
    links: dict[str, str]

    @computed_field(  # type: ignore[prop-decorator]
        description="True once the run is in a final state"
    )
    @property
    def finished(self) -> bool:
        return self.status.finished


class LatencyOut(BaseModel):
    """One endpoint's figures over whole stored windows of a run, from its merged histograms."""

    endpoint: str
    attempt: int
    from_s: int = Field(description="Seconds from the test's first second, window-aligned")
    to_s: int
    windows: int
    requests: int
    failures: int
    latency_ms: dict[str, float | None] = Field(
        description="avg, min, p50, p90, p95, p99, max over expected responses (k6's rule)"
    )


class EndpointDistribution(BaseModel):
    endpoint: str = Field(description="'*': all requests")
    requests: int = Field(description="Responses in the histogram (k6's expected responses)")
    upper_ms: list[float] = Field(description="Each non-empty bin's upper bound, ascending")
    counts: list[int] = Field(description="Responses in each bin")


class DistributionOut(BaseModel):
    """A run's latency distribution per endpoint, from its stored histograms merged over the
    whole run (its latest attempt): what a density or CDF chart needs, nothing interpolated."""

    run_id: uuid.UUID
    bin_width: float = Field(description="Each bin's relative width (upper ÷ lower − 1)")
    endpoints: list[EndpointDistribution]
