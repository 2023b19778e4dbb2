from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="Increasing; page back with `before=<the last id>`")
    at: datetime
    actor: str = Field(description="The key's owner, `cli (local)` or `anonymous (auth off)`")
    actor_key_id: uuid.UUID | None
    action: str = Field(description="e.g. plan.created, plan.approved, run.queued, key.revoked")
    object_type: str
    object_id: str | None
    detail: dict[str, Any]


class ApiKeyOut(BaseModel):
    """A key as listed: never the key itself, which only its creator ever sees."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    prefix: str
    owner: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class WhoAmI(BaseModel):
    """The caller as the service sees it: who actions are recorded as, and what it may do."""

    owner: str = Field(description="Recorded as the actor of what this key does")
    key_id: uuid.UUID | None = Field(description="null when authentication is off")
    scopes: list[str]
    auth: bool = Field(description="False: authentication is off (local development)")
