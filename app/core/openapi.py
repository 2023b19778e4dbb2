"""Shared OpenAPI fragments, so every route documents its problem responses."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Problem(BaseModel):
    """RFC 9457 problem details; ``code`` is stable and machine-readable."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        400: "Malformed request body",
        403: "Not allowed for this caller",
        404: "Unknown id",
        409: "Not possible in the resource's current state",
        413: "Body too large",
        415: "Unsupported content type",
        422: "Invalid input or guardrail violation",
    }
    return {
        status: {
            "model": Problem,
            "description": descriptions.get(status, "Problem"),
            "content": {"application/problem+json": {}},
        }
        for status in statuses
    }
