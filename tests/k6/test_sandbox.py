"""The k6 sandbox on this machine's kernel: bubblewrap for files, nftables for the network.

Every test runs the real k6 in the real sandbox; a listener on 127.0.0.2 (standing in for a
production host) and one on another 127.0.0.1 port count every connection that reaches them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from app.core.settings import Settings
from app.k6 import sandbox
from app.k6.process import ScriptRejected, inspect_script, run_k6

pytestmark = [
    pytest.mark.k6,
    pytest.mark.skipif(
        not sandbox.status(Settings()).available,
        reason=f"no sandbox here: {sandbox.status(Settings()).reason} (.ci/run installs it)",
    ),
]


class Listener:
    """A TCP server that counts the connections it accepts (and answers HTTP 200)."""

    def __init__(self, host: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(1)
                try:
                    conn.recv(65536)
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 23\r\nConnection: close\r\n\r\n"
                        b"export default 'stolen'"
                    )
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def production() -> Iterator[Listener]:
    listener = Listener("127.0.0.2")
    yield listener
    listener.close()


@pytest.fixture
def other_port() -> Iterator[Listener]:
    listener = Listener("127.0.0.1")
    yield listener
    listener.close()


def egress_to(url: str) -> sandbox.Egress:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return sandbox.Egress(parts.hostname, (ipaddress.ip_address(parts.hostname),), parts.port)


def script_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / f"script-{uuid.uuid4().hex[:6]}.js"
    path.write_text(
        "import http from 'k6/http';\n" + body + "\n"
        "export function handleSummary(data) {\n"
        "  return { [__ENV.PERF_AGENT_SUMMARY]: JSON.stringify(data) };\n}\n"
    )
    return path


async def sandboxed_run(
    settings: Settings, tmp_path: Path, target: str, body: str, **kwargs: object
) -> tuple[object, sandbox.Confinement]:
    async with sandbox.confined(settings, settings.k6_binary, egress_to(target)) as box:
        outcome = await run_k6(
            binary=settings.k6_binary,
            script=script_file(tmp_path, body),
            workdir=tmp_path / "work",
            timeout_s=60,
            grace_s=10,
            box=box,
            **kwargs,  # type: ignore[arg-type]
        )
    return outcome, box


def nft_tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout


async def test_a_script_reads_no_file_of_the_machine(
    settings: Settings, tmp_path: Path, demo_target: str
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    body = (
        "function peek(path) { try { return open(path); } catch (e) { return 'refused'; } }\n"
        f"const seen = [peek('/etc/passwd'), peek('../../../etc/passwd'), peek('{secret}'),"
        " peek('/proc/1/environ')];\n"
        "export const options = { vus: 1, iterations: 1 };\n"
        "export default function () { console.log('seen: ' + JSON.stringify(seen)); }"
    )

    outcome, _ = await sandboxed_run(settings, tmp_path, demo_target, body)

    assert outcome.exit_code == 0, outcome.stderr_tail  # type: ignore[attr-defined]
    tail = outcome.stderr_tail  # type: ignore[attr-defined]
    assert "root:" not in tail
    assert "TOP-SECRET" not in tail
    assert 'seen: [\\"refused\\",\\"refused\\",\\"refused\\",' in tail


async def test_handle_summary_writes_nowhere_but_its_own_directory(
    settings: Settings, tmp_path: Path, demo_target: str
) -> None:
    outside = Path(f"/tmp/perf-agent-escape-{uuid.uuid4().hex}")
    upward = f"../../../../../../tmp/{outside.name}-up"
    body = (
        "export const options = { vus: 1, iterations: 1 };\n"
        "export default function () {}\n"
        "export function handleSummary(data) {\n"
        f"  return {{ '{outside}': 'x', '{upward}': 'x', [__ENV.PERF_AGENT_SUMMARY]: '{{}}' }};\n"
        "}"
    )
    path = tmp_path / "escape.js"
    path.write_text("import http from 'k6/http';\n" + body)

    async with sandbox.confined(settings, settings.k6_binary, egress_to(demo_target)) as box:
        outcome = await run_k6(
            binary=settings.k6_binary,
            script=path,
            workdir=tmp_path / "work",
            timeout_s=60,
            grace_s=10,
            box=box,
        )

    escaped = await asyncio.to_thread(
        lambda: [p for p in (outside, Path(f"{outside}-up")) if p.exists()]
    )
    assert escaped == []
    assert outcome.summary == {}  # its own file came back to the run's directory


async def test_connections_reach_the_target_and_nothing_else(
    settings: Settings,
    tmp_path: Path,
    demo_target: str,
    production: Listener,
    other_port: Listener,
) -> None:
    body = (
        "export const options = { vus: 1, iterations: 3 };\n"
        "export default function () {\n"
        f"  http.get('{demo_target}/health');\n"
        f"  http.get('{production.url}/', {{ timeout: '2s' }});\n"
        f"  http.get('{other_port.url}/', {{ timeout: '2s' }});\n"
        "  http.get('http://localhost:9/', { timeout: '2s' });\n"
        "}"
    )

    outcome, box = await sandboxed_run(settings, tmp_path, demo_target, body)

    summary = outcome.summary  # type: ignore[attr-defined]
    assert summary["metrics"]["http_reqs"]["values"]["count"] == 12
    assert summary["metrics"]["http_req_failed"]["values"]["passes"] == 9  # all but the target
    assert production.connections == 0
    assert other_port.connections == 0
    assert box.blocked >= 6  # the refused attempts, counted by the rules
    assert f"perf_agent_{box.uid}" not in nft_tables()  # the rules are gone


async def test_a_remote_module_is_not_fetched_at_plan_time_or_at_run_time(
    settings: Settings, tmp_path: Path, demo_target: str, production: Listener
) -> None:
    script = f"import m from '{production.url}/m.js';\nexport default function () {{}}\n"

    with pytest.raises(ScriptRejected):
        await inspect_script(settings.k6_binary, script, settings=settings)
    assert production.connections == 0

    path = tmp_path / "remote.js"
    path.write_text(script)
    async with sandbox.confined(settings, settings.k6_binary, egress_to(demo_target)) as box:
        outcome = await run_k6(
            binary=settings.k6_binary,
            script=path,
            workdir=tmp_path / "work",
            timeout_s=60,
            grace_s=10,
            box=box,
        )
    assert outcome.exit_code != 0
    assert production.connections == 0


async def test_inspect_in_the_sandbox_reads_the_options_as_before(settings: Settings) -> None:
    options = await inspect_script(
        settings.k6_binary,
        "export const options = { vus: 3, duration: '5s' };\nexport default function () {}\n",
        requirements=True,
        settings=settings,
    )

    assert options["maxVUs"] == 3


async def test_a_slow_init_is_a_clear_refusal_not_a_hang(settings: Settings) -> None:
    busy = "const end = Date.now() + 20000; while (Date.now() < end) {}\n"

    with pytest.raises(ScriptRejected, match="longer than 1 s"):
        await inspect_script(
            settings.k6_binary,
            busy + "export default function () {}\n",
            settings=settings,
            timeout_s=1,
        )


async def test_a_sandboxed_k6_stops_gracefully_and_answers_its_rest_api(
    settings: Settings, tmp_path: Path, demo_target: str
) -> None:
    stop = asyncio.Event()
    address = f"127.0.0.1:{_free_port()}"
    statuses: list[int] = []

    async def started(pid: int) -> None:
        async def later() -> None:
            await asyncio.sleep(2)
            async with httpx.AsyncClient() as http:
                statuses.append((await http.get(f"http://{address}/v1/status")).status_code)
            stop.set()

        asyncio.get_running_loop().create_task(later())

    body = (
        "export const options = { vus: 1, duration: '60s' };\n"
        f"export default function () {{ http.get('{demo_target}/health'); }}"
    )
    outcome, _ = await sandboxed_run(
        settings, tmp_path, demo_target, body, stop=stop, on_start=started, address=address
    )

    assert statuses == [200]
    assert outcome.exit_code == 105  # type: ignore[attr-defined]  # SIGINT: graceful
    assert outcome.summary["metrics"]["http_reqs"]["values"]["count"] > 0  # type: ignore[attr-defined]


async def test_rules_left_by_a_crashed_worker_are_swept(settings: Settings) -> None:
    stale = settings.sandbox_uid_base + settings.sandbox_uids - 1
    sandbox._install_table(stale, None)
    assert f"perf_agent_{stale}" in nft_tables()

    removed = sandbox.sweep(settings)

    assert stale in removed
    assert f"perf_agent_{stale}" not in nft_tables()


async def test_concurrent_sandboxes_get_different_uids(settings: Settings) -> None:
    async with (
        sandbox.confined(settings, settings.k6_binary, None) as first,
        sandbox.confined(settings, settings.k6_binary, None) as second,
    ):
        assert first.uid != second.uid
        assert first.directory != second.directory


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
