"""Sample a local Python process with py-spy: which functions cost the time.

``py-spy record --pid P --duration N --rate R --format raw`` writes collapsed stacks (one
line per distinct stack, ``frame;frame;…;leaf count``, each frame ``function (file:line)``),
which :func:`parse_raw` reads and :func:`app.profiling.stacks.rank` ranks. py-spy runs as a
subprocess: an argv list, a fresh environment, its own session, a launcher that has the
kernel stop it if this process dies (PR_SET_PDEATHSIG), a hard timeout, always reaped.

py-spy reads the target's memory (``process_vm_readv``) and, unless ``nonblocking``, pauses
it with ptrace for each sample: it needs root or CAP_SYS_PTRACE (or the same uid and
``kernel.yama.ptrace_scope`` 0). Without ``idle`` py-spy drops the samples of threads the
OS reports waiting; :func:`is_idle` drops the Python-level waits that slip through (a
``Condition.wait`` between two GIL releases, ``selectors.select``) and counts them apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

import psutil

from app.core.launcher import launcher_argv
from app.profiling.schemas import Profile, Status, failed, unavailable
from app.profiling.stacks import TOP_FUNCTIONS, TOP_STACKS, Frame, Stack, rank

log = logging.getLogger(__name__)

SOURCE: Final = "py-spy"
DEFAULT_RATE = 100  # samples a second (py-spy's default); bench/profiler.py measures its cost
MAX_SECONDS = 600
STARTUP_GRACE_S = 10.0  # attaching, reading the interpreter's layout, writing the file
STOP_GRACE_S = 3.0
MAX_OUTPUT = 64 * 1024 * 1024
REASON_CHARS = 300

# Where a thread that waits sits, as (function, file suffix) of its leaf Python frame.
IDLE_LEAVES: frozenset[tuple[str, str]] = frozenset(
    {
        ("Condition.wait", "threading.py"),
        ("Event.wait", "threading.py"),
        ("Thread.join", "threading.py"),
        ("Thread._wait_for_tstate_lock", "threading.py"),
        ("Semaphore.acquire", "threading.py"),
        ("Queue.get", "queue.py"),
        ("SimpleQueue.get", "queue.py"),
        ("_worker", "concurrent/futures/thread.py"),
        ("_PollLikeSelector.select", "selectors.py"),
        ("EpollSelector.select", "selectors.py"),
        ("PollSelector.select", "selectors.py"),
        ("SelectSelector.select", "selectors.py"),
        ("KqueueSelector.select", "selectors.py"),
        ("DefaultSelector.select", "selectors.py"),
        ("BaseSelector.select", "selectors.py"),
        ("socket.accept", "socket.py"),
        ("SocketIO.readinto", "socket.py"),
        ("BaseEventLoop._run_once", "asyncio/base_events.py"),
        ("BaseEventLoop.run_forever", "asyncio/base_events.py"),
        ("sleep", "asyncio/tasks.py"),
    }
)
# Bare names (no class) that py-spy gives for the same waits on older Pythons (< 3.11).
_IDLE_NAMES = frozenset({name.rpartition(".")[2] for name, _ in IDLE_LEAVES}) - {"get", "sleep"}

_FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def find_binary(explicit: str | None = None) -> str | None:
    """``explicit`` if it is executable; else the py-spy installed beside this interpreter
    (a virtualenv's bin/, which need not be on PATH), else the one on PATH."""
    if explicit is not None:
        return explicit if os.access(explicit, os.X_OK) and Path(explicit).is_file() else None
    beside = Path(sys.executable).parent / "py-spy"
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("py-spy")


def argv(
    binary: str,
    pid: int,
    seconds: int,
    output: Path,
    *,
    rate: int = DEFAULT_RATE,
    nonblocking: bool = False,
    subprocesses: bool = False,
    gil: bool = False,
    idle: bool = False,
) -> list[str]:
    """The py-spy command line (py-spy 0.4's ``record``)."""
    command = [
        binary, "record", "--pid", str(pid), "--duration", str(seconds),
        "--rate", str(rate), "--format", "raw", "--output", str(output),
    ]  # fmt: skip
    if nonblocking:
        command.append("--nonblocking")
    if subprocesses:
        command.append("--subprocesses")
    if gil:
        command.append("--gil")
    if idle:
        command.append("--idle")
    return command


def parse_frame(text: str) -> Frame:
    match = _FRAME.match(text)
    if match is None:  # "process 123:…", "thread (0x…)" or a name without a location
        return Frame(text, "")
    line = match.group("line")
    return Frame(match.group("name"), match.group("file"), int(line) if line else 0)


def parse_raw(text: str) -> list[tuple[Stack, int]]:
    """Collapsed stacks (root first) and their sample counts; malformed lines are skipped."""
    stacks: list[tuple[Stack, int]] = []
    for line in text.splitlines():
        body, _, count = line.rstrip().rpartition(" ")
        if not body or not count.isdigit():
            continue
        stacks.append(([parse_frame(part) for part in body.split(";") if part], int(count)))
    return stacks


def is_idle(stack: Stack) -> bool:
    """A thread waiting: its leaf frame is a known wait (a lock, a queue, a selector)."""
    if not stack:
        return False
    leaf = stack[-1]
    if any(leaf.name == name and leaf.file.endswith(file) for name, file in IDLE_LEAVES):
        return True
    return leaf.name in _IDLE_NAMES and leaf.file.endswith(
        ("threading.py", "selectors.py", "queue.py")
    )


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's: py-spy will say whether it may read it
    return True


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def explain(stderr: str, pid: int, exit_code: int | None) -> tuple[Status, str]:
    """(status, reason) for a py-spy that produced nothing."""
    lowered = stderr.lower()
    if "permission denied" in lowered or "operation not permitted" in lowered:
        return "unavailable", (
            f"py-spy may not read process {pid} (ptrace): run the worker as root or with "
            "CAP_SYS_PTRACE, and check kernel.yama.ptrace_scope"
        )
    gone = "no such process" in lowered or "check that the process is running" in lowered
    if gone or not _pid_exists(pid):
        return "unavailable", f"process {pid} is gone"
    if "failed to find python version" in lowered:
        return "unavailable", f"process {pid} is not a Python process py-spy can read"
    first = _first_error(stderr)
    return "failed", f"py-spy exited with {exit_code}: {first}" if first else (
        f"py-spy exited with {exit_code} and wrote nothing"
    )


def _first_error(stderr: str) -> str:
    for line in stderr.splitlines():
        line = line.strip()
        if not line or line.startswith("py-spy>"):
            continue
        if line.startswith("Stack backtrace"):
            break
        return line[:REASON_CHARS]
    return ""


async def _head(stream: asyncio.StreamReader, keep: int = 16 * 1024) -> bytes:
    """Read a stream to its end, keeping its head (the error comes first)."""
    head = b""
    while chunk := await stream.read(64 * 1024):
        if len(head) < keep:
            head += chunk[: keep - len(head)]
    return head


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """SIGINT (py-spy writes what it has), then SIGKILL to the whole group; always reaped."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
        except TimeoutError:
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher's group: nothing left behind
    if proc.returncode is None:
        await proc.wait()


async def record(
    pid: int,
    seconds: float,
    *,
    rate: int = DEFAULT_RATE,
    nonblocking: bool = False,
    subprocesses: bool = False,
    gil: bool = False,
    idle: bool = False,
    binary: str | None = None,
    timeout_s: float | None = None,
    top_functions: int = TOP_FUNCTIONS,
    top_stacks: int = TOP_STACKS,
) -> Profile:
    """Sample process ``pid`` for ``seconds`` (rounded up to whole seconds, py-spy's unit)
    and rank its functions. Never raises for anything py-spy or the process does: a missing
    py-spy, no ptrace permission, a gone or non-Python process and an empty recording are
    ``unavailable``; a py-spy that crashed or overran ``timeout_s`` (default: the window
    plus 10 s) is ``failed``."""
    whole = max(1, min(MAX_SECONDS, int(-(-seconds // 1))))
    if not 1 <= rate <= 10_000:
        return failed(SOURCE, f"rate {rate}/s is outside 1..10000")
    found = find_binary(binary)
    if found is None:
        where = binary or "beside the interpreter or on PATH"
        return unavailable(SOURCE, f"py-spy is not installed ({where}): pip install py-spy")
    if not _pid_exists(pid):
        return unavailable(SOURCE, f"process {pid} is gone")
    limit = timeout_s if timeout_s is not None else whole + STARTUP_GRACE_S
    with tempfile.TemporaryDirectory(prefix="perf-agent-pyspy-") as tmp:
        output = Path(tmp) / "stacks.txt"
        command = argv(
            found, pid, whole, output, rate=rate, nonblocking=nonblocking,
            subprocesses=subprocesses, gil=gil, idle=idle,
        )  # fmt: skip
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "RUST_BACKTRACE": "0"}
        started = time.monotonic()
        timed_out = False
        try:
            proc = await asyncio.create_subprocess_exec(
                *launcher_argv(command),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE, env=environment, start_new_session=True,
            )  # fmt: skip
        except OSError as exc:  # FileNotFoundError from the launcher's check too
            return failed(SOURCE, f"py-spy could not start: {exc}"[:REASON_CHARS])
        try:
            assert proc.stderr is not None
            try:
                stderr_bytes = await asyncio.wait_for(_head(proc.stderr), limit)
                await asyncio.wait_for(proc.wait(), max(0.1, limit - (time.monotonic() - started)))
            except TimeoutError:
                timed_out = True
                stderr_bytes = b""
        finally:
            await _stop(proc)
        elapsed = time.monotonic() - started
        stderr = stderr_bytes.decode(errors="replace")
        text = ""
        if output.exists() and output.stat().st_size <= MAX_OUTPUT:
            text = output.read_text(errors="replace")
        elif output.exists():
            return failed(SOURCE, f"py-spy wrote more than {MAX_OUTPUT} bytes", seconds=elapsed)
    stacks = parse_raw(text)
    if timed_out and not stacks:
        return failed(SOURCE, f"py-spy did not finish within {limit:.0f} s", seconds=elapsed)
    if not stacks:
        if proc.returncode == 0:
            return unavailable(
                SOURCE,
                f"py-spy recorded no samples of process {pid} in {whole} s "
                "(every thread idle, or the process exited)",
                seconds=whole,
            )
        status, reason = explain(stderr, pid, proc.returncode)
        return Profile(source=SOURCE, status=status, reason=reason, seconds=elapsed)
    ranked = rank(stacks, is_idle=is_idle, top_functions=top_functions, top_stacks=top_stacks)
    notes = []
    if timed_out:
        notes.append(f"py-spy overran {limit:.0f} s and was stopped")
    elif proc.returncode != 0:
        notes.append(_first_error(stderr) or f"py-spy exited with {proc.returncode}")
    seconds_sampled = float(whole)
    if elapsed < whole and not _alive(pid):  # py-spy stops when the process exits
        seconds_sampled = round(elapsed, 2)
        notes.append(f"process {pid} exited during the window")
    if not ranked.samples:
        return Profile(
            source=SOURCE, status="unavailable", seconds=whole, idle_samples=ranked.idle_samples,
            reason=f"every sample of process {pid} was a thread waiting",
        )  # fmt: skip
    return Profile(
        source=SOURCE, status="ok", reason="; ".join(notes) or None, seconds=seconds_sampled,
        samples=ranked.samples, idle_samples=ranked.idle_samples,
        functions=ranked.functions, stacks=ranked.stacks,
    )  # fmt: skip
