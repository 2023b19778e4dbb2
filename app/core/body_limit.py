"""Request bodies are bounded while they stream in, never after they are in memory.

A declared ``Content-Length`` over the route's limit is refused before a byte is read; a body
without one (chunked) is counted as it arrives and refused the moment it passes the limit.
Either way the answer is a 413 problem (``payload_too_large``) naming the limit. Each route
prefix's limit sits a little above what its own validation allows (a plan document's 1 MB,
a dataset's 10 MB), so those checks still give their precise messages.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import PROBLEM_JSON, problem_body

KB, MB = 1024, 1024 * 1024
DEFAULT_LIMIT = 1 * MB + 64 * KB
# (path suffix or prefix fragment, limit): the first that matches applies.
LIMITS: tuple[tuple[str, int], ...] = (
    ("/datasets", 11 * MB),  # a 10 MB upload and its multipart envelope
    ("/history", 8 * MB),  # an import of up to 50,000 points
)


def limit_for(path: str) -> int:
    for fragment, limit in LIMITS:
        if fragment in path:
            return limit
    return DEFAULT_LIMIT


def _too_large(limit: int) -> str:
    return f"the request body is larger than this route's limit of {limit:,} bytes"


class BodyLimit:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, send, limit)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # Raised inside the app's own read of the body: its error handlers turn it
                    # into the 413 problem (FastAPI re-raises HTTPExceptions from body parsing).
                    raise HTTPException(413, detail=_too_large(limit))
            return message

        await self.app(scope, counted, send)

    @staticmethod
    async def _refuse(scope: Scope, send: Send, limit: int) -> None:
        body = json.dumps(
            problem_body(
                status=413,
                code="payload_too_large",
                title="Payload too large",
                detail=_too_large(limit),
                instance=scope["path"],
                limit_bytes=limit,
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
