"""A local fake LLM server speaking the OpenAI Chat Completions and Anthropic Messages wire formats.

The real ``openai`` and ``anthropic`` SDKs are built on ``httpx2``, which respx cannot intercept,
so tests point them at this server through their ``base_url`` instead::

    llm.enqueue(Reply(json={"ok": True}), Reply(status=429))
    client = openai.AsyncOpenAI(api_key="test", base_url=llm.openai_base_url, max_retries=0)

Routes: ``POST /v1/chat/completions`` (OpenAI) and ``POST /v1/messages`` (Anthropic); anything
else is a 404. Each request is recorded, then answered with the next scripted ``Reply`` (FIFO).
With no reply scripted the answer is a 500 that says so (with ``x-should-retry: false`` so the
SDKs do not retry it). Requests the real APIs would reject before doing any work (no API key, no
``anthropic-version`` header, no ``model``/``messages``/``max_tokens``, a body that is not a JSON
object) are answered 400/401 in the provider's format *without* consuming a reply.

Mind the SDKs' retries: both retry timeouts, connection errors, 408, 409, 429 and >= 500 twice
by default, and every retry takes the next scripted reply. Pass ``max_retries=0`` unless the
test is about retrying, and use ``Reply.headers`` (``retry-after``, ``retry-after-ms``,
``x-should-retry``) to steer it.

Wire notes (openai 3.57, anthropic 2.14): the OpenAI base URL must end in ``/v1``; the Anthropic
one must not (its SDK requests ``/v1/messages``). anthropic 2.x sends an ``api_key`` as
``Authorization: Bearer``, not ``x-api-key``; either is accepted here. anthropic maps 529 to
``OverloadedError`` and 503 to ``ServiceUnavailableError``, both ``InternalServerError``s.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

JSONValue = dict[str, Any] | list[Any]

OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"
MAX_BODY = 32 * 1024 * 1024

# Error `type` per status in each provider's error body (https://platform.openai.com/docs/guides/
# error-codes, https://docs.anthropic.com/en/api/errors). Anything unlisted: the 5xx/4xx default.
OPENAI_ERROR_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", "service_unavailable"),
}
ANTHROPIC_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


@dataclass
class Reply:
    """One scripted answer. By default a 200 with an empty text answer.

    ``json`` is the structured answer: OpenAI gets ``message.content = json.dumps(json)``;
    Anthropic gets a ``tool_use`` block whose ``input`` is ``json`` (it must then be a dict), named
    after the tool the request's ``tool_choice`` names, else its first tool. ``text`` is a plain
    text answer: OpenAI ``content`` when there is no ``json``; an Anthropic ``text`` block, which
    comes before the ``tool_use`` block when both are given.
    """

    json: JSONValue | None = None
    text: str | None = None
    # Seconds to wait before answering (to exceed client timeouts). ``FakeLLM.stop`` cuts it
    # short; a client that gave up meanwhile has closed the socket, which is ignored.
    delay_s: float = 0.0
    # Non-200: an error body in the provider's own format (``error_message``, ``error_type`` and
    # ``error_code`` override its parts).
    status: int = 200
    input_tokens: int = 100
    output_tokens: int = 50
    # Sent verbatim as OpenAI ``finish_reason`` / Anthropic ``stop_reason`` (e.g. "length" /
    # "max_tokens" for a truncated answer). Default: "stop"; "tool_use" or "end_turn".
    stop_reason: str | None = None
    error_message: str | None = None
    error_type: str | None = None
    error_code: str | None = None
    # Extra response headers, e.g. {"retry-after": "0"} or {"x-should-retry": "false"}.
    headers: dict[str, str] = field(default_factory=dict)
    # Sent as the whole response body instead of the generated one (a str or bytes verbatim, a
    # dict/list as JSON), to test malformed answers.
    raw_body: str | bytes | JSONValue | None = None


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it."""

    method: str
    path: str  # without the query string
    headers: dict[str, str]  # names lower-cased
    body: Any  # parsed JSON; the raw text when it was not JSON; None when empty

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class FakeLLM:
    """A threaded HTTP server on 127.0.0.1 (a free port). ``start()`` it, ``stop()`` it after."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- scripting ------------------------------------------------------------------------

    @property
    def openai_base_url(self) -> str:
        """For ``AsyncOpenAI(base_url=...)``: the SDK appends ``/chat/completions``."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """For ``AsyncAnthropic(base_url=...)``: the SDK appends ``/v1/messages`` itself."""
        return self.url

    def enqueue(self, *replies: Reply) -> None:
        """Script the next answers, first in first out."""
        with self._lock:
            self._replies.extend(replies)

    @property
    def pending(self) -> int:
        """How many scripted replies have not been used yet."""
        with self._lock:
            return len(self._replies)

    def reset(self) -> None:
        """Forget recorded requests and unused replies."""
        with self._lock:
            self.requests.clear()
            self._replies.clear()

    def wait_for_requests(self, count: int = 1, timeout: float = 5.0) -> list[Recorded]:
        """Block until ``count`` requests have arrived (from a thread: ``asyncio.to_thread``)."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"fake_llm: {len(self.requests)} of {count} requests arrived")
            return list(self.requests)

    def _record(self, request: Recorded) -> None:
        with self._arrived:
            self.requests.append(request)
            self._arrived.notify_all()

    def _next_reply(self) -> Reply | None:
        with self._lock:
            return self._replies.popleft() if self._replies else None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeLLM:
        if self._server is not None:
            raise RuntimeError("FakeLLM already started")
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        host, port = server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-llm",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop open connections; returns promptly even mid slow reply."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()  # wakes replies sleeping on delay_s
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(5)
        server.join_handlers(2)
        self._server = self._thread = None

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- answers ---------------------------------------------------------------------------

    def _wait(self, delay_s: float) -> bool:
        """Sleep ``delay_s``; False when the server is stopping meanwhile."""
        return not self._stopping.wait(delay_s) if delay_s > 0 else not self._stopping.is_set()


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    """A started ``FakeLLM``, stopped after the test. Other test packages can import it."""
    server = FakeLLM().start()
    try:
        yield server
    finally:
        server.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeLLM

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._open: dict[socket.socket, threading.Thread] = {}
        self._open_lock = threading.Lock()

    def opened(self, conn: socket.socket) -> None:
        with self._open_lock:
            self._open[conn] = threading.current_thread()

    def closed(self, conn: socket.socket) -> None:
        with self._open_lock:
            self._open.pop(conn, None)

    def close_connections(self) -> None:
        """Unblock handler threads waiting on idle keep-alive connections."""
        with self._open_lock:
            conns = list(self._open)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def join_handlers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._open_lock:
            threads = list(self._open.values())
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out has closed its socket; anything else is a bug worth printing.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect
    timeout = 30  # idle keep-alive connections are dropped after this
    server_version = "fake-llm/1"
    sys_version = ""

    _routes: ClassVar[dict[str, str]] = {OPENAI_PATH: "openai", ANTHROPIC_PATH: "anthropic"}

    def setup(self) -> None:
        super().setup()
        self.server.opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read ``FakeLLM.requests`` instead

    # -- request handling ------------------------------------------------------------------

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def _handle(self) -> None:
        fake = self.server.fake
        path = self.path.split("?", 1)[0]
        raw = self._read_body()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in self.headers.items()}
        fake._record(Recorded(self.command, path, headers, body))

        provider = self._routes.get(path) if self.command == "POST" else None
        if provider is None:
            hint = (
                " (OpenAI base_url must end in /v1; Anthropic base_url must not)"
                if path.endswith(("/chat/completions", "/messages"))
                else ""
            )
            message = f"fake_llm: no route for {self.command} {path}{hint}"
            self._send_json(404, _generic_error(404, "not_found_error", message))
            return
        problem = _invalid(provider, headers, body)
        if problem is not None:
            status, kind, message = problem
            self._send_json(status, _error_body(provider, status, message, kind, None))
            return

        reply = fake._next_reply()
        if reply is None:
            message = f"fake_llm: no reply scripted for {self.command} {path}"
            self._send_json(
                500,
                _error_body(provider, 500, message, None, None),
                {"x-should-retry": "false"},
            )
            return
        if not fake._wait(reply.delay_s):
            self.close_connection = True  # stopping: hang up without an answer
            return
        try:
            status, payload = _answer(provider, reply, body)
        except _ScriptError as err:
            self._send_json(
                500, _error_body(provider, 500, str(err), None, None), {"x-should-retry": "false"}
            )
            return
        request_id_header = "x-request-id" if provider == "openai" else "request-id"
        extra = {request_id_header: f"req_{uuid.uuid4().hex}", **reply.headers}
        self._send_json(status, payload, extra)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            while size := int(self.rfile.readline(65537).split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline(65537).strip():  # trailers
                pass
            return b"".join(chunks)
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(min(length, MAX_BODY)) if length > 0 else b""

    def _send_json(
        self, status: int, payload: object, headers: dict[str, str] | None = None
    ) -> None:
        if isinstance(payload, bytes):
            data = payload
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = json.dumps(payload).encode()
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Overloaded" if status == 529 else "Unknown"
        try:
            self.send_response(status, reason)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True  # the client gave up (timed out) first


class _ScriptError(Exception):
    """A ``Reply`` that cannot be turned into an answer for this request."""


def _invalid(provider: str, headers: dict[str, str], body: Any) -> tuple[int, str, str] | None:
    """What the real API would reject before doing any work, as (status, type, message)."""
    if provider == "openai":
        if not headers.get("authorization", "").startswith("Bearer "):
            return 401, "invalid_request_error", "You didn't provide an API key."
    else:
        if not (headers.get("x-api-key") or headers.get("authorization")):
            return 401, "authentication_error", "x-api-key header is required"
        if not headers.get("anthropic-version"):
            return 400, "invalid_request_error", "anthropic-version: header is required"
    if not isinstance(body, dict):
        return 400, "invalid_request_error", "The request body is not a JSON object"
    required = ["model", "messages"] + (["max_tokens"] if provider == "anthropic" else [])
    missing = [name for name in required if name not in body]
    if missing:
        return 400, "invalid_request_error", f"{missing[0]}: Field required"
    return None


def _answer(provider: str, reply: Reply, request: dict[str, Any]) -> tuple[int, object]:
    if reply.raw_body is not None:
        return reply.status, reply.raw_body
    if reply.status != 200:
        message = reply.error_message or f"fake_llm: scripted {reply.status}"
        body = _error_body(provider, reply.status, message, reply.error_type, reply.error_code)
        return reply.status, body
    if provider == "openai":
        return 200, _openai_completion(reply, request)
    return 200, _anthropic_message(reply, request)


def _openai_completion(reply: Reply, request: dict[str, Any]) -> dict[str, Any]:
    content = json.dumps(reply.json) if reply.json is not None else (reply.text or "")
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request["model"],
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": content,
                    "refusal": None,
                    "annotations": [],
                },
                "finish_reason": reply.stop_reason or "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
        },
        "system_fingerprint": None,
    }


def _anthropic_message(reply: Reply, request: dict[str, Any]) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.text is not None:
        content.append({"type": "text", "text": reply.text})
    if reply.json is not None:
        if not isinstance(reply.json, dict):
            raise _ScriptError("fake_llm: an Anthropic tool_use input must be a JSON object")
        content.append(
            {
                "type": "tool_use",
                "id": f"toolu_{uuid.uuid4().hex[:24]}",
                "name": _tool_name(request),
                "input": reply.json,
            }
        )
    if not content:
        content.append({"type": "text", "text": ""})
    default_stop = "tool_use" if reply.json is not None else "end_turn"
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": request["model"],
        "content": content,
        "stop_reason": reply.stop_reason or default_stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": reply.input_tokens,
            "output_tokens": reply.output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def _tool_name(request: dict[str, Any]) -> str:
    choice = request.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "tool" and choice.get("name"):
        return str(choice["name"])
    tools = request.get("tools")
    if isinstance(tools, list) and tools and isinstance(tools[0], dict) and tools[0].get("name"):
        return str(tools[0]["name"])
    raise _ScriptError("fake_llm: Reply.json needs a tool, but the request names none")


def _error_body(
    provider: str, status: int, message: str, kind: str | None, code: str | None
) -> dict[str, Any]:
    if provider == "openai":
        default_kind, default_code = OPENAI_ERROR_TYPES.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None)
        )
        return {
            "error": {
                "message": message,
                "type": kind or default_kind,
                "param": None,
                "code": code if code is not None else default_code,
            }
        }
    default_kind = "api_error" if status >= 500 else "invalid_request_error"
    error: dict[str, Any] = {
        "type": kind or ANTHROPIC_ERROR_TYPES.get(status, default_kind),
        "message": message,
    }
    if code is not None:
        error["details"] = {"error_code": code}
    return {"type": "error", "error": error, "request_id": f"req_{uuid.uuid4().hex[:24]}"}


def _generic_error(status: int, kind: str, message: str) -> dict[str, Any]:
    """An error body both SDKs read the message from (for requests to no known route)."""
    return {
        "type": "error",
        "error": {"type": kind, "message": message, "param": None, "code": str(status)},
    }
