"""Go pprof CPU profiles over HTTP on 127.0.0.1: a real Go profile (a committed one, and a
live Go target when Go is installed), a profile of known structure from this test's own
encoder, and every way the endpoint fails."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from app.profiling import pprof

HERE = Path(__file__).parent
# Recorded from tests/profiling/pproftarget (Go 1.19, GET /work under load) with
# ?seconds=2; `go tool pprof -top` on it says: 179 samples (1.79 s of CPU in 2.07 s),
# main.hotSum flat 77.09 % (138) cum 83.24 % (149), main.coldSum flat 11.17 % (20) cum
# 11.73 % (21), main.work cum 94.97 % (170).
GO_PROFILE = HERE / "fixtures" / "go-cpu.pb.gz"


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    delay_s: float = 0.0


@dataclass
class Server:
    url: str
    replies: dict[str, Reply] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server("")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.seen.append(self.path)
            reply = state.replies.get(urlsplit(self.path).path, Reply(404, b"404 page not found"))
            time.sleep(reply.delay_s)
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
            except OSError:  # the client gave up (the timeout test)
                pass

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


async def test_a_real_go_profile_agrees_with_go_tool_pprof(server: Server) -> None:
    server.replies["/debug/pprof/profile"] = Reply(body=GO_PROFILE.read_bytes())
    async with httpx.AsyncClient() as client:
        profile = await pprof.fetch(client, f"{server.url}/debug/pprof/profile", 2)
    assert server.seen == ["/debug/pprof/profile?seconds=2"]
    assert profile.status == "ok", profile.reason
    assert profile.source == "pprof"
    assert profile.samples == 179
    assert profile.seconds == pytest.approx(2.07, abs=0.01)
    hot, cold = profile.functions[:2]
    assert (hot.name, hot.self_samples, hot.total_samples) == ("main.hotSum", 138, 149)
    assert hot.self_share == pytest.approx(0.7709, abs=1e-4)
    assert hot.total_share == pytest.approx(0.8324, abs=1e-4)
    assert hot.location.endswith("main.go:19")  # the loop's line
    assert (cold.name, cold.self_samples, cold.total_samples) == ("main.coldSum", 20, 21)
    work = next(f for f in profile.functions if f.name == "main.work")
    assert work.total_samples == 170
    assert work.self_share == 0
    assert profile.stacks[0].frames[-2:] == ["main.work", "main.hotSum"]
    assert profile.stacks[0].frames[0] == "net/http.(*conn).serve"


@pytest.fixture
def go_target(tmp_path: Path) -> Iterator[str]:
    """tests/profiling/pproftarget built with the machine's Go (offline) and started; its URL."""
    if shutil.which("go") is None:
        pytest.skip("Go is not installed")
    binary = tmp_path / "pproftarget"
    environment = {
        **os.environ,
        "GOCACHE": str(tmp_path / "gocache"),
        "GOPATH": str(tmp_path / "gopath"),
        "GOPROXY": "off",
        "GOFLAGS": "-mod=mod",
        "GOTOOLCHAIN": "local",
    }
    subprocess.run(
        ["go", "build", "-o", str(binary), "."],
        cwd=HERE / "pproftarget",
        env=environment,
        check=True,
        capture_output=True,
        timeout=120,
    )
    target = subprocess.Popen([binary], stdout=subprocess.PIPE, text=True)
    try:
        assert target.stdout is not None
        yield f"http://127.0.0.1:{int(target.stdout.readline())}"
    finally:
        target.kill()
        target.wait()
        if target.stdout is not None:
            target.stdout.close()


async def test_a_live_go_target(go_target: str) -> None:
    """Go's own net/http/pprof, from a target built from tests/profiling/pproftarget."""
    base = go_target
    stop = threading.Event()

    def drive() -> None:
        with httpx.Client() as client:
            while not stop.is_set():
                try:
                    client.get(f"{base}/work")
                except httpx.HTTPError:
                    return

    threads = [threading.Thread(target=drive, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        async with httpx.AsyncClient() as client:
            profile = await pprof.fetch(client, f"{base}/debug/pprof/profile", 1)
            missing = await pprof.fetch(client, f"{base}/debug/pprof/nothing", 1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert profile.status == "ok", profile.reason
    assert profile.samples > 20
    assert profile.functions[0].name == "main.hotSum"
    assert profile.functions[0].self_share > 0.4
    assert missing.status == "unavailable"


# ---- a profile of known structure from this test's own encoder -------------------------


def _encode() -> bytes:
    """Functions main (m.go), handler, query (inlined into handler), fib (recursive);
    one unsymbolized location. Samples (leaf first): query←handler←main ×5,
    handler←main ×3, fib←fib←main ×1, 0xdead ×1."""
    message = pprof.ProfileMessage()
    strings = ["", "samples", "count", "cpu", "nanoseconds", "main", "handler", "query", "fib"]
    strings += ["m.go", "/bin/target"]
    message.string_table.extend(strings)
    for type_, unit in ((1, 2), (3, 4)):
        message.sample_type.add(type=type_, unit=unit)
    message.period_type.type, message.period_type.unit, message.period = 3, 4, 10_000_000
    message.duration_nanos = 1_500_000_000
    for fid, name, start in ((1, 5, 10), (2, 6, 20), (3, 7, 30), (4, 8, 40)):
        message.function.add(id=fid, name=name, filename=9, start_line=start)
    message.mapping.add(id=1, filename=10)
    message.location.add(id=1, line=[{"function_id": 1, "line": 12}])
    # query inlined into handler at one address: callee first, caller last.
    message.location.add(
        id=2, line=[{"function_id": 3, "line": 31}, {"function_id": 2, "line": 22}]
    )
    message.location.add(id=3, line=[{"function_id": 2, "line": 25}])
    message.location.add(id=4, line=[{"function_id": 4, "line": 41}])
    message.location.add(id=5, mapping_id=1, address=0xDEAD)
    message.sample.add(location_id=[2, 1], value=[5, 50_000_000])
    message.sample.add(location_id=[3, 1], value=[3, 30_000_000])
    message.sample.add(location_id=[4, 4, 1], value=[1, 10_000_000])
    message.sample.add(location_id=[5], value=[1, 10_000_000])
    return bytes(message.SerializeToString())


@pytest.mark.parametrize("compress", [True, False])
def test_known_structure(compress: bool) -> None:
    raw = _encode()
    profile = pprof.from_bytes(gzip.compress(raw) if compress else raw)
    assert profile.status == "ok", profile.reason
    assert (profile.samples, profile.seconds) == (10, 1.5)
    by_name = {f.name: f for f in profile.functions}
    assert [f.name for f in profile.functions][:2] == ["query", "handler"]
    assert (by_name["query"].self_share, by_name["query"].total_share) == (0.5, 0.5)
    assert by_name["query"].location == "m.go:31"
    assert (by_name["handler"].self_share, by_name["handler"].total_share) == (0.3, 0.8)
    assert by_name["handler"].location == "m.go:25"
    assert (by_name["main"].self_share, by_name["main"].total_share) == (0.0, 0.9)
    assert by_name["fib"].total_share == 0.1  # recursion counted once per sample
    assert by_name["0xdead"].location == "/bin/target"
    assert profile.stacks[0].frames == ["main", "handler", "query"]


def test_an_empty_profile_is_unavailable() -> None:
    message = pprof.ProfileMessage()
    message.string_table.extend(["", "samples", "count"])
    message.sample_type.add(type=1, unit=2)
    profile = pprof.from_bytes(gzip.compress(message.SerializeToString()))
    assert profile.status == "unavailable"
    assert "no samples" in (profile.reason or "")


# ---- the endpoint's failures -------------------------------------------------------------


async def test_no_pprof_on_the_target(server: Server) -> None:
    async with httpx.AsyncClient() as client:
        profile = await pprof.fetch(client, f"{server.url}/debug/pprof/profile", 1)
    assert profile.status == "unavailable"
    assert "net/http/pprof" in (profile.reason or "")


async def test_profiling_already_in_use(server: Server) -> None:
    # What Go answers while another CPU profile of the process is running.
    body = b"Could not enable CPU profiling: cpu profiling already in use\n"
    server.replies["/debug/pprof/profile"] = Reply(500, body)
    async with httpx.AsyncClient() as client:
        profile = await pprof.fetch(client, f"{server.url}/debug/pprof/profile", 1)
    assert profile.status == "failed"
    assert "500: Could not enable CPU profiling" in (profile.reason or "")


async def test_not_a_profile(server: Server) -> None:
    server.replies["/p"] = Reply(body=b"\x1f\x8bnot gzip at all")
    server.replies["/q"] = Reply(body=b"\xff\xff\xff\xff not protobuf")
    async with httpx.AsyncClient() as client:
        gz = await pprof.fetch(client, f"{server.url}/p", 1)
        pb = await pprof.fetch(client, f"{server.url}/q", 1)
    assert (gz.status, pb.status) == ("failed", "failed")
    assert "gzip" in (gz.reason or "")
    assert "profile.proto" in (pb.reason or "")


async def test_nothing_listening() -> None:
    async with httpx.AsyncClient() as client:
        profile = await pprof.fetch(client, "http://127.0.0.1:9/debug/pprof/profile", 1)
    assert profile.status == "unavailable"
    assert "cannot connect" in (profile.reason or "")


async def test_a_target_that_does_not_answer_in_time(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pprof, "RESPONSE_GRACE_S", 0.2)
    server.replies["/slow"] = Reply(body=_encode(), delay_s=2.5)
    async with httpx.AsyncClient() as client:
        profile = await pprof.fetch(client, f"{server.url}/slow", 1)
    assert profile.status == "failed"
    assert "did not answer" in (profile.reason or "")


async def test_a_bad_url() -> None:
    async with httpx.AsyncClient() as client:
        profile = await pprof.fetch(client, "http://[::1", 1)
    assert profile.status == "failed"
