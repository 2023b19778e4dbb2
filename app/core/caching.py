"""Conditional GETs: an ETag on every resource that can carry one, 304 when it has not changed.

The tag is a hash of the bytes sent, so it is right whatever produced them. ``immutable``
resources (an analysis, its reports: stored once, never edited) may also be kept by the
client for a day without asking; the rest (a run, which changes until it finishes) are
``no-cache``: kept, but revalidated on each use — a poller that sends ``If-None-Match``
gets an empty 304 until something changed.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
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


class RecentPages:
    """List pages as they were answered in the last ``ttl_s``: a burst of pollers asking for
    the same page costs one query. Any write through this process forgets them all."""

    MAX_PAGES = 1024

    def __init__(self) -> None:
        self._pages: dict[str, tuple[float, bytes, dict[str, str]]] = {}

    def get(self, key: str, ttl_s: float) -> tuple[bytes, dict[str, str]] | None:
        found = self._pages.get(key)
        if found is None or time.monotonic() - found[0] >= ttl_s:
            return None
        return found[1], found[2]

    def put(self, key: str, body: bytes, headers: dict[str, str]) -> None:
        if len(self._pages) >= self.MAX_PAGES:
            self._pages.clear()
        self._pages[key] = (time.monotonic(), body, headers)

    def forget(self) -> None:
        self._pages.clear()


def recent_pages(state: Any) -> RecentPages:
    found: RecentPages | None = getattr(state, "recent_pages", None)
    if found is None:
        found = state.recent_pages = RecentPages()
    return found


async def recent_page(
    request: Request, response: Response, build: Callable[[], Awaitable[Any]]
) -> Any:
    """The page ``build`` makes (a pydantic model), or the same page made less than
    ``list_cache_s`` ago by this process, as bytes with its ``Link`` header."""
    ttl = float(request.app.state.settings.list_cache_s)
    if ttl <= 0:
        return await build()
    pages = recent_pages(request.app.state)
    key = f"{request.url.path}?{request.url.query}"
    found = pages.get(key, ttl)
    if found is None:
        page = await build()
        link = {"Link": response.headers["link"]} if "link" in response.headers else {}
        found = (page.model_dump_json(by_alias=True).encode(), link)
        pages.put(key, *found)
    body, headers = found
    return Response(body, media_type="application/json", headers=headers)


class ForgetPagesOnWrite:
    """A write (any method but GET, HEAD, OPTIONS) through this process forgets the recent
    list pages once it has committed — its response is starting — so its own caller, and
    anyone else asking this process, sees it in the next list."""

    READS = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in self.READS:
            await self.app(scope, receive, send)
            return

        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start" and "app" in scope:
                recent_pages(scope["app"].state).forget()
            await send(message)

        await self.app(scope, receive, sending)
