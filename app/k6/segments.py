"""One test split across k6 processes with k6's execution segments, started together.

Each process gets `--execution-segment i/N:(i+1)/N` and the whole sequence, so every
executor's VUs, iterations and rates divide between the processes. The parts add up exactly
to the whole test. Every process starts `--paused`. Once all of them are up, each is resumed
through its REST API, as k6-operator's starter does, so the segments load the target
together and not one after another.

`setup()` and `teardown()` run in segment 0 only (`--no-setup`/`--no-teardown` elsewhere).
So a script that hands setup data to its VUs cannot be split this way: the other segments
would get none. perf-agent's generated scripts have no setup.

Each process checks its own thresholds and writes its own summary. Counts add up; percentiles
do not. The merged run's percentiles come from the segments' histograms.
"""

from __future__ import annotations

import asyncio
import time
from fractions import Fraction

import httpx

MAX_SEGMENTS = 32
_STATUS = "/v1/status"


def _check(count: int) -> None:
    if not 1 <= count <= MAX_SEGMENTS:
        raise ValueError(f"a test splits into 1 to {MAX_SEGMENTS} segments, not {count}")


def sequence(count: int) -> str:
    """``--execution-segment-sequence`` for ``count`` equal segments: ``0,1/3,2/3,1``."""
    _check(count)
    return ",".join(str(Fraction(i, count)) for i in range(count + 1))


def segment(index: int, count: int) -> str:
    """``--execution-segment`` of segment ``index`` (from 0): ``1/3:2/3``."""
    _check(count)
    if not 0 <= index < count:
        raise ValueError(f"segment {index} of {count} does not exist")
    return f"{Fraction(index, count)}:{Fraction(index + 1, count)}"


def arguments(index: int, count: int) -> list[str]:
    """k6 run's arguments for one segment: its part, the whole sequence, paused, and setup and
    teardown left to segment 0."""
    args = [
        "--execution-segment", segment(index, count),
        "--execution-segment-sequence", sequence(count),
        "--paused",
    ]  # fmt: skip
    if index > 0:
        args += ["--no-setup", "--no-teardown"]
    return args


async def paused(client: httpx.AsyncClient, address: str) -> bool | None:
    """Whether the k6 at ``address`` (host:port of its REST API) is paused; None while it
    does not answer yet."""
    try:
        response = await client.get(f"http://{address}{_STATUS}", timeout=2.0)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    return bool(response.json()["data"]["attributes"]["paused"])


async def wait_paused(client: httpx.AsyncClient, address: str, *, timeout_s: float) -> None:
    """Until the k6 at ``address`` is up, paused and ready to be resumed. Raises TimeoutError
    after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while await paused(client, address) is not True:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"k6 at {address} was not up and paused within {timeout_s:g} s")
        await asyncio.sleep(0.05)


async def resume(client: httpx.AsyncClient, address: str) -> None:
    """Un-pause the k6 at ``address`` through its REST API."""
    body = {"data": {"type": "status", "id": "default", "attributes": {"paused": False}}}
    response = await client.patch(f"http://{address}{_STATUS}", json=body, timeout=5.0)
    response.raise_for_status()


async def resume_together(addresses: list[str], *, timeout_s: float = 60.0) -> float:
    """Wait until every k6 is paused and ready, then resume them all at once. Returns the
    spread of the resumes in seconds."""
    async with httpx.AsyncClient() as client:
        await asyncio.gather(*(wait_paused(client, a, timeout_s=timeout_s) for a in addresses))
        started = time.monotonic()
        await asyncio.gather(*(resume(client, a) for a in addresses))
        return time.monotonic() - started
