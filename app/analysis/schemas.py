from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal["pass", "fail"]


class AnalyseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: uuid.UUID


class SloResult(BaseModel):
    """One objective judged: which number was compared with which target, and how."""

    key: str
    objective: str = Field(description="e.g. 'p95 < 300ms'")
    endpoint: str | None = Field(description="null: all requests")
    sli: str
    op: str
    target: float
    unit: str
    measured: float | None = Field(description="null: k6 measured nothing for this SLI")
    status: Literal["pass", "fail", "no_data"]
    source: str = Field(description="The k6 metric and statistic the measurement came from")
    k6_threshold_ok: bool | None = Field(description="k6's own verdict on the same threshold")


class Finding(BaseModel):
    kind: str
    severity: Literal["info", "warning", "critical"]
    endpoint: str | None = None
    summary: str
    evidence: dict[str, float | int | str | None] = Field(default_factory=dict)
    recommendation: str | None = None


class AnalysisOut(BaseModel):
    id: uuid.UUID
    run_id: uuid.UUID
    baseline_run_id: uuid.UUID | None
    created_at: datetime
    verdict: Verdict
    slo_results: list[SloResult]
    findings: list[Finding]
    warnings: list[str]
    links: dict[str, str]
