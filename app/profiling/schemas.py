"""The one result shape every profiler source returns.

A :class:`Profile` is a result, never an exception: a source that cannot profile says
``unavailable`` (the tool, the permission, the extension or the endpoint is missing, the
process is gone, nothing was recorded) and one that broke while profiling says ``failed``,
both with a ``reason`` a person can act on.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Source = Literal["py-spy", "pprof", "pg_stat_statements"]
Status = Literal["ok", "unavailable", "failed"]


class FunctionShare(BaseModel):
    """One function's share of the profiled (non-idle) samples. ``self_share``: samples with
    the function at the top of the stack; ``total_share``: samples with it anywhere in the
    stack (counted once per sample, recursion included). ``location`` is ``file:line`` of the
    function's hottest line (py-spy) or ``file:line`` of its start (pprof)."""

    model_config = ConfigDict(frozen=True)

    name: str
    location: str
    self_share: float = Field(ge=0, le=1)
    total_share: float = Field(ge=0, le=1)
    self_samples: int = 0
    total_samples: int = 0


class StackShare(BaseModel):
    """One distinct call stack (function names, root first, leaf last) and its share."""

    model_config = ConfigDict(frozen=True)

    frames: list[str]
    share: float = Field(ge=0, le=1)
    samples: int


class QueryShare(BaseModel):
    """One normalized query's cost over the window (pg_stat_statements deltas). ``share`` is
    its part of the execution time of every query in the window; ``calls_per_request`` is
    ``calls`` divided by the request count the caller gave (None without one)."""

    model_config = ConfigDict(frozen=True)

    query: str
    queryid: int | None = None
    calls: int
    total_ms: float
    mean_ms: float
    rows: int
    share: float = Field(ge=0, le=1)
    calls_per_request: float | None = None


class Profile(BaseModel):
    """What one source found over one window. ``samples`` counts the ranked (non-idle)
    samples for stack sources and the calls for pg_stat_statements; ``idle_samples`` the
    samples dropped as a thread waiting (select, epoll, a lock, a queue)."""

    model_config = ConfigDict(frozen=True)

    source: Source
    status: Status
    reason: str | None = None
    samples: int = 0
    idle_samples: int = 0
    seconds: float = 0.0
    functions: list[FunctionShare] = Field(default_factory=list)
    stacks: list[StackShare] = Field(default_factory=list)
    queries: list[QueryShare] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def unavailable(source: Source, reason: str, *, seconds: float = 0.0) -> Profile:
    return Profile(source=source, status="unavailable", reason=reason, seconds=seconds)


def failed(source: Source, reason: str, *, seconds: float = 0.0) -> Profile:
    return Profile(source=source, status="failed", reason=reason, seconds=seconds)
