"""The target's own process and the load generator's, sampled while k6 runs.

For a loopback target the worker finds the processes listening on the target's port (psutil)
and reads, about once a second, their CPU (percent of one core, summed over the processes)
and resident memory. Each live second carries the latest reading under ``system``, so the
analysis can set CPU beside load and latency: a ceiling with idle CPU is a lock or a pool, a
ceiling with a busy CPU is computation.

Whatever the target, the load generator is sampled too (``generator``): k6's own CPU and memory
and the CPU the machine gave to everything else. A k6 that ran out of CPU, or shared the
machine with a busy neighbour, measured its own queueing: the analysis will not call a
regression from such a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import time
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


def _busy_s(times: Any) -> float:
    """CPU seconds the machine spent on anything but idling (steal included: a neighbour on
    the same host took them). On Linux ``guest`` is already inside ``user``."""
    return float(
        sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq"))
        + getattr(times, "steal", 0.0)
    )


def _runqueue_wait_s(pids: set[int]) -> float | None:
    """Seconds the processes' threads spent runnable but waiting for a CPU (the kernel's
    schedstat), summed; None where the kernel does not tell."""
    total, found = 0.0, False
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat") as fh:
                    total += int(fh.read().split()[1]) / 1e9
                    found = True
            except (OSError, IndexError, ValueError):
                continue
    return total if found else None


OUR_HELPERS = ("py-spy",)  # processes the worker starts besides k6 (runs/profile.py)


class GeneratorSampler:
    """k6's CPU (its process tree: a sandbox's launcher included) and memory, the service's
    own CPU, and the CPU every other process took, in percent of one core per second."""

    def __init__(self, k6_pid: int, target: ProcessSampler | None = None) -> None:
        self.k6_pid = k6_pid
        self.target = target
        self.cores = psutil.cpu_count() or 1
        self.seen: dict[int, float] = {}  # pid -> CPU seconds at the last reading
        self.busy = 0.0
        self.at = 0.0
        self.waited: float | None = None
        self.latest: dict[str, Any] | None = None

    def _tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.k6_pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def _cpu_s(self, processes: list[psutil.Process]) -> tuple[float, float]:
        """CPU seconds since the last reading, summed, and resident memory (bytes)."""
        spent = rss = 0.0
        for process in processes:
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    total = times.user + times.system
                    rss += process.memory_info().rss
            except psutil.Error:
                continue
            # A process first seen sets its reference point: its CPU before now is not this
            # second's.
            spent += total - self.seen.get(process.pid, total)
            self.seen[process.pid] = total
        return spent, rss

    def start(self) -> None:
        self.sample()
        self.latest = None  # the first reading only set the reference points

    def sample(self) -> dict[str, Any] | None:
        now = time.monotonic()
        busy = _busy_s(psutil.cpu_times())
        k6 = self._tree()
        k6_pids = {p.pid for p in k6}
        me = psutil.Process(os.getpid())
        target = [
            p
            for p in (self.target.processes if self.target is not None else [])
            if p.pid not in k6_pids and p.pid != me.pid
        ]
        ours = k6_pids | {p.pid for p in target}
        # The service and the profiler it started: ours, not a neighbour. Any other child
        # (a test harness's CPU hog, a script the service runs) is a neighbour like any other.
        try:
            helpers = [
                c
                for c in me.children(recursive=True)
                if c.pid not in ours and c.name().startswith(OUR_HELPERS)
            ]
        except psutil.Error:
            helpers = []
        service = [me, *helpers]
        k6_s, k6_rss = self._cpu_s(k6)
        service_s, _ = self._cpu_s(service)
        target_s, _ = self._cpu_s(target)
        waited = _runqueue_wait_s(k6_pids)
        wall, busy_s = now - self.at, busy - self.busy
        wait_s = waited - self.waited if waited is not None and self.waited is not None else None
        self.at, self.busy, self.waited = now, busy, waited
        if not k6 or wall <= 0.2:
            return None
        other_s = max(0.0, busy_s - k6_s - service_s - target_s)
        self.latest = {
            "k6_cpu_percent": round(100 * k6_s / wall, 1),
            # k6's threads ready to run but waiting for a CPU: its timers run late by as much.
            "k6_wait_percent": round(100 * max(0.0, wait_s) / wall, 1)
            if wait_s is not None
            else None,
            "k6_rss_mb": round(k6_rss / 1e6, 1),
            "service_cpu_percent": round(100 * service_s / wall, 1),
            "other_cpu_percent": round(100 * other_s / wall, 1),
            "machine_cpu_percent": round(min(100.0, 100 * busy_s / wall / self.cores), 1),
            "cores": self.cores,
        }
        return self.latest

    async def run(self, interval_s: float = 1.0) -> None:
        try:
            await asyncio.to_thread(self.start)
            while True:
                await asyncio.sleep(interval_s)
                await asyncio.to_thread(self.sample)
        except (psutil.Error, OSError) as exc:
            log.info("cannot sample the load generator: %s", exc)
