"""The target's own process, sampled while k6 runs, when the target is on this machine.

For a loopback target the worker finds the processes listening on the target's port (psutil)
and reads, about once a second, their CPU (percent of one core, summed over the processes)
and resident memory. Each live second carries the latest reading under ``system``, so the
analysis can set CPU beside load and latency: a ceiling with idle CPU is a lock or a pool, a
ceiling with a busy CPU is computation.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from typing import Any
from urllib.parse import urlsplit

import psutil

log = logging.getLogger(__name__)


def is_loopback(base_url: str) -> bool:
    host = (urlsplit(base_url).hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listening_processes(port: int) -> list[psutil.Process]:
    pids = {
        conn.pid
        for conn in psutil.net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid
    }
    found = []
    for pid in sorted(pids):
        with contextlib.suppress(psutil.Error):
            found.append(psutil.Process(pid))
    return found


class ProcessSampler:
    """CPU and memory of the processes serving ``base_url``'s port on this machine."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.processes: list[psutil.Process] = []
        self.latest: dict[str, Any] | None = None

    def start(self) -> bool:
        try:
            self.processes = listening_processes(self.port)
        except (psutil.Error, OSError) as exc:
            log.info("cannot look up the target's process: %s", exc)
            return False
        for process in self.processes:
            with contextlib.suppress(psutil.Error):
                process.cpu_percent(None)  # the first call only sets the reference point
        return bool(self.processes)

    def sample(self) -> dict[str, Any] | None:
        cpu = rss = 0.0
        threads = 0
        alive = 0
        for process in self.processes:
            try:
                with process.oneshot():
                    cpu += process.cpu_percent(None)
                    rss += process.memory_info().rss
                    threads += process.num_threads()
                alive += 1
            except psutil.Error:
                continue
        if not alive:
            return None
        self.latest = {
            "cpu_percent": round(cpu, 1),
            "rss_mb": round(rss / 1e6, 1),
            "threads": threads,
            "processes": alive,
            "cores": psutil.cpu_count() or 1,
        }
        return self.latest

    async def run(self, interval_s: float = 1.0) -> None:
        if not await asyncio.to_thread(self.start):
            return
        while True:
            await asyncio.sleep(interval_s)
            await asyncio.to_thread(self.sample)
