"""Routes whose body is a pydantic model take JSON only; anything else is a 415 problem.

FastAPI parses such a body only when it is sent as ``application/json`` (or ``…+json``);
with any other type, or none, the raw bytes reach the model and the client gets a puzzling
422 (``body: Input should be a valid dictionary``). The validation-error handler asks
:func:`unsupported_body_type` first, so every such route, in every router, answers a wrong or
missing ``Content-Type`` the way the hand-read ``/plan`` body does: 415 with the accepted types.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import Request, params

from app.core.errors import UnsupportedMediaType
from app.core.media import is_json, media_type

JSON_BODY_TYPES = ("application/json",)


def expects_json_body(route: Any) -> bool:
    """True for a route FastAPI reads a JSON body for (a model, not a form or file)."""
    body_field = getattr(route, "body_field", None)
    if body_field is None:
        return False
    return not isinstance(body_field.field_info, params.Form | params.File)


def unsupported_body_type(
    request: Request, errors: Iterable[dict[str, Any]]
) -> UnsupportedMediaType | None:
    """The 415 problem for a body that failed validation because it was not sent as JSON."""
    content_type = request.headers.get("content-type")
    if is_json(content_type) or not expects_json_body(request.scope.get("route")):
        return None
    if not any(tuple(err.get("loc", ()))[:1] == ("body",) for err in errors):
        return None  # an optional body left out: the other errors are the ones to report
    sent = media_type(content_type)
    return UnsupportedMediaType(
        f"send the body as application/json, not {sent}"
        if sent
        else "send the body as application/json (the request had no Content-Type)",
        accepted=list(JSON_BODY_TYPES),
    )
