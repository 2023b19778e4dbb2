"""A real Prometheus for tests: Debian's ``/usr/bin/prometheus`` (``.ci/run`` installs the
``prometheus`` package) on 127.0.0.1 at a free port, with its remote-write receiver and native
histograms on, scraping the given targets every second.

    with running_prometheus([ScrapeTarget("127.0.0.1:8000", bearer_token=key)], tmp_path) as prom:
        [series] = prom.wait_for('perf_agent_plan_verdict{verdict="pass"} == 1', timeout_s=20)
        prom.query("up")             # instant vector: [{"metric": {...}, "value": [t, "1"]}]
        prom.remote_write_url        # http://127.0.0.1:P/api/v1/write

Nothing of the machine's own Prometheus is used or touched (not its port 9090, its config or its
data): every instance has its own config, data directory and port, and is stopped and reaped
when the block ends. It is started through the k6 adapter's launcher, so it also gets SIGTERM if
the test process dies (start it from the test's own thread: the kernel ties that signal to the
thread that started it).

Prometheus 2.42 scrapes a target first about 5 s after it is ready (its scrape manager applies
new target sets every 5 s, and no flag of 2.42 shortens that): start it before the work whose
figures it should find, so the wait overlaps with it.

Without the binary the test fails, not skips: a skipped acceptance test reads as a pass.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.core.launcher import launcher_argv

PROMETHEUS = Path("/usr/bin/prometheus")
MISSING = (
    "{binary} is missing: these tests need a real Prometheus, Debian's package `prometheus` "
    "(2.42); .ci/run installs it (apt-get install -y prometheus)"
)
Result = dict[str, Any]


@dataclass(frozen=True)
class ScrapeTarget:
    """One HTTP endpoint to scrape: ``address`` is host:port (loopback only)."""

    address: str
    metrics_path: str = "/metrics"
    bearer_token: str | None = None
    job: str | None = None

    def __post_init__(self) -> None:
        host = self.address.rsplit(":", 1)[0]
        if host not in ("127.0.0.1", "localhost", "[::1]"):
            raise ValueError(f"tests only scrape loopback targets, not {self.address}")


@dataclass(frozen=True)
class PrometheusServer:
    url: str
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def remote_write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    @property
    def log(self) -> str:
        """What Prometheus logged so far (its stderr)."""
        return (self.directory / "prometheus.log").read_text(errors="replace")

    def _get(self, path: str, **params: str) -> Any:
        response = httpx.get(f"{self.url}{path}", params=params, timeout=10)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise AssertionError(f"Prometheus answered {response.status_code} to {path}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[Result]:
        """The instant query's result: for a vector, one ``{"metric", "value"}`` per series,
        ``value`` being ``[timestamp, "text of the float"]`` (native histograms: ``histogram``)."""
        data = self._get("/api/v1/query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[Result] = data["result"]
        return result

    def targets(self) -> list[Result]:
        """The active scrape targets with their health and last error."""
        active: list[Result] = self._get("/api/v1/targets", state="active")["activeTargets"]
        return active

    def wait_for(self, expr: str, timeout_s: float = 20.0, *, poll_s: float = 0.2) -> list[Result]:
        """Polls ``expr`` until its result is non-empty; fails with the targets' health (and
        their last scrape errors) when it stays empty for ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.query(expr)
            if result:
                return result
            if time.monotonic() > deadline:
                health = [
                    (t["scrapeUrl"], t["health"], t.get("lastError", "")) for t in self.targets()
                ]
                raise AssertionError(
                    f"no result for {expr} after {timeout_s:g} s; targets: {health}"
                )
            time.sleep(poll_s)


def value(result: Result) -> float:
    """The float of one instant-vector (or scalar) sample."""
    return float(result["value"][1])


def config(targets: Sequence[ScrapeTarget], *, scrape_interval_s: float) -> dict[str, Any]:
    interval = f"{int(scrape_interval_s * 1000)}ms"
    scrapes: list[dict[str, Any]] = []
    for index, target in enumerate(targets):
        scrape: dict[str, Any] = {
            "job_name": target.job or f"target-{index}",
            "scheme": "http",
            "metrics_path": target.metrics_path,
            "static_configs": [{"targets": [target.address]}],
        }
        if target.bearer_token is not None:
            scrape["authorization"] = {"type": "Bearer", "credentials": target.bearer_token}
        scrapes.append(scrape)
    return {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "evaluation_interval": interval,
        },
        "scrape_configs": scrapes,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
            return
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait(15)


def _start(directory: Path, binary: Path, *, timeout_s: float) -> PrometheusServer | None:
    """One attempt on a fresh port: the server once ``/-/ready`` answers 200, or None when
    Prometheus exited early because the port was taken meanwhile."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        str(binary),
        f"--config.file={directory / 'prometheus.yml'}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--web.enable-remote-write-receiver",
        "--enable-feature=native-histograms",
        "--log.level=info",
    ]
    with (directory / "prometheus.log").open("ab") as log:
        proc = subprocess.Popen(
            launcher_argv(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=directory,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(directory)},
        )
    server = PrometheusServer(url=url, directory=directory, process=proc)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if proc.poll() is not None:
                if "address already in use" in server.log:
                    return None
                raise AssertionError(
                    f"Prometheus exited with {proc.returncode} before it was ready:\n{server.log}"
                )
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"Prometheus not ready after {timeout_s:g} s:\n{server.log}")
            time.sleep(0.1)
    except BaseException:
        _stop(proc)
        raise


@contextlib.contextmanager
def running_prometheus(
    targets: Sequence[ScrapeTarget] = (),
    directory: Path | None = None,
    *,
    scrape_interval_s: float = 1.0,
    binary: Path = PROMETHEUS,
    ready_timeout_s: float = 30.0,
) -> Iterator[PrometheusServer]:
    """Prometheus, ready, for the block; stopped and reaped afterwards. Its config, data and
    log go to ``directory`` (created; a temporary one, removed afterwards, when not given)."""
    if not os.access(binary, os.X_OK):
        pytest.fail(MISSING.format(binary=binary), pytrace=False)
    with contextlib.ExitStack() as stack:
        if directory is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="prom-")))
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "prometheus.yml"
        # The config may hold API keys: readable by its owner only.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            yaml.safe_dump(config(targets, scrape_interval_s=scrape_interval_s), out)
        for _ in range(3):
            server = _start(directory, binary, timeout_s=ready_timeout_s)
            if server is not None:
                break
        else:
            log = (directory / "prometheus.log").read_text(errors="replace")
            raise AssertionError(f"Prometheus found no free port in 3 attempts:\n{log}")
        try:
            yield server
        finally:
            _stop(server.process)
