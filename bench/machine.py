"""What the benchmarks measure of the machine itself: busy CPU, a process tree's CPU, and a
wait for a quiet moment (shared by ``datapath.py`` and ``fidelity.py``)."""

from __future__ import annotations

import os
import time

import psutil


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine so far (all cores), from /proc/stat."""
    with open("/proc/stat") as fh:
        fields = [float(x) for x in fh.readline().split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return (sum(fields[:8]) - idle) / ticks


def tree_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        proc = psutil.Process(pid)
        total = 0.0
        for p in [proc, *proc.children(recursive=True)]:
            times = p.cpu_times()
            total += times.user + times.system
        return total
    except psutil.Error:
        return 0.0


def wait_quiet(max_wait_s: float, threshold_cores: float) -> None:
    """Wait (at most ``max_wait_s``) until the machine is idle between our runs, so other
    sessions' bursts of work do not land in a measurement."""
    deadline = time.monotonic() + max_wait_s
    while time.monotonic() < deadline:
        busy0, t0 = machine_busy(), time.monotonic()
        time.sleep(0.5)
        if (machine_busy() - busy0) / (time.monotonic() - t0) < threshold_cores:
            return
