"""Test doubles for outbound checks: HTTP listeners on loopback that count every connection,
and a Python-level resolver so test names never reach a real DNS server."""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

Answer = tuple[int, Any]  # status, JSON body
Respond = Callable[[str, str, dict[str, list[str]]], Answer]


@dataclass
class Seen:
    method: str
    path: str
    host: str | None
    query: dict[str, list[str]]
    body: bytes


@dataclass
class Listener:
    """An HTTP server on ``address``; ``connections`` counts accepted TCP connections (a
    refused outbound call must leave it at zero), ``requests`` what arrived."""

    address: str
    port: int = 0
    respond: Respond = field(default=lambda method, path, query: (200, {}))
    tls: ssl.SSLContext | None = None  # serve HTTPS; ``server_names`` records each SNI
    connections: int = 0
    server_names: list[str | None] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        listener = self

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[socket.socket, Any]:
                accepted = super().get_request()
                listener.connections += 1
                return accepted

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                query = parse_qs(parts.query)
                listener.requests.append(
                    Seen(
                        self.command,
                        parts.path,
                        self.headers.get("Host"),
                        query,
                        self.rfile.read(length),
                    )
                )
                status, body = listener.respond(self.command, parts.path, query)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if 300 <= status < 400:
                    self.send_header("Location", str(body))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = Server((self.address, self.port), Handler)
        if self.tls is not None:

            def sni(sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
                listener.server_names.append(name)

            self.tls.sni_callback = sni
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Listeners:
    """Started listeners, closed together: ``listen("127.0.0.2")`` → a :class:`Listener`."""

    def __init__(self) -> None:
        self.started: list[Listener] = []

    def __call__(
        self,
        address: str,
        port: int = 0,
        respond: Respond | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> Listener:
        listener = Listener(address, port, respond or (lambda *_: (200, {})), tls)
        self.started.append(listener)
        return listener

    def close(self) -> None:
        for listener in self.started:
            listener.close()


def listeners() -> Iterator[Listeners]:
    """The body of a ``listen`` fixture."""
    started = Listeners()
    try:
        yield started
    finally:
        started.close()


class FakeDNS:
    """``socket.getaddrinfo`` for test names: ``dns["metrics.perf.example"] = ["127.0.0.2"]``,
    or a callable answering each lookup anew (a rebinding name). Any other name but
    ``localhost`` (from /etc/hosts) and IP literals fails as unknown: no lookup leaves the
    machine. ``lookups`` counts the lookups of each test name, ``unknown`` lists the others."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.names: dict[str, list[str] | Callable[[], list[str]]] = {}
        self.lookups: dict[str, int] = {}
        self.unknown: list[str] = []

    def __setitem__(self, name: str, answer: list[str] | Callable[[], list[str]]) -> None:
        self.names[name] = answer

    def __call__(
        self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[tuple[Any, ...]]:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in self.names:
            try:
                socket.inet_pton(socket.AF_INET6 if ":" in name else socket.AF_INET, name)
                literal = True
            except OSError:
                literal = False
            if literal or name == "localhost":
                return list(self.real(host, port, family, type, proto, flags))
            self.unknown.append(name)
            raise socket.gaierror(socket.EAI_NONAME, f"{name}: unknown to the test resolver")
        self.lookups[name] = self.lookups.get(name, 0) + 1
        answer = self.names[name]
        addresses = answer() if callable(answer) else answer
        number = int(port or 0) if not isinstance(port, str) or port.isdigit() else 0
        kind = type or socket.SOCK_STREAM
        result: list[tuple[Any, ...]] = []
        for address in addresses:
            if ":" in address:
                result.append((socket.AF_INET6, kind, 6, "", (address, number, 0, 0)))
            else:
                result.append((socket.AF_INET, kind, 6, "", (address, number)))
        return result


def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    """The body of a ``dns`` fixture: the test resolver installed for one test."""
    fake = FakeDNS(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake
