"""Run k6 as a subprocess: argv only, output streamed to a log, a hard timeout, always reaped.

Stopping follows k6's own rules: the first SIGINT stops the test gracefully and still writes
the summary (exit 105); if k6 is not gone after a grace period it is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import tempfile
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from app.core import slis
from app.core.launcher import launcher_argv
from app.core.settings import Settings
from app.k6 import sandbox

# Trend statistics every summary reports (p99 is not in k6's default set).
TREND_STATS = slis.TREND_STATS

log = logging.getLogger(__name__)

# errext/exitcodes in k6 v1.1.0
EXIT_OK = 0
EXIT_THRESHOLDS_FAILED = 99
EXIT_STOPPED_BY_SIGNAL = 105
EXIT_MEANINGS = {
    99: "thresholds failed",
    100: "setup timed out",
    101: "teardown timed out",
    103: "stopped through the REST API",
    104: "invalid configuration",
    105: "stopped by a signal",
    106: "REST API address in use",
    107: "script exception during init",
    108: "aborted by the script (test.abort)",
    110: "failed by the script (test.fail)",
    255: "k6 error",
}
# Exits that a second attempt would repeat (bad script or options, the script's own verdict).
DETERMINISTIC_EXITS = frozenset({104, 107, 108, 110})
# Exits after a stop someone asked for (REST API, signal): not failures of k6.
STOPPED_EXITS = frozenset({103, 105})
STDERR_TAIL_LINES = 60


def is_script_error(line: str) -> bool:
    """An exception k6 logged inside an iteration. k6 logs its threshold verdict at
    level=error too; that is a result, not an error of the script."""
    return (
        "level=error" in line
        and 'msg="thresholds on metrics' not in line
        and " output=" not in line  # an output's own trouble (a push that failed), not the script's
    )


@dataclass(frozen=True)
class K6Outcome:
    exit_code: int
    timed_out: bool
    stderr_tail: str
    summary: dict[str, Any] | None
    stopped: bool = False  # stopped early on request (abort, budget)
    # Lines k6 logged at level=error: exceptions inside iterations. k6 still exits 0 for
    # them, yet the steps after the failing one never ran.
    script_errors: int = 0
    # Requests k6 itself refused because their address is outside the run's (--blacklist-ip).
    blacklisted: int = 0
    # What k6 warned about (message -> times), e.g. "Insufficient VUs, reached 20 active VUs
    # and cannot initialize more": the generator could not make the load the plan asked for.
    warnings: dict[str, int] = field(default_factory=dict)

    @property
    def completed(self) -> bool:
        """k6 ran the test to its end (a failed threshold is a result, not an error)."""
        return (
            self.exit_code in (EXIT_OK, EXIT_THRESHOLDS_FAILED)
            and not self.timed_out
            and not self.stopped
        )

    @property
    def crashed(self) -> bool:
        """k6 itself failed: worth a retry. Script and config errors fail the same way again,
        and a stop we asked for is not a failure."""
        if self.completed or self.timed_out or self.stopped:
            return False
        return self.exit_code not in DETERMINISTIC_EXITS | STOPPED_EXITS

    @property
    def thrown(self) -> list[str]:
        """The stderr tail's level=error lines: exceptions k6 logged inside iterations."""
        return [line for line in self.stderr_tail.splitlines() if is_script_error(line)]

    def describe(self) -> str:
        meaning = EXIT_MEANINGS.get(self.exit_code, "unexpected exit")
        return f"k6 exited with {self.exit_code} ({meaning})"


SUMMARY_FILE = "summary.json"  # handleSummary's output, relative to k6's working directory
EXPORT_FILE = "summary-export.json"
SECRET_PLACEHOLDER = "(set when the run starts)"


def k6_env(secrets: dict[str, str]) -> dict[str, str]:
    """k6's whole environment, the same for ``inspect`` and ``run`` but for secret values: a
    script whose options depend on ``__ENV`` must read the same options at both (only the
    secrets its plan names go in, never the service's own environment)."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
        "K6_NO_USAGE_REPORT": "true",
        # Metric timestamps in UTC ("…Z"), whatever the host's zone.
        "TZ": "UTC",
        "PERF_AGENT_SUMMARY": SUMMARY_FILE,
        **secrets,
    }


def memory_bytes() -> int | None:
    """The memory this process may use: its cgroup's limit when one is set, else the machine's."""
    with contextlib.suppress(OSError, ValueError):
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            return int(limit)
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return None


def go_runtime_env(gogc: int, memory_share: float) -> dict[str, str]:
    """Go GC settings for a k6 run: ``GOGC`` trades heap for GC work (a live output keeps a
    second of samples on k6's heap), ``GOMEMLIMIT`` makes the GC tighten before memory runs
    short, so a bigger GOGC cannot run a large test out of memory."""
    env = {"GOGC": str(gogc)}
    total = memory_bytes()
    if total is not None:
        env["GOMEMLIMIT"] = str(max(int(total * memory_share), 64 << 20))
    return env


class ScriptRejected(ValueError):
    """``k6 inspect`` refused a script; the message is k6's own."""


async def inspect_script(
    binary: str,
    script: str,
    *,
    timeout_s: float = 30.0,
    requirements: bool = False,
    settings: Settings | None = None,
    secrets: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Have k6 parse the script and return the options it would run with (with
    ``requirements``: also ``maxVUs`` and ``totalDuration`` over all its scenarios).

    With ``settings`` and a sandbox available there, k6 runs in it with no network at all, so
    the script's init code (which ``inspect`` runs) reaches no file and no host. ``secrets``
    are the run's (names with placeholder values at plan time), so ``__ENV`` reads the same."""
    with tempfile.TemporaryDirectory(prefix="perf-agent-inspect-") as tmp:
        path = Path(tmp) / "script.js"
        await asyncio.to_thread(path.write_text, script)
        # `k6 run` passes its environment to __ENV, `k6 inspect` does not unless asked: without
        # this flag a script's options could read one way here and another when it runs.
        flags = ["--include-system-env-vars"]
        flags += ["--execution-requirements"] if requirements else []
        async with contextlib.AsyncExitStack() as stack:
            if settings is not None and sandbox.enabled(settings):
                box = await stack.enter_async_context(sandbox.confined(settings, binary, None))
                inside = await asyncio.to_thread(box.bring_in, path, "script.js")
                argv = launcher_argv(box.argv(["inspect", *flags, inside]), uid=box.uid)
                cwd = "/"
            else:
                argv, cwd = [binary, "inspect", *flags, str(path)], tmp
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=cwd,
                env=k6_env(secrets or {}),
                start_new_session=True,
            )
            try:
                stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout_s)
            except TimeoutError:
                raise ScriptRejected(
                    f"k6 took longer than {timeout_s:g} s to read the script's options (its init "
                    "code runs when it is inspected: keep it short)"
                ) from None
            finally:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    await asyncio.shield(proc.wait())
    if proc.returncode != 0:
        redact = redactor(secrets)
        message = redact(stderr).decode(errors="replace").strip() or redact(stdout).decode(
            errors="replace"
        )
        raise ScriptRejected(message[-2000:])
    options: dict[str, Any] = json.loads(stdout)
    return options


@cache
def k6_version(binary: str) -> str | None:
    import subprocess

    try:
        done = subprocess.run(
            [binary, "version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = done.stdout.strip().splitlines()
    return first[0][:100] if first else None


@dataclass
class _Counts:
    errors: int = 0
    blacklisted: int = 0
    warnings: dict[str, int] = field(default_factory=dict)

    def warned(self, text: str) -> None:
        found = _WARNING_MSG.search(text)
        message = (found.group(1) if found else text)[:200]
        if message in self.warnings or len(self.warnings) < MAX_WARNINGS:
            self.warnings[message] = self.warnings.get(message, 0) + 1


# k6's logfmt line: level=warning msg="Insufficient VUs, reached 20 active VUs and cannot ..."
_WARNING_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')
MAX_WARNINGS = 20  # distinct messages kept; a script can log a new one per iteration


REDACTED = b"[redacted]"


def redactor(secrets: dict[str, str] | None) -> Callable[[bytes], bytes]:
    """Replaces every secret value in what k6 prints: a script may ``console.log`` them, and
    its log is stored and shown (``stderr_tail``)."""
    values = sorted({v.encode() for v in (secrets or {}).values() if len(v) >= 4}, key=len)

    def redact(data: bytes) -> bytes:
        for value in reversed(values):  # longest first: one secret may contain another
            data = data.replace(value, REDACTED)
        return data

    return redact


async def _pump(
    stream: asyncio.StreamReader | None,
    sink: Any,
    tail: deque[str] | None,
    counts: _Counts | None = None,
    redact: Callable[[bytes], bytes] = bytes,
) -> None:
    if stream is None:
        return
    while line := await stream.readline():
        line = redact(line)
        sink.write(line)
        text = line.decode("utf-8", errors="replace").rstrip()
        if counts is not None and is_script_error(text):
            counts.errors += 1
        if counts is not None and "is in a blacklisted range" in text:
            counts.blacklisted += 1
        elif counts is not None and "level=warning" in text:
            counts.warned(text)
        if tail is not None:
            tail.append(text)


async def _read_metrics(
    stream: asyncio.StreamReader | None, on_metrics: Callable[[bytes], None]
) -> None:
    """k6's stdout carries its JSON metric stream: hand it on in chunks as it comes."""
    if stream is None:
        return
    broken = False
    while chunk := await stream.read(1 << 20):
        if broken:
            continue  # keep draining: a full pipe would stall k6 itself
        try:
            on_metrics(chunk)
        except Exception:
            broken = True
            log.exception("live metrics failed; the rest of k6's stream is dropped")


def _signal(proc: asyncio.subprocess.Process, sig: int) -> None:
    """To k6's whole process group (k6 alone, or bwrap with k6 inside it)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


async def _stop(proc: asyncio.subprocess.Process, grace_s: float) -> None:
    """SIGINT (graceful: k6 still writes its summary), then SIGKILL after the grace period."""
    if proc.returncode is not None:
        return
    _signal(proc, signal.SIGINT)
    try:
        await asyncio.wait_for(proc.wait(), grace_s)
    except TimeoutError:
        log.warning("k6 (pid %s) ignored SIGINT for %ss; killing it", proc.pid, grace_s)
        _signal(proc, signal.SIGKILL)
        await proc.wait()


async def _wait(
    proc: asyncio.subprocess.Process, timeout_s: float, stop: asyncio.Event | None
) -> str:
    """How k6's run ended: "exit" by itself, "timeout", or "stop" on request."""
    waiters = {asyncio.ensure_future(proc.wait()): "exit"}
    if stop is not None:
        waiters[asyncio.ensure_future(stop.wait())] = "stop"
    try:
        done, _ = await asyncio.wait(
            waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for waiter in waiters:
            waiter.cancel()
    if not done:
        return "timeout"
    if proc.returncode is not None:
        return "exit"
    return waiters[done.pop()]


def from_summary_export(export: dict[str, Any]) -> dict[str, Any]:
    """k6's ``--summary-export`` in the shape of ``handleSummary`` data.

    Two traps of that (deprecated) format: a threshold's value ``true`` means it FAILED, and
    a Rate's value is called ``value``.
    """
    metrics: dict[str, Any] = {}
    for name, metric in export.get("metrics", {}).items():
        values = {k: v for k, v in metric.items() if k != "thresholds"}
        if "passes" in values and "value" in values:
            values["rate"] = values.pop("value")
        thresholds = {
            expression: {"ok": not failed}
            for expression, failed in (metric.get("thresholds") or {}).items()
        }
        metrics[name] = {"values": values, "thresholds": thresholds}
    return {"metrics": metrics, "root_group": export.get("root_group", {}), "state": {}}


def _prepare(workdir: Path, summary_path: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    summary_path.unlink(missing_ok=True)
    (workdir / EXPORT_FILE).unlink(missing_ok=True)


def _read_summary(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None  # k6 was killed before handleSummary ran
    summary: dict[str, Any] = json.loads(path.read_text())
    return summary


async def run_k6(
    *,
    binary: str,
    script: Path,
    workdir: Path,
    timeout_s: float,
    grace_s: float,
    secrets: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
    stop: asyncio.Event | None = None,
    on_start: Callable[[int], Awaitable[None]] | None = None,
    address: str = "127.0.0.1:0",
    on_metrics: Callable[[bytes], None] | None = None,
    box: sandbox.Confinement | None = None,
    env: dict[str, str] | None = None,
) -> K6Outcome:
    """Run k6 until it exits, times out or is asked to stop. With ``on_metrics``, k6 writes
    its metric samples as JSON lines to stdout and each chunk of them is passed on. In a
    sandbox (``box``), k6 sees only the script, and what it writes comes back to ``workdir``.
    ``env`` adds to k6's environment (an output's settings; the script can read them too)."""
    summary_path = workdir / SUMMARY_FILE
    export_path = workdir / EXPORT_FILE
    await asyncio.to_thread(_prepare, workdir, summary_path)
    if box is not None:
        script_arg = await asyncio.to_thread(box.bring_in, script, "script.js")
        export_arg = box.inside(EXPORT_FILE)
    else:
        script_arg, export_arg = str(script), str(export_path)
    argv = [
        binary,
        "run",
        "--no-color",
        "--quiet",
        # Each k6 needs its own REST API address (port 0: the kernel chooses, unreachable to us).
        "--address",
        address,
        "--summary-trend-stats",
        ",".join(TREND_STATS),
        # Hand-written scripts have no handleSummary of ours: k6's export is the fallback.
        "--summary-export",
        export_arg,
        *(["--out", "json=-"] if on_metrics is not None else []),
        *(extra_args or []),
        script_arg,
    ]
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    counts = _Counts()
    redact = redactor(secrets)
    timed_out = stopped = False
    with (workdir / "k6.log").open("wb") as sink:
        command = (
            launcher_argv(argv) if box is None else launcher_argv(box.argv(argv[1:]), uid=box.uid)
        )
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=workdir if box is None else "/",
            env={**(env or {}), **k6_env(secrets or {})},
            start_new_session=True,  # a Ctrl-C aimed at the service does not hit k6 directly
        )
        log.info("k6 started (pid %s): %s", proc.pid, " ".join(argv))
        stdout = (
            _read_metrics(proc.stdout, on_metrics)
            if on_metrics is not None
            else _pump(proc.stdout, sink, None, redact=redact)
        )
        pumps = asyncio.gather(stdout, _pump(proc.stderr, sink, tail, counts, redact))
        try:
            if on_start is not None:
                await on_start(proc.pid)
            ended = await _wait(proc, timeout_s, stop)
            if ended == "timeout":
                timed_out = True
                log.warning("k6 (pid %s) passed its %ss limit; stopping it", proc.pid, timeout_s)
                await _stop(proc, grace_s)
            elif ended == "stop":
                stopped = True
                log.info("k6 (pid %s) stopped on request", proc.pid)
                await _stop(proc, grace_s)
        finally:
            if proc.returncode is None:
                # Cancelled (shutdown, abort): never leave k6 running behind us.
                _signal(proc, signal.SIGKILL)
                await asyncio.shield(proc.wait())
            await asyncio.shield(pumps)
    if box is not None:
        for name in (SUMMARY_FILE, EXPORT_FILE):
            await asyncio.to_thread(box.take_out, name, workdir / name)
    summary = None
    try:
        summary = await asyncio.to_thread(_read_summary, summary_path)
        if summary is None:
            export = await asyncio.to_thread(_read_summary, export_path)
            summary = from_summary_export(export) if export is not None else None
    except (OSError, json.JSONDecodeError) as exc:
        tail.append(f"perf-agent: unreadable summary: {exc}")
    assert proc.returncode is not None
    return K6Outcome(
        exit_code=proc.returncode,
        timed_out=timed_out,
        stderr_tail="\n".join(tail),
        summary=summary,
        stopped=stopped,
        script_errors=counts.errors,
        blacklisted=counts.blacklisted,
        warnings=counts.warnings,
    )
