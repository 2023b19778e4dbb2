"""What uvicorn itself answers (a request that is not HTTP) is problem+json too."""

from __future__ import annotations

import json
import socket
import threading

import uvicorn
from fastapi import FastAPI

from app.core.http_protocol import PROTOCOL
from tests.conftest import free_port


def test_a_malformed_request_is_a_problem_not_text() -> None:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(FastAPI(), host="127.0.0.1", port=port, log_level="error", http=PROTOCOL)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            threading.Event().wait(0.02)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /\x00 NOT-HTTP\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    finally:
        server.should_exit = True
        thread.join(10)

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"content-type: application/problem+json" in head.lower()
    assert json.loads(body)["code"] == "bad_http_request"
