"""py-spy against real processes: the hot handler ranks first, and every way py-spy cannot
profile comes back as a result with a reason."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import psutil
import pytest

from app.profiling import pyspy
from app.profiling.stacks import Frame, rank
from tests.profiling.conftest import Target, load

pytestmark = pytest.mark.skipif(pyspy.find_binary() is None, reason="py-spy is not installed")


def _no_pyspy_left() -> None:
    children = psutil.Process().children(recursive=True)
    assert not [c for c in children if "py-spy" in " ".join(c.cmdline())]


async def test_the_hot_handler_ranks_first(target: Target) -> None:
    with load(target.port) as state:
        await asyncio.sleep(0.3)
        profile = await pyspy.record(target.pid, 2, rate=100)
    assert state.requests > 5
    assert not state.errors
    assert profile.status == "ok", profile.reason
    assert profile.source == "py-spy"
    assert profile.seconds == 2
    assert profile.samples > 50  # ~2 s × 100/s of the handler thread(s)
    hottest = profile.functions[0]
    assert hottest.name.endswith("orders_n_plus_one"), profile.functions[:3]
    assert hottest.self_share > 0.5
    assert hottest.location.startswith("tests/profiling/target.py:")
    # Inclusive shares: the thread's entry point holds the handler, so it holds at least as much.
    by_name = {f.name: f for f in profile.functions}
    assert by_name["Thread.run"].total_share >= hottest.total_share
    assert by_name["Thread.run"].self_share == 0
    assert profile.stacks[0].frames[-1] == hottest.name
    assert all(not pyspy.is_idle([Frame(f.name, f.location)]) for f in profile.functions)
    _no_pyspy_left()


async def test_an_idle_process_has_nothing_to_rank(target: Target) -> None:
    profile = await pyspy.record(target.pid, 1)  # no load: every thread waits
    assert profile.status == "unavailable", profile.stacks
    assert "no samples" in (profile.reason or "") or "waiting" in (profile.reason or "")


async def test_idle_threads_are_counted_apart_when_asked_for(target: Target) -> None:
    with load(target.port):
        await asyncio.sleep(0.2)
        profile = await pyspy.record(target.pid, 1, idle=True)
    assert profile.status == "ok", profile.reason
    assert profile.idle_samples > 0  # the main thread in serve_forever's selector
    assert profile.functions[0].name.endswith("orders_n_plus_one"), profile.stacks[:3]


async def test_a_gone_process() -> None:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await proc.wait()
    profile = await pyspy.record(proc.pid, 1)
    assert profile.status == "unavailable"
    assert profile.reason == f"process {proc.pid} is gone"


async def test_a_process_that_exits_during_the_window() -> None:
    code = "import time\nt = time.time()\nwhile time.time() - t < 0.8:\n    pass\n"
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
    try:
        await asyncio.sleep(0.1)
        profile = await pyspy.record(proc.pid, 3)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    assert profile.status == "ok", profile.reason
    assert "exited during the window" in (profile.reason or "")
    assert profile.seconds < 3
    assert profile.functions[0].name == "<module>"


async def test_a_process_that_is_not_python() -> None:
    sleep = shutil.which("sleep")
    assert sleep
    proc = await asyncio.create_subprocess_exec(sleep, "30")
    try:
        profile = await pyspy.record(proc.pid, 1)
    finally:
        proc.kill()
        await proc.wait()
    assert profile.status == "unavailable"
    assert "not a Python process" in (profile.reason or "")


async def test_a_missing_binary(target: Target) -> None:
    profile = await pyspy.record(target.pid, 1, binary="/nonexistent/py-spy")
    assert profile.status == "unavailable"
    assert "py-spy is not installed" in (profile.reason or "")


async def test_the_timeout_stops_and_reaps_pyspy(target: Target) -> None:
    with load(target.port):
        profile = await pyspy.record(target.pid, 5, timeout_s=1.0)
    # py-spy writes what it has on SIGINT: either partial results, or a failure, never a hang.
    assert profile.status in ("ok", "failed")
    assert "1 s" in (profile.reason or ""), profile.reason
    _no_pyspy_left()


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None, reason="needs root and runuser"
)
async def test_no_ptrace_permission(target: Target, tmp_path: Path) -> None:
    """py-spy run as nobody may not read root's process: py-spy's real refusal, through
    the adapter (the binary it is given is py-spy started as nobody)."""
    wrapper = tmp_path / "py-spy-as-nobody"
    wrapper.write_text(f'#!/bin/sh\nexec runuser -u nobody -- {pyspy.find_binary()} "$@"\n')
    wrapper.chmod(0o755)
    profile = await pyspy.record(target.pid, 1, binary=str(wrapper))
    assert profile.status == "unavailable"
    assert "ptrace" in (profile.reason or ""), profile.reason
    assert "CAP_SYS_PTRACE" in (profile.reason or "")


def test_parse_raw_and_rank() -> None:
    text = (
        "<module> (app.py:3);handler (app.py:10);query (db.py:5) 6\n"
        "<module> (app.py:3);handler (app.py:11) 3\n"
        "<module> (app.py:3);fib (m.py:2);fib (m.py:3) 1\n"
        "Thread._bootstrap (threading.py:1002);Condition.wait (threading.py:327) 10\n"
        "garbage line\n"
        " 1\n"
    )
    stacks = pyspy.parse_raw(text)
    assert len(stacks) == 4
    assert stacks[0][0][2] == Frame("query", "db.py", 5)
    ranked = rank(stacks, is_idle=pyspy.is_idle)
    assert (ranked.samples, ranked.idle_samples) == (10, 10)
    shares = {f.name: f for f in ranked.functions}
    assert [f.name for f in ranked.functions][:2] == ["query", "handler"]
    assert shares["query"].self_share == pytest.approx(0.6)
    assert shares["handler"].self_share == pytest.approx(0.3)
    assert shares["handler"].total_share == pytest.approx(0.9)
    assert shares["handler"].location == "app.py:11"  # its own hottest line
    assert shares["<module>"].total_share == 1.0
    assert shares["fib"].total_share == pytest.approx(0.1)  # recursion counted once
    assert ranked.stacks[0].frames == ["<module>", "handler", "query"]
    assert ranked.stacks[0].share == pytest.approx(0.6)
