"""Conditional GETs: an ETag on every resource that can carry one, 304 when it has not changed.

The tag is a hash of the bytes sent, so it is right whatever produced them. ``immutable``
resources (an analysis, its reports: stored once, never edited) may also be kept by the
client for a day without asking; the rest (a run, which changes until it finishes) are
``no-cache``: kept, but revalidated on each use — a poller that sends ``If-None-Match``
gets an empty 304 until something changed.
"""

from __future__ import annotations

import hashlib

from fastapi import Request, Response
from pydantic import BaseModel

IMMUTABLE = "private, max-age=86400, immutable"
REVALIDATE = "private, no-cache"


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def _matches(request: Request, etag: str) -> bool:
    wanted = request.headers.get("if-none-match")
    if not wanted:
        return False
    tags = {t.strip().removeprefix("W/") for t in wanted.split(",")}
    return "*" in tags or etag in tags


def conditional(
    request: Request,
    body: bytes,
    *,
    media_type: str,
    immutable: bool = False,
) -> Response:
    etag = etag_of(body)
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE if immutable else REVALIDATE}
    if _matches(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def conditional_json(request: Request, model: BaseModel, *, immutable: bool = False) -> Response:
    return conditional(
        request, model.model_dump_json(by_alias=True).encode(), media_type="application/json",
        immutable=immutable,
    )  # fmt: skip
