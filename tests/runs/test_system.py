"""The load generator's own health, read from the kernel while k6 (here: a stand-in) runs."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psutil

from app.runs.system import GeneratorSampler

BURN = "import time\nend = time.monotonic() + {s}\nwhile time.monotonic() < end: pass\n"


@contextmanager
def burning(seconds: float) -> Iterator[subprocess.Popen[bytes]]:
    """A process that keeps one core busy for ``seconds``."""
    process = subprocess.Popen([sys.executable, "-c", BURN.format(s=seconds)])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


@contextmanager
def neighbour(seconds: float) -> Iterator[int]:
    """A busy process that is not ours: started through a shell that exits at once, so it
    is nobody's child here (as a CI neighbour would be)."""
    code = BURN.format(s=seconds)
    shell = subprocess.run(
        ["sh", "-c", f'{sys.executable} -c "$0" >/dev/null 2>&1 & echo $!', code],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    pid = int(shell.stdout.strip())
    try:
        yield pid
    finally:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()


def _cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def test_the_generator_s_own_cpu_is_told_apart_from_a_busy_neighbour() -> None:
    with burning(3) as generator, neighbour(3) as other:
        sampler = GeneratorSampler(generator.pid)
        time.sleep(0.2)
        sampler.start()
        before = time.monotonic(), _cpu_s(generator.pid), _cpu_s(other)
        time.sleep(1.0)
        reading = sampler.sample()
        after = time.monotonic(), _cpu_s(generator.pid), _cpu_s(other)

    assert reading is not None
    wall = after[0] - before[0]
    # What each burner got depends on the machine's other load; the sampler must agree with
    # the kernel's own account of it.
    generator_share = 100 * (after[1] - before[1]) / wall
    neighbour_share = 100 * (after[2] - before[2]) / wall
    assert abs(reading["k6_cpu_percent"] - generator_share) < 10
    assert reading["other_cpu_percent"] >= neighbour_share - 10  # others too, never fewer
    assert reading["service_cpu_percent"] < 30  # this test only slept
    assert reading["k6_rss_mb"] > 1
    assert reading["k6_wait_percent"] is not None
    assert reading["k6_wait_percent"] >= 0
    assert 0 < reading["machine_cpu_percent"] <= 100
    assert reading["cores"] >= 1


def test_the_generator_s_child_processes_count_as_the_generator() -> None:
    # In the sandbox k6 runs under bubblewrap: the pid the worker knows is its parent's.
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {BURN.format(s=3)!r}])"
    parent = subprocess.Popen([sys.executable, "-c", child])
    try:
        time.sleep(0.3)  # the child has started
        sampler = GeneratorSampler(parent.pid)
        sampler.start()
        time.sleep(1.0)
        reading = sampler.sample()
    finally:
        parent.kill()
        parent.wait()

    assert reading is not None
    assert reading["k6_cpu_percent"] > 10  # the child's CPU, under whatever else runs here


def test_a_generator_that_has_gone_gives_no_reading() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    sampler = GeneratorSampler(process.pid)
    sampler.start()

    assert sampler.sample() is None


def test_a_busy_child_of_the_service_is_a_neighbour_too() -> None:
    # A CI job or a test harness may start its CPU hog from the same process as the worker:
    # only the profiler the worker starts is the service's own.
    with burning(3) as generator, burning(3) as hog:
        sampler = GeneratorSampler(generator.pid)
        time.sleep(0.2)
        sampler.start()
        before = time.monotonic(), _cpu_s(hog.pid)
        time.sleep(1.0)
        reading = sampler.sample()
        after = time.monotonic(), _cpu_s(hog.pid)

    assert reading is not None
    hog_share = 100 * (after[1] - before[1]) / (after[0] - before[0])
    assert reading["other_cpu_percent"] >= hog_share - 10
    assert reading["service_cpu_percent"] < 30
