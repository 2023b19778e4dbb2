"""Follow a run while it executes, for people and for CI logs.

The run's server-sent events are read in a thread; the caller's thread renders them: a live
display on a terminal, one plain line every ``interval_s`` seconds otherwise (a 30-minute gate
must not be 30 silent minutes in a CI log). If the stream breaks, the run is polled instead.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from app.client import PerfAgentClient

# Said by the progress display itself (the first and the last line); every other run event
# (claimed, k6 started, retry, fallback, budget alerts, aborts …) is printed as it happens.
QUIET_EVENTS = frozenset({"queued", "finished"})


QUEUE_POLL_S = 5.0


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class RunState:
    """What the stream has said so far about one run."""

    run_id: str
    planned_s: float | None
    status: str = "queued"
    elapsed_s: float | None = None
    vus: int | None = None
    rps: float | None = None
    p95_ms: float | None = None
    requests: int = 0
    failures: int = 0
    started: float = field(default_factory=time.monotonic)
    waiting_for: str | None = None  # a queued run's reason, from GET /runs/{id}

    def take(self, event: str, data: dict[str, Any]) -> None:
        if event == "status" or event == "end":
            self.status = str(data.get("status", self.status))
        elif event == "sample":
            sample = data.get("sample", data)
            self.elapsed_s = sample.get("elapsed_s", self.elapsed_s)
            self.vus = sample.get("vus", self.vus)
            self.rps = sample.get("requests")  # that second's count: requests per second
            self.p95_ms = (sample.get("latency_ms") or {}).get("p95")
            self.requests = sample.get("total_requests", self.requests)
            self.failures = sample.get("total_failures", self.failures)

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    def where(self) -> str:
        if self.elapsed_s is None:
            waited = time.monotonic() - self.started
            if self.status == "queued" and self.waiting_for:
                return f"queued, {self.waiting_for} ({waited:.0f} s)"
            waiting = "for a worker" if self.status == "queued" else "for k6's first second"
            return f"{self.status}, waiting {waiting} ({waited:.0f} s)"
        return f"{self.status}  {clock(self.elapsed_s)}/{clock(self.planned_s)}"

    def figures(self) -> str:
        if self.elapsed_s is None:
            return ""
        p95 = "-" if self.p95_ms is None else f"{self.p95_ms:.1f} ms"
        rps = "-" if self.rps is None else f"{self.rps:,.0f}"
        return (
            f"vus {self.vus}  rps {rps}  p95 {p95}  errors {self.error_rate:.2%} "
            f"({self.failures:,}/{self.requests:,})"
        )

    def line(self) -> str:
        """One line for a log."""
        return f"run {self.run_id} {self.where()}  {self.figures()}".rstrip()

    def display(self) -> Group:
        """Two short lines for a terminal: they fit in 80 columns, redrawn in place."""
        return Group(
            Text(f"run {self.run_id[:8]} {_bar(self)} {self.where()}"),
            Text(f"  {self.figures()}"),
        )


def _read(client: PerfAgentClient, run_id: str, into: queue.Queue[tuple[str, Any]]) -> None:
    try:
        for event, data in client.events(run_id):
            into.put((event, data))
    except (httpx.HTTPError, ValueError) as exc:
        into.put(("broken", exc))
    else:
        into.put(("closed", None))


def _bar(state: RunState, width: int = 24) -> str:
    if state.elapsed_s is None or not state.planned_s:
        return "·" * width
    done = min(1.0, state.elapsed_s / state.planned_s)
    return "━" * round(done * width) + "·" * (width - round(done * width))


def follow(
    client: PerfAgentClient,
    run_id: str,
    console: Console,
    *,
    interval_s: float = 10.0,
    timeout_s: float | None = None,
    poll_s: float = 1.0,
) -> dict[str, Any]:
    """Show the run's progress until it finishes; the finished run."""
    run = client.get_run(run_id)
    state = RunState(run_id=run_id, planned_s=run.get("planned_duration_s"), status=run["status"])
    state.waiting_for = (run.get("queue") or {}).get("reason")
    last_asked = time.monotonic()
    deadline = time.monotonic() + timeout_s if timeout_s else None
    interval_s = max(interval_s, 1.0)
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    threading.Thread(target=_read, args=(client, run_id, events), daemon=True).start()
    streaming = True
    last_line, last_status = 0.0, ""

    def say(message: str) -> None:
        console.print(Text(message), soft_wrap=True)

    live = Live(console=console, auto_refresh=False) if console.is_terminal else None
    if live is not None:
        live.start()
    try:
        while True:
            if run["finished"]:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} still {state.status} after {timeout_s:g}s")
            try:
                event, data = events.get(timeout=poll_s)
            except queue.Empty:
                event, data = "", None
            if event in ("broken", "closed"):
                if event == "broken":
                    say(f"live stream lost ({data}); polling the run instead")
                streaming = False
            elif event == "event":
                if data.get("kind") not in QUIET_EVENTS:
                    say(f"{data.get('kind')}: {data.get('message')}")
            elif event:
                state.take(event, data)
            now = time.monotonic()
            # A queued run says what it waits for (its target's slots, a worker): ask again
            # now and then, since the stream says nothing until it starts.
            waiting = state.status == "queued" and now - last_asked >= QUEUE_POLL_S
            if event == "end" or (not streaming and not event) or waiting:
                run = client.get_run(run_id)
                state.status = run["status"]
                state.waiting_for = (run.get("queue") or {}).get("reason")
                last_asked = now
            if live is not None:
                live.update(state.display())
                live.refresh()
            elif not run["finished"] and (
                now - last_line >= interval_s or state.status != last_status
            ):
                say(state.line())
                last_line, last_status = now, state.status
    finally:
        if live is not None:
            live.stop()
    say(f"run {run_id} {run['status']}" + (f": {run['error']}" if run.get("error") else ""))
    return run
