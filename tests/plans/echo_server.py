"""A tiny HTTP/1.1 server on 127.0.0.1 that records every request exactly as it arrived.

It reads requests itself instead of through ``http.server``, whose ``email.message`` view
hands header values over decoded as Latin-1: here each value keeps its exact bytes, and the
request target is kept undecoded. Each request is answered 200 with a small JSON body, or
with the body registered for its path in ``responses``.
"""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

DEFAULT_RESPONSE = ("application/json", json.dumps({"ok": True}).encode())
MAX_HEAD = 256 * 1024


@dataclass(frozen=True)
class Recorded:
    method: str
    target: bytes  # the raw request target: path and query, percent-encoding untouched
    headers: list[tuple[str, bytes]]
    body: bytes

    @property
    def path(self) -> str:
        return self.target.split(b"?", 1)[0].decode("ascii")

    @property
    def query(self) -> str:
        parts = self.target.split(b"?", 1)
        return parts[1].decode("ascii") if len(parts) == 2 else ""

    def header(self, name: str) -> str | None:
        """The one value of a header (names compare case-insensitively), as UTF-8 text."""
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) <= 1, f"{name} sent {len(values)} times"
        return values[0].decode("utf-8") if values else None


@dataclass
class EchoServer:
    url: str
    requests: list[Recorded] = field(default_factory=list)
    # path (without query) -> (content type, body) answered instead of DEFAULT_RESPONSE
    responses: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.responses.clear()

    def taken(self) -> list[Recorded]:
        with self.lock:
            return list(self.requests)


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        while self._one():  # keep-alive: k6 reuses the connection between steps
            pass

    def _one(self) -> bool:
        request_line = self.rfile.readline(MAX_HEAD)
        if not request_line.strip():
            return False
        method, target, _version = request_line.rstrip(b"\r\n").split(b" ", 2)
        headers: list[tuple[str, bytes]] = []
        while True:
            line = self.rfile.readline(MAX_HEAD).rstrip(b"\r\n")
            if not line:
                break
            name, _, value = line.partition(b":")
            headers.append((name.decode("ascii"), value.strip(b" \t")))
        lengths = [v for k, v in headers if k.lower() == "content-length"]
        chunked = any(k.lower() == "transfer-encoding" for k, _ in headers)
        body = self._chunked() if chunked else self.rfile.read(int(lengths[0]) if lengths else 0)
        echo = self.server.echo
        record = Recorded(method.decode("ascii"), target, headers, body)
        with echo.lock:
            echo.requests.append(record)
            route = target.split(b"?", 1)[0].decode("latin-1")
            content_type, payload = echo.responses.get(route, DEFAULT_RESPONSE)
        self.wfile.write(
            b"HTTP/1.1 200 OK\r\n"
            + f"Content-Type: {content_type}\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        self.wfile.flush()
        return True

    def _chunked(self) -> bytes:
        body = b""
        while size := int(self.rfile.readline(MAX_HEAD).split(b";")[0], 16):
            body += self.rfile.read(size)
            self.rfile.readline()
        while self.rfile.readline(MAX_HEAD).strip():  # trailers
            pass
        return body


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    echo: EchoServer


@pytest.fixture(scope="session")
def echo_server() -> Iterator[EchoServer]:
    """An ``EchoServer`` on 127.0.0.1 (a free port), stopped at the end of the session."""
    server = _Server(("127.0.0.1", 0), _Handler)
    host, port = server.server_address[:2]
    server.echo = EchoServer(url=f"http://{host!s}:{port}")
    thread = threading.Thread(target=server.serve_forever, name="echo-server", daemon=True)
    thread.start()
    try:
        yield server.echo
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
