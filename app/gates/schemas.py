from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Build(BaseModel):
    model_config = ConfigDict(extra="forbid")

    commit: str | None = Field(default=None, max_length=100)
    branch: str | None = Field(default=None, max_length=300)
    pipeline_url: str | None = Field(default=None, max_length=2000)


class GateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan_id: uuid.UUID | None = Field(
        default=None, description="The plan to run; with `plan`, the plan that gets a new version"
    )
    plan: dict[str, Any] | str | None = Field(
        default=None,
        max_length=1_000_000,
        description="A plan document (an object, or its YAML/JSON text): stored as a new plan, "
        "or as the next version of `plan_id`, only when the gate is new — a retry with the "
        "same key stores nothing (the key needs the plan scope too)",
    )
    baseline_run_ids: list[uuid.UUID] | None = Field(
        default=None, max_length=20, description="Default: the service's choice of baseline"
    )
    allow_warning: bool = Field(default=False, description="A 'warning' verdict passes too")
    auto_approve: bool = Field(
        default=False, description="Approve a draft on the way (the key needs approve too)"
    )
    build: Build = Field(default_factory=Build)
    wait_s: float = Field(
        default=0,
        ge=0,
        le=1800,
        description="Wait this long for the verdict (200 with it); 0, or not decided in "
        "time: 202 with a status URL to poll",
    )

    @model_validator(mode="after")
    def _a_plan(self) -> GateIn:
        if self.plan_id is None and self.plan is None:
            raise ValueError("give plan_id, plan, or both")
        return self


GateStatus = Literal["queued", "running", "analysing", "decided", "error"]


class GateOut(BaseModel):
    id: uuid.UUID
    status: GateStatus = Field(
        description="queued/running: the run; analysing: being judged; decided: verdict and "
        "passed are set; error: the run failed or could not be judged (see error)"
    )
    verdict: str | None = Field(description="pass, warning, fail or inconclusive")
    passed: bool | None = Field(description="pass, or warning with allow_warning")
    plan_id: uuid.UUID
    run_id: uuid.UUID | None
    analysis_id: uuid.UUID | None
    build: Build
    error: str | None
    replayed: bool = Field(
        default=False, description="This answers an earlier request with the same key"
    )
    created_at: datetime
    links: dict[str, str]
