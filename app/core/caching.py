"""Conditional GETs: an ETag on every resource that can carry one, 304 when it has not changed.

The tag is a hash of the bytes sent, so it is right whatever produced them. ``immutable``
resources (an analysis, its reports: stored once, never edited) may also be kept by the
client for a day without asking; the rest (a run, which changes until it finishes) are
``no-cache``: kept, but revalidated on each use — a poller that sends ``If-None-Match``
gets an empty 304 until something changed.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

from fastapi import Request, Response

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


class Bodies:
    """Response bodies of resources that can no longer change (a finished run, an analysis),
    kept by this process so that a poller's GET costs no query: least recently used first
    out, bounded in entries and bytes."""

    def __init__(self, max_entries: int = 4096, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.size = 0
        self._bodies: OrderedDict[Any, bytes] = OrderedDict()

    def get(self, key: Any) -> bytes | None:
        body = self._bodies.get(key)
        if body is not None:
            self._bodies.move_to_end(key)
        return body

    def put(self, key: Any, body: bytes) -> None:
        if len(body) > self.max_bytes // 16:
            return
        old = self._bodies.pop(key, None)
        self.size -= len(old) if old is not None else 0
        self._bodies[key] = body
        self.size += len(body)
        while len(self._bodies) > self.max_entries or self.size > self.max_bytes:
            _, dropped = self._bodies.popitem(last=False)
            self.size -= len(dropped)


def bodies_of(request: Request) -> Bodies:
    state = request.app.state
    found: Bodies | None = getattr(state, "immutable_bodies", None)
    if found is None:
        found = state.immutable_bodies = Bodies()
    return found
