"""Where the target's time goes during the run: profiles taken in its steady middle.

The seed's benchmarker (§5.6) drills down with a profiler once it knows which endpoint is
slow. The worker does that during every run whose plan allows it: over a window in the
middle of the test (after the ramp-up, before the end), it samples

- the target's own Python process, when the target is on this machine (py-spy, found by the
  port it listens on — the same processes the system sampler reads);
- a Go ``net/http/pprof`` endpoint the plan names (``profiling.pprof_url``), under the same
  outbound address policy as every call the service makes;
- a PostgreSQL the plan names (``profiling.postgres_dsn_secret``: a read-only DSN the worker
  reads from its environment), as ``pg_stat_statements`` deltas over the same window.

The result is one ``profile`` event of the run: the window, the requests k6 made in it, and
each source's :class:`app.profiling.schemas.Profile` (``ok``, or why not). The analysis cites
it. Nothing here holds a database transaction: the event is written after the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

import psutil

from app.core.errors import GuardrailViolation
from app.core.settings import Settings
from app.guardrails.network import check_outbound, pinned_client
from app.guardrails.service import PPROF
from app.plans.schemas import PlanSpec, Profiling
from app.profiling import pg, pprof, pyspy, source
from app.profiling.schemas import Profile, unavailable
from app.runs.system import ProcessSampler

log = logging.getLogger(__name__)

# The window: from a quarter of the planned duration, half of it long, at most MAX_WINDOW_S.
WINDOW_START = 0.25
WINDOW_SHARE = 0.5
MAX_WINDOW_S = 30.0
MIN_WINDOW_S = 2.0


def window(duration_s: float) -> tuple[float, float] | None:
    """(start, seconds) after k6 started; None for a test too short to profile."""
    seconds = min(MAX_WINDOW_S, duration_s * WINDOW_SHARE)
    if seconds < MIN_WINDOW_S:
        return None
    return duration_s * WINDOW_START, float(int(seconds))


def _python_wanted(config: Profiling, sampler: ProcessSampler | None) -> bool:
    return config.python != "off" and (sampler is not None or config.python == "on")


def wanted(spec: PlanSpec, sampler: ProcessSampler | None) -> bool:
    config = spec.profiling or Profiling()
    return (
        _python_wanted(config, sampler)
        or config.pprof_url is not None
        or config.postgres_dsn_secret is not None
    )


async def _python(config: Profiling, sampler: ProcessSampler | None, seconds: float) -> Profile:
    if sampler is None:
        return unavailable("py-spy", "the target is not on the worker's machine")
    if not sampler.processes:
        return unavailable("py-spy", f"no process on this machine listens on port {sampler.port}")
    # The lowest pid: a server's parent (uvicorn, gunicorn) with its workers as subprocesses.
    pid = min(p.pid for p in sampler.processes)
    return await pyspy.record(pid, seconds, rate=config.rate, subprocesses=True)


HOT_SPOTS = 5


def hot_spots(found: Profile, cwd: str | None) -> list[dict[str, Any]]:
    """The source at the top functions' hottest lines (files on this machine, parsed)."""
    spots = []
    for function in found.functions[:HOT_SPOTS]:
        if function.self_share < 0.05:
            break
        spot = source.hot_spot(function.location, cwd)
        if spot is not None:
            spots.append(
                {
                    "function": function.name.rsplit(".", 1)[-1],
                    "self_share": function.self_share,
                    "total_share": function.total_share,
                    **asdict(spot),
                }
            )
    return spots


def _cwd(sampler: ProcessSampler | None) -> str | None:
    for process in sampler.processes if sampler is not None else []:
        with contextlib.suppress(psutil.Error, OSError):
            return str(process.cwd())
    return None


async def _pprof(url: str, seconds: float, settings: Settings) -> Profile:
    try:
        checked = await check_outbound(url, settings, purpose=PPROF)
    except GuardrailViolation as exc:
        return unavailable("pprof", f"{exc.detail} ({exc.code})")
    async with pinned_client(checked, timeout=seconds + 20) as client:
        return await pprof.fetch(client, checked.url, int(seconds))


async def profile_run(
    spec: PlanSpec,
    settings: Settings,
    sampler: ProcessSampler | None,
    requests_so_far: Callable[[], int],
    record: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    """Sleep until the window, profile every source the plan allows at once, then ``record``
    the result (awaited). Cancelled with the attempt when k6 ends first."""
    config = spec.profiling or Profiling()
    planned = window(spec.load_profile.total_duration_s)
    if planned is None or not wanted(spec, sampler):
        return
    start, seconds = planned
    await asyncio.sleep(start)
    dsn = None
    if config.postgres_dsn_secret is not None:
        dsn = os.environ.get(f"PERF_AGENT_SECRET_{config.postgres_dsn_secret}")
    before_requests = requests_so_far()
    before = await pg.snapshot(dsn) if dsn else None
    jobs: list[asyncio.Task[Profile]] = []
    if _python_wanted(config, sampler):
        jobs.append(asyncio.create_task(_python(config, sampler, seconds)))
    if config.pprof_url is not None:
        jobs.append(asyncio.create_task(_pprof(config.pprof_url, seconds, settings)))
    try:
        profiles = list(await asyncio.gather(*jobs)) if jobs else []
        if not jobs:
            await asyncio.sleep(seconds)  # the database's window only
    finally:
        for job in jobs:
            job.cancel()
    requests = max(0, requests_so_far() - before_requests)
    if config.postgres_dsn_secret is not None:
        if before is None:
            profiles.append(
                unavailable(
                    "pg_stat_statements",
                    f"PERF_AGENT_SECRET_{config.postgres_dsn_secret} is not set for the worker",
                )
            )
        else:
            after = await pg.snapshot(dsn or "")
            profiles.append(pg.delta(before, after, requests=requests or None))
    python = next((p for p in profiles if p.source == "py-spy" and p.ok), None)
    spots = await asyncio.to_thread(hot_spots, python, _cwd(sampler)) if python else []
    await record(
        {
            "window": {"start_s": start, "seconds": seconds},
            "requests": requests,
            "profiles": [p.model_dump(mode="json") for p in profiles],
            "hot_spots": spots,
        }
    )
