"""Real processes to profile: a Python HTTP target with a known hot function, and a loop of
requests against it on 127.0.0.1."""

from __future__ import annotations

import contextlib
import http.client
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]


@dataclass
class Target:
    pid: int
    port: int
    process: subprocess.Popen[str]


@dataclass
class Load:
    requests: int = 0
    errors: int = 0
    stop: threading.Event = field(default_factory=threading.Event)


def start_target() -> Target:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.profiling.target"],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    port = int(process.stdout.readline())
    return Target(process.pid, port, process)


def stop_target(target: Target) -> None:
    target.process.kill()
    target.process.wait(timeout=10)
    if target.process.stdout is not None:
        target.process.stdout.close()


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    started = start_target()
    try:
        yield started
    finally:
        stop_target(started)


@contextlib.contextmanager
def load(port: int, path: str = "/orders", *, clients: int = 2) -> Iterator[Load]:
    """``clients`` keep-alive connections sending ``path`` back to back until the block ends."""
    state = Load()
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            while not state.stop.is_set():
                try:
                    conn.request("GET", path)
                    conn.getresponse().read()
                    with lock:
                        state.requests += 1
                except (OSError, http.client.HTTPException):
                    with lock:
                        state.errors += 1
                    conn.close()
        finally:
            conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    try:
        yield state
    finally:
        state.stop.set()
        for thread in threads:
            thread.join(timeout=15)
