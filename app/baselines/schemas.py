from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class PromoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: uuid.UUID
    note: str | None = Field(default=None, max_length=2000)


class BaselineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    plan_id: uuid.UUID
    run_id: uuid.UUID
    environment: str
    note: str | None
    created_at: datetime
