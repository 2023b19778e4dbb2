"""A real Prometheus (Debian's 2.42, remote-write receiver and native histograms on) scrapes the
live service's ``/metrics`` and finds the latest finished run's p95 and its verdict (issue 11)."""

from __future__ import annotations

import os
import subprocess
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.client import PerfAgentClient
from app.core.auth import Scope
from app.core.settings import Settings
from tests.conftest import live_key, running_live_service
from tests.prometheus_server import ScrapeTarget, running_prometheus, value

pytestmark = pytest.mark.k6


def test_prometheus_scrapes_the_finished_runs_p95_and_verdict(
    database_url: str,
    demo_target: str,
    tmp_path: Path,
    committed: async_sessionmaker[AsyncSession],  # the service commits: emptied afterwards
) -> None:
    name = f"prometheus-scrape-{uuid.uuid4().hex[:8]}"  # a series of this test's own
    plan = {
        "name": name,
        "target": {"base_url": demo_target, "environment": "local"},
        "endpoints": [{"name": "product", "path": "/api/products/1"}],
        "load": {"vus": 2, "duration": "2s"},
        "slos": ["p95 < 2000ms", "error_rate < 1%"],
    }
    runner_scopes = (Scope.read, Scope.plan, Scope.approve, Scope.execute)
    runner = live_key(database_url, owner="runner", scopes=runner_scopes)
    # Prometheus scrapes with a read-only key, as an operator would configure it.
    scraper = live_key(database_url, owner="prometheus", scopes=(Scope.read,))

    with running_live_service(database_url, tmp_path / "service") as api:
        target = ScrapeTarget(urlsplit(api).netloc, "/metrics", bearer_token=scraper)
        with (
            running_prometheus([target], tmp_path / "prometheus") as prometheus,
            PerfAgentClient(api, api_key=runner) as client,
        ):
            _, run = client.run_approved(plan)
            assert run["status"] == "succeeded", run
            analysis = client.analyse(run["id"])
            verdict = analysis["verdict"]
            [overall] = [
                row for row in client.get_run(run["id"])["results"] if row["endpoint"] == "*"
            ]

            labels = f'plan="{name}",environment="local"'
            [judged] = prometheus.wait_for(
                f'perf_agent_plan_verdict{{{labels},verdict="{verdict}"}} == 1', timeout_s=20
            )
            [p95] = prometheus.query(f'perf_agent_latest_run_p95_seconds{{{labels},endpoint="*"}}')
            others = prometheus.query(f"perf_agent_plan_verdict{{{labels}}} == 1")
            [up] = prometheus.query('up{job="target-0"}')

    assert value(p95) == pytest.approx(overall["p95_ms"] / 1000, rel=1e-9, abs=0)
    assert overall["p95_ms"] > 0
    assert judged["metric"]["verdict"] == verdict in ("pass", "warning", "fail", "inconclusive")
    assert [series["metric"]["verdict"] for series in others] == [verdict]  # only one is 1
    assert value(up) == 1


def test_the_scraper_sends_its_bearer_token(tmp_path: Path) -> None:
    """What a target behind keys sees: every scrape carries the configured Authorization."""
    seen: list[str | None] = []

    class Exporter(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            body = b"# TYPE probe gauge\nprobe 42\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Exporter) as exporter:
        thread = threading.Thread(target=exporter.serve_forever, daemon=True)
        thread.start()
        try:
            address = f"127.0.0.1:{exporter.server_address[1]}"
            target = ScrapeTarget(address, "/custom/metrics", bearer_token="pa_secret", job="x")
            with running_prometheus([target], tmp_path) as prometheus:
                [probe] = prometheus.wait_for('probe{job="x"}', timeout_s=10)
        finally:
            exporter.shutdown()
            thread.join(10)

    assert value(probe) == 42
    assert seen
    assert set(seen) == {"Bearer pa_secret"}
    assert (tmp_path / "prometheus.yml").stat().st_mode & 0o077 == 0  # it holds the key


def test_native_histograms_arrive_over_remote_write(tmp_path: Path) -> None:
    """k6's Prometheus remote-write output, its trends as native histograms: the receiver and
    the feature flag are on (without the flag Prometheus 2.42 refuses the whole request)."""
    script = tmp_path / "probe.js"
    script.write_text(
        "import { Trend } from 'k6/metrics';\n"
        "const probe = new Trend('probe', true);\n"
        "export const options = { vus: 1, iterations: 20 };\n"
        "export default function () { probe.add(__ITER + 1); }\n"
    )
    with running_prometheus([], tmp_path / "prometheus") as prometheus:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "K6_NO_USAGE_REPORT": "true",
            "K6_PROMETHEUS_RW_SERVER_URL": prometheus.remote_write_url,
            "K6_PROMETHEUS_RW_TREND_AS_NATIVE_HISTOGRAM": "true",
        }
        k6 = [Settings().k6_binary, "run", "--quiet", "-o", "experimental-prometheus-rw"]
        done = subprocess.run(
            [*k6, str(script)], env=env, cwd=tmp_path, capture_output=True, timeout=60
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        [series] = prometheus.wait_for("k6_probe_seconds", timeout_s=10)
        [count] = prometheus.query("histogram_count(k6_probe_seconds)")
        log = prometheus.log

    assert "histogram" in series  # a native histogram, not float samples
    assert value(count) == 20
    assert "Error appending remote write" not in log


def test_without_the_binary_the_test_fails_and_says_who_installs_it(tmp_path: Path) -> None:
    with (
        pytest.raises(pytest.fail.Exception, match=r"\.ci/run installs it"),
        running_prometheus([], tmp_path, binary=tmp_path / "no-prometheus"),
    ):
        pass
