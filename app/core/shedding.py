"""Load shedding: a bounded number of requests in flight per API process.

Past the bound a request is answered at once — 503, problem+json ``overloaded.in_flight``,
``Retry-After`` — instead of joining a queue that ends in 30-second pool timeouts, with the
server still working through requests whose clients have gone. Health checks and
``/metrics`` are never shed (an orchestrator must see a busy process as alive and ready), nor
are live streams (long-lived by design; they hold no database connection while they wait).
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from app.core import metrics
from app.core.errors import PROBLEM_JSON, problem_body

EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})


def exempt(path: str) -> bool:
    return path in EXEMPT or path.endswith("/stream")


class LoadShedding:
    def __init__(self, app: ASGIApp, *, limit: int, retry_after_s: int) -> None:
        self.app = app
        self.limit = limit
        self.retry_after = str(retry_after_s)
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            metrics.SHED.labels(reason="in_flight").inc()
            await self._refuse(scope, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body = json.dumps(
            problem_body(
                status=503,
                code="overloaded.in_flight",
                title="Overloaded",
                detail=f"this process is serving {self.limit} requests already; retry after "
                f"{self.retry_after} s",
                instance=scope["path"],
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", self.retry_after.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
