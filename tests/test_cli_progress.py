"""`perf-agent gate` and `demo` show a run while it executes: a plain line at a steady pace in
a CI log, a live display on a terminal."""

from __future__ import annotations

import itertools
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.cli import GATE_INCONCLUSIVE
from app.core.auth import Scope
from tests.builders import host_disturbed
from tests.conftest import live_key

pytestmark = pytest.mark.k6
PROGRESS = re.compile(
    r"running\s+\d+:\d\d/\d+:\d\d\s+vus \d+\s+rps [\d,]+\s+p95 [\d.]+ ms\s+errors"
)


@pytest.fixture
def key(database_url: str, committed: async_sessionmaker[AsyncSession]) -> str:
    scopes = (Scope.read, Scope.plan, Scope.execute, Scope.approve)
    return live_key(database_url, owner="ci", scopes=scopes)


def plan_file(tmp_path: Path, target: str, seconds: int) -> Path:
    path = tmp_path / "plan.yaml"
    plan = {
        "name": "progress",
        "target": {"base_url": target, "environment": "local"},
        "endpoints": [{"name": "product", "path": "/api/products/1"}],
        "load": {"profile": "load", "vus": 2, "duration": f"{seconds}s"},
        "slos": ["p95 < 2000ms"],
    }
    path.write_text(yaml.safe_dump(plan))
    return path


def gate_argv(plan: Path, service: str, key: str, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "app.cli",
        "gate",
        str(plan),
        "--api",
        service,
        "--api-key",
        key,
        "--out",
        str(out),
        *extra,
    ]


def timed_lines(argv: list[str], timeout_s: float = 120) -> tuple[int, list[tuple[float, str]]]:
    """Run without a terminal; every line of output with the moment it arrived."""
    env = {**os.environ, "COLUMNS": "80"}  # a CI log's default width: nothing may wrap
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    assert proc.stdout is not None
    lines: list[tuple[float, str]] = []
    deadline = time.monotonic() + timeout_s
    for line in proc.stdout:
        lines.append((time.monotonic(), line.rstrip("\n")))
        assert time.monotonic() < deadline, "the command did not finish"
    return proc.wait(timeout=30), lines


def test_without_a_terminal_the_gate_prints_a_progress_line_at_least_every_10_s(
    service: str, key: str, demo_target: str, tmp_path: Path
) -> None:
    code, lines = timed_lines(
        gate_argv(plan_file(tmp_path, demo_target, 25), service, key, tmp_path / "out")
    )
    text = "\n".join(line for _, line in lines)

    # What is tested is the progress, not the verdict: on a machine that could not give k6
    # its CPU the gate rightly ends inconclusive (3) after its runs, shown all the same.
    assert code == 0 or (code == GATE_INCONCLUSIVE and host_disturbed(text)), text
    running = [(at, line) for at, line in lines if PROGRESS.search(line)]
    assert len(running) >= 2, text
    started = next(at for at, line in lines if "queued;" in line)
    ended = next(at for at, line in lines if line.endswith(" succeeded"))
    during = [at for at, _ in lines if started <= at <= ended]
    gaps = [later - earlier for earlier, later in itertools.pairwise(during)]
    assert max(gaps) <= 11.0, (gaps, text)
    # A CI log at 80 columns: the reports' path is printed whole, on one line.
    assert any(line == f"reports in {(tmp_path / 'out').resolve()}" for _, line in lines), text
    assert "\x1b[" not in text  # no terminal control codes in a log


def test_on_a_terminal_the_gate_shows_a_live_display(
    service: str, key: str, demo_target: str, tmp_path: Path
) -> None:
    argv = gate_argv(plan_file(tmp_path, demo_target, 4), service, key, tmp_path / "out")
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        argv, stdin=follower, stdout=follower, stderr=follower, env={**os.environ, "TERM": "xterm"}
    )
    os.close(follower)
    output = b""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the other side closed: the command ended
                    break
                if not chunk:
                    break
                output += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=30)
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    text = output.decode("utf-8", errors="replace")

    assert code == 0 or (code == GATE_INCONCLUSIVE and host_disturbed(text)), text
    assert "\x1b[" in text  # rich redraws the display in place with control codes
    assert "━" in text  # the progress bar
    assert re.search(r"vus \d+ +rps [\d,]+ +p95 [\d.]+ ms", text), text
    assert ("verdict PASS" if code == 0 else "verdict INCONCLUSIVE") in text


def test_a_queued_run_line_says_what_it_waits_for() -> None:
    from app.progress import RunState

    state = RunState(run_id="r1", planned_s=10)
    plain = state.line()
    state.waiting_for = "waiting for 127.0.0.1: 1 run(s) loading it, at most 1 at once"
    told = state.line()

    assert re.fullmatch(r"run r1 queued, waiting for a worker \(\d+ s\)", plain)
    assert re.fullmatch(
        r"run r1 queued, waiting for 127\.0\.0\.1: 1 run\(s\) loading it, at most 1 at once "
        r"\(\d+ s\)",
        told,
    )
