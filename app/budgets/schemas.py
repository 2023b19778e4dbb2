from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.core import slis

# The loop's indicator: a latency one (the seed's loop is about P95).
BudgetSli = Literal["p50", "p90", "p95", "p99", "avg", "max"]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*$")


def parse_target_ms(value: Any) -> float:
    """300, "300ms" or "0.3s" → 300.0 (milliseconds)."""
    if isinstance(value, bool):
        raise ValueError("a latency target is a number of milliseconds, e.g. 300 or '300ms'")
    if isinstance(value, int | float):
        number = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a latency like '300ms' or '0.3s'")
        number = float(match[1]) * (1000 if match[2] == "s" else 1)
    if not 0 < number <= 600_000:
        raise ValueError("a latency target is above 0 and at most 10 minutes")
    return number


class BudgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan_id: uuid.UUID = Field(description="The plan every iteration runs (any of its versions)")
    sli: BudgetSli = "p95"
    target_ms: float = Field(description="Met when the SLI is below this: 300, '300ms', '0.3s'")
    endpoint: str | None = Field(
        default=None, max_length=200, description="A step of the plan; null: all requests"
    )
    max_iterations: int = Field(default=10, ge=1, le=50)

    @field_validator("target_ms", mode="before")
    @classmethod
    def _target(cls, value: Any) -> float:
        return parse_target_ms(value)


class IterationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: uuid.UUID = Field(description="A finished run of the budget's plan")


class IterationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    run_id: uuid.UUID
    analysis_id: uuid.UUID | None
    value_ms: float | None = Field(description="The SLI this run measured; null: no data")
    met: bool
    verdict: str | None = Field(description="The run's analysis verdict")
    change: float | None = Field(description="(value − previous value) / previous value")
    comparison: dict[str, Any] | None = Field(
        description="The analysis' comparison of this run with the previous iteration's, for "
        "the budget's SLI and scope: verdict (regression, improvement, unchanged …), p value, "
        "99 % interval"
    )
    top_finding: str | None
    created_at: datetime


class BudgetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    plan_id: uuid.UUID
    sli: str
    endpoint: str | None
    target_ms: float
    max_iterations: int
    status: Literal["running", "met", "exhausted"] = Field(
        description="running: iterations may be recorded; met: one was under the target; "
        "exhausted: the last allowed one was not"
    )
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    iterations: list[IterationOut] = Field(default_factory=list)
    links: dict[str, str] = Field(default_factory=dict)


assert set(BudgetSli.__args__) <= set(slis.LATENCY)  # type: ignore[attr-defined]
