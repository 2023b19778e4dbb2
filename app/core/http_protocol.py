"""uvicorn's HTTP protocol with its one answer of its own — a malformed request's 400 — as
problem+json, like every other error of the service (uvicorn writes ``text/plain``).

``perf-agent serve`` runs uvicorn with ``http=PROTOCOL`` (httptools, uvicorn's default when
installed, as here).
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.core.errors import PROBLEM_JSON, problem_body

PROTOCOL = "app.core.http_protocol:ProblemHttpToolsProtocol"


def bad_request_body(msg: str) -> bytes:
    return json.dumps(
        problem_body(
            status=400,
            code="bad_http_request",
            title="Bad request",
            detail=f"the request is not valid HTTP/1.1: {msg.rstrip('.')}",
            instance="",
        )
    ).encode()


class ProblemHttpToolsProtocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        body = bad_request_body(msg)
        content = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: " + PROBLEM_JSON.encode() + b"\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()
