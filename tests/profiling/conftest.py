"""Real processes to profile: a Python HTTP target with a known hot function, a loop of
requests against it on 127.0.0.1, and a PostgreSQL cluster with pg_stat_statements."""

from __future__ import annotations

import contextlib
import functools
import http.client
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
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


def _postgres_bin() -> Path | None:
    """Debian's newest PostgreSQL binaries that have pg_stat_statements beside them."""
    for version in sorted(Path("/usr/lib/postgresql").glob("*"), reverse=True):
        binaries, library = version / "bin", version / "lib" / "pg_stat_statements.so"
        if (binaries / "initdb").exists() and (binaries / "pg_ctl").exists() and library.exists():
            return binaries
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def pg_stat_cluster() -> Iterator[str]:
    """A throwaway PostgreSQL cluster with pg_stat_statements preloaded (the machine's server
    does not preload it) on a free loopback port in a temp dir; its DSN. Run as ``postgres``
    when the tests run as root (initdb refuses root)."""
    binaries = _postgres_bin()
    if binaries is None:
        pytest.skip("no PostgreSQL binaries with pg_stat_statements under /usr/lib/postgresql")
    user: str | None = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run initdb as")
        user = "postgres"
    root = Path(tempfile.mkdtemp(prefix="perf-agent-pgss-"))
    if user is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    data, port = root / "data", _free_port()
    run = functools.partial(subprocess.run, check=True, capture_output=True, user=user, timeout=60)
    try:
        run([binaries / "initdb", "-D", data, "-U", "postgres", "-A", "trust", "--no-sync"])
        options = (
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=top"
        )
        run([binaries / "pg_ctl", "-D", data, "-l", root / "log", "-w", "-o", options, "start"])
        dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
        yield dsn
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [binaries / "pg_ctl", "-D", data, "-m", "immediate", "stop"],
                capture_output=True, user=user, timeout=60, check=False,
            )  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)
