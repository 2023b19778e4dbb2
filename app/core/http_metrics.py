"""HTTP request durations for ``/metrics``: a pure ASGI middleware (no BaseHTTPMiddleware, so
nothing is buffered and a server-sent-event stream still streams).

Each request is observed once, when its response starts (the ``http.response.start`` message:
status and headers), by the template of the route that served it (``scope["route"].path``,
e.g. ``/api/agents/performance-agent/runs/{run_id}``; ``unmatched`` when none did), method
(any other than the usual seven is ``other``) and status code. So a stream's figure is its
time to first byte, not how long it stayed open.
A request that raised before any response counts as a 500.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.metrics import HTTP_REQUEST_DURATION, UNMATCHED

# Any other method a client sends is one label, so it cannot add series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(scope: Scope) -> str:
    """The matched route's template, with the prefix it was included under: FastAPI may hand
    over the route as its router declared it (``/runs/{run_id}``), so the prefix is the part of
    the request's path before the longest tail the route's own pattern matches."""
    route: Any = scope.get("route")
    template = getattr(route, "path", None)
    pattern = getattr(route, "path_regex", None)
    if not isinstance(template, str):
        return UNMATCHED
    path = scope.get("path", "")
    if pattern is not None:
        for i, char in enumerate(path):
            if char == "/" and pattern.fullmatch(path[i:]):
                prefix = path[:i]
                return template if template.startswith(prefix) else prefix + template
    return template


class HTTPMetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        observed = False

        def observe(status: int) -> None:
            nonlocal observed
            observed = True
            HTTP_REQUEST_DURATION.labels(
                route=route_template(scope),
                method=scope["method"] if scope["method"] in METHODS else "other",
                status=str(status),
            ).observe(time.perf_counter() - started)

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start" and not observed:
                observe(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except BaseException:
            if not observed:
                observe(500)
            raise
