"""Live metrics of a running k6: its JSON stream binned into per-second, per-endpoint figures.

k6 writes one JSON line per metric sample to stdout (``--out json=-``). Only three kinds of
line are decoded — ``http_req_duration`` (one per request; its ``name`` and
``expected_response`` tags give the endpoint and whether it failed), ``vus`` (once a second)
and ``iterations`` — the rest are skipped on a byte-prefix test. ``bench/datapath.py``
compared this path with k6's other outputs (bench/README.md): it is the one that gives
per-second, per-endpoint percentiles, and it reproduces k6's summary sample for sample.

Each second yields a sample (requests, failures, VUs, latency percentiles per endpoint and
over all); every ``window_s`` seconds each endpoint's latency histogram is handed on to be
stored. Latency histograms hold the responses k6 counts as expected (``expected_response``),
as do the ``http_req_duration{expected_response:true}`` figures of k6's summary. The run's
final per-endpoint results are read from the sum of the same histograms.

A second is closed once k6 has written a point half a second past its end (k6 stamps a
request with its end time), or by the clock when nothing arrives. A point for a second already
closed is counted in the window still open, so the stored windows always add up to the totals.
"""

from __future__ import annotations

import base64
import calendar
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import numpy as np

from app.core import metrics, slis
from app.k6.remote_write import NativeHistogram, Series
from app.runs.histogram import Histogram

ALL = "*"
MAX_SERIES = 50  # endpoints tracked apart; a raw script naming more folds the rest into ALL
MAX_NAME = 200
DATA_GRACE_S = 0.5
CLOCK_GRACE_S = 2.0


class _Tags(msgspec.Struct):
    name: str = ""
    expected_response: str = ""


class _Data(msgspec.Struct):
    time: str
    value: float
    tags: _Tags | None = None


class _Point(msgspec.Struct):
    metric: str
    data: _Data


_DECODE = msgspec.json.Decoder(list[_Point])
_DURATION = b'{"metric":"http_req_duration","type":"Point"'
_VUS = b'{"metric":"vus","type":"Point"'
_ITERATIONS = b'{"metric":"iterations","type":"Point"'
WANTED = (_DURATION, _VUS, _ITERATIONS)
DURATION_SERIES = "k6_http_req_duration_seconds"


_SECONDS: dict[str, int] = {}


def _wall_second(stamp: str) -> int:
    key = stamp[:19]
    second = _SECONDS.get(key)
    if second is None:
        if len(_SECONDS) > 100_000:
            _SECONDS.clear()
        second = _SECONDS[key] = calendar.timegm(time.strptime(key, "%Y-%m-%dT%H:%M:%S"))
    return second


def _epoch(stamp: str) -> float:
    """k6's RFC 3339 stamp to epoch seconds: ``…T19:22:35.401027Z`` (k6 runs with TZ=UTC)
    or, should it not, with an offset such as ``…T20:22:35.401027+01:00``."""
    rest = stamp[19:]
    offset = 0
    if rest.endswith("Z"):
        rest = rest[:-1]
    elif len(rest) >= 6 and rest[-6] in "+-" and rest[-3] == ":":
        sign = 1 if rest[-6] == "+" else -1
        offset = sign * (int(rest[-5:-3]) * 3600 + int(rest[-2:]) * 60)
        rest = rest[:-6]
    return _wall_second(stamp) - offset + (float("0" + rest) if rest else 0.0)


@dataclass
class _Series:
    """One endpoint over some span: request and failure counts, latency of expected responses."""

    requests: int = 0
    failures: int = 0
    latency: Histogram = field(default_factory=Histogram)

    def add(self, other: _Series) -> None:
        self.requests += other.requests
        self.failures += other.failures
        self.latency.add(other.latency)

    def figures(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failures": self.failures,
            "latency_ms": {k: _round(v) for k, v in self.latency.stats().items()},
        }


@dataclass
class _Second:
    start: int
    ok: dict[str, list[float]] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    vus: float | None = None
    iterations: int = 0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class LiveMetrics:
    """Feed it k6's stdout; drain samples and window histograms from ``outbox``."""

    def __init__(self, endpoints: list[str], *, window_s: int = 10) -> None:
        self.known = set(endpoints)
        self.window_s = window_s
        self.rest = b""
        self.seconds: dict[int, _Second] = {}
        self.closed_through: int | None = None  # the newest closed second
        self.first: int | None = None
        self.newest = 0.0
        self.window_start: int | None = None
        self.window_last: int | None = None
        self.window: dict[str, _Series] = {}
        self.totals: dict[str, _Series] = {}
        self.vus = 0.0
        # The highest VU count k6 has reported so far, as soon as it arrives (the guardrail
        # acts on it; ``vus`` follows the closed seconds).
        self.reported_vus = 0.0
        self.vu_seconds = 0.0
        self.points = 0
        self.late = 0
        self.broken = False  # set by the caller when the stream could not be read
        self.outbox: list[dict[str, Any]] = []

    # -- input ---------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        lines = (self.rest + chunk).split(b"\n")
        self.rest = lines.pop()
        self._take([line for line in lines if line.startswith(WANTED)])

    def tick(self, now: float | None = None) -> None:
        """Close the seconds the clock says are over, even when k6 writes nothing."""
        self._close_until((now if now is not None else time.time()) - CLOCK_GRACE_S)

    def finish(self) -> None:
        if self.rest.startswith(WANTED):
            self._take([self.rest])
        self.rest = b""
        self._close_until(float("inf"))
        self._flush_window()

    def _take(self, lines: list[bytes]) -> None:
        if not lines:
            return
        try:
            points = _DECODE.decode(b"[" + b",".join(lines) + b"]")
        except msgspec.DecodeError:
            # A line k6 cut short (killed mid-write): decode the rest one by one.
            points = []
            for line in lines:
                try:
                    points.append(_DECODE.decode(b"[" + line + b"]")[0])
                except msgspec.DecodeError:
                    continue
        metrics.K6_POINTS.inc(len(points))
        newest = self.newest
        for point in points:
            data = point.data
            try:
                epoch = _epoch(data.time)
            except ValueError:
                continue  # not a time k6 writes: skip the point, keep the stream
            second = int(epoch // 1)
            if self.first is None:
                self.first = second
            newest = max(newest, epoch)
            if self.closed_through is not None and second <= self.closed_through:
                self._late(point)
                continue
            bin_ = self.seconds.get(second)
            if bin_ is None:
                bin_ = self.seconds[second] = _Second(second)
            if point.metric == "http_req_duration":
                self.points += 1
                name = self._series_name(data.tags)
                bin_.requests[name] = bin_.requests.get(name, 0) + 1
                if data.tags is not None and data.tags.expected_response == "false":
                    bin_.failures[name] = bin_.failures.get(name, 0) + 1
                else:
                    bin_.ok.setdefault(name, []).append(data.value)
            elif point.metric == "vus":
                bin_.vus = data.value
                self.reported_vus = max(self.reported_vus, data.value)
            else:
                bin_.iterations += int(data.value)
        self.newest = newest
        self._close_until(newest - DATA_GRACE_S)

    def _series_name(self, tags: _Tags | None) -> str:
        return self._named(tags.name if tags is not None else "")

    def _named(self, name: str) -> str:
        if name in self.known:
            return name
        # A raw script's URL names can be long; they are stored in a 200-character column.
        if name and len(name) <= MAX_NAME and len(self.known) < MAX_SERIES:
            self.known.add(name)
            return name
        return ALL

    def _late(self, point: _Point) -> None:
        if point.metric != "http_req_duration":
            return
        self.late += 1
        self.points += 1
        one = _Series(requests=1)
        if point.data.tags is not None and point.data.tags.expected_response == "false":
            one.failures = 1
        else:
            one.latency.record(np.array([point.data.value]))
        name = self._series_name(point.data.tags)
        for key in {name, ALL}:
            self._window_series(key).add(one)
            self.totals.setdefault(key, _Series()).add(one)

    # -- seconds and windows --------------------------------------------------------------

    def _close_until(self, before: float) -> None:
        """Close every open second that ended at or before ``before`` (epoch seconds)."""
        for start in sorted(s for s in self.seconds if s + 1 <= before):
            self._close(self.seconds.pop(start))

    def _close(self, second: _Second) -> None:
        per_name: dict[str, _Series] = {}
        for name in sorted(set(second.requests) | set(second.ok)):
            series = _Series(second.requests.get(name, 0), second.failures.get(name, 0))
            series.latency.record(np.array(second.ok.get(name, ()), dtype=np.float64))
            per_name[name] = series
        self._emit(second.start, per_name, second.vus, second.iterations)

    def _emit(
        self, start: int, per_name: dict[str, _Series], vus: float | None, iterations: int
    ) -> None:
        """One second's figures: into the sample stream, the open window and the totals."""
        assert self.first is not None
        self.closed_through = start
        if vus is not None:
            self.vus = vus
        self.vu_seconds += self.vus
        if self.window_start is None:
            self.window_start = start
        elif start - self.window_start >= self.window_s:
            self._flush_window()
            self.window_start = start
        self.window_last = start
        overall = _Series()
        for series in per_name.values():
            overall.add(series)
        # Requests folded into ALL are in ``overall`` already: added once, through it.
        named = [(name, series) for name, series in per_name.items() if name != ALL]
        for name, series in [*named, (ALL, overall)]:
            self._window_series(name).add(series)
            self.totals.setdefault(name, _Series()).add(series)
        everything = self.totals.get(ALL, _Series())
        self.outbox.append(
            {
                "type": "sample",
                "at": datetime.fromtimestamp(start, UTC).isoformat(),
                "sample": {
                    "elapsed_s": start - self.first,
                    "vus": int(self.vus),
                    "iterations": iterations,
                    **overall.figures(),
                    "total_requests": everything.requests,
                    "total_failures": everything.failures,
                    "vu_seconds": round(self.vu_seconds, 1),
                    "endpoints": {name: s.figures() for name, s in per_name.items() if name != ALL},
                },
            }
        )

    def _window_series(self, name: str) -> _Series:
        series = self.window.get(name)
        if series is None:
            series = self.window[name] = _Series()
        return series

    def _flush_window(self) -> None:
        if not self.window or self.window_start is None or self.first is None:
            return
        start = self.window_start
        self.outbox.append(
            {
                "type": "histograms",
                "at": datetime.fromtimestamp(start, UTC).isoformat(),
                "start_s": start - self.first,
                "seconds": (self.window_last or start) - start + 1,
                "series": [
                    {
                        "endpoint": name,
                        "requests": series.requests,
                        "failures": series.failures,
                        **series.latency.to_record(),
                        "counts": base64.b64encode(series.latency.encode()).decode(),
                    }
                    for name, series in sorted(self.window.items())
                ],
            }
        )
        self.window = {}

    def drain(self) -> list[dict[str, Any]]:
        out, self.outbox = self.outbox, []
        return out

    # -- results ------------------------------------------------------------------------

    def results(self, endpoints: list[str], duration_s: float | None) -> list[dict[str, Any]]:
        """Run results per endpoint (``*`` first) from the whole run's histograms."""
        rows = []
        seconds = duration_s or self._span()
        for name in [ALL, *endpoints]:
            series = self.totals.get(name, _Series())
            stats = series.latency.stats()
            rows.append(
                {
                    "endpoint": name,
                    "requests": series.requests,
                    "failures": series.failures,
                    "rps": series.requests / seconds if seconds else 0.0,
                    "error_rate": series.failures / series.requests if series.requests else 0.0,
                    **{column: stats[name] for column, name in slis.STORED_LATENCY_SLI.items()},
                }
            )
        return rows

    def _span(self) -> float:
        if self.first is None or self.closed_through is None:
            return 1.0
        return float(self.closed_through - self.first + 1)


HOLD_S = 0.3  # k6's final push at its stop follows its last periodic one by milliseconds


@dataclass
class _Interval:
    """What one push added: per endpoint, requests, failures and expected responses' latency."""

    at_s: float  # the push's own time stamp (k6's clock), epoch seconds
    received: float
    series: dict[str, _Series] = field(default_factory=dict)
    vus: float | None = None
    iterations: int = 0

    def merge(self, later: _Interval) -> None:
        self.at_s = later.at_s
        for name, series in later.series.items():
            self.series.setdefault(name, _Series()).add(series)
        self.vus = later.vus if later.vus is not None else self.vus
        self.iterations += later.iterations


class RemoteWriteLive(LiveMetrics):
    """The same samples, windows and results from k6's remote-write pushes (native
    histograms, cumulative): each push's difference from the one before is one second.

    Counts and failures are exact (every request is one observation of its series'
    ``k6_http_req_duration_seconds`` histogram, ``expected_response`` telling failures). A
    native bucket (~9 % wide) is spread over the finer fixed layout of ``Histogram`` by
    exponential interpolation, as Prometheus reads a quantile inside one, so per-second
    percentiles are within about 1–2 % of exact ones; the whole run's come from k6's summary.
    A push that arrives within ``HOLD_S`` of the one before (k6's final flush) joins it.
    """

    def __init__(self, endpoints: list[str], *, window_s: int = 10) -> None:
        super().__init__(endpoints, window_s=window_s)
        self.previous: dict[tuple[str, tuple[tuple[str, str], ...]], NativeHistogram] = {}
        self.iterations_seen: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.pending: _Interval | None = None
        self.anchor: float | None = None
        self.resets = 0

    def push(self, series: list[Series], received: float) -> None:
        interval = _Interval(at_s=0.0, received=received)
        for one in series:
            interval.at_s = max(interval.at_s, one.timestamp_ms / 1000)
            if one.metric == DURATION_SERIES and one.histogram is not None:
                self._observe(one, interval)
            elif one.metric == "k6_vus" and one.value is not None:
                interval.vus = one.value
                self.reported_vus = max(self.reported_vus, one.value)
            elif one.metric == "k6_iterations_total" and one.value is not None:
                before = self.iterations_seen.get(one.key, 0.0)
                self.iterations_seen[one.key] = one.value
                interval.iterations += max(0, int(one.value - before))
        metrics.K6_POINTS.inc(len(series))
        if interval.at_s == 0.0:
            return
        if self.pending is not None and interval.received - self.pending.received < HOLD_S:
            self.pending.merge(interval)
            return
        self._release()
        self.pending = interval

    def _observe(self, one: Series, interval: _Interval) -> None:
        assert one.histogram is not None
        delta = one.histogram.minus(self.previous.get(one.key))
        self.previous[one.key] = one.histogram
        if delta is None:
            # Went backwards: not k6's own cumulative series. Counted from here on.
            self.resets += 1
            return
        if delta.count <= 0:
            return
        name = self._named(one.labels.get("name", ""))
        part = _Series(requests=delta.count)
        if one.labels.get("expected_response") == "false":
            part.failures = delta.count
        else:
            part.latency = Histogram.from_native(
                delta.buckets, schema=delta.schema, zero=delta.zero_count, sum_ms=delta.sum * 1000
            )
        self.points += delta.count
        interval.series.setdefault(name, _Series()).add(part)

    def tick(self, now: float | None = None) -> None:
        if self.pending is not None and (now or time.time()) - self.pending.received >= HOLD_S:
            self._release()

    def finish(self) -> None:
        self._release()
        self._flush_window()

    def _release(self) -> None:
        interval, self.pending = self.pending, None
        if interval is None:
            return
        # A push stamps the end of what it covers: the second before its time stamp. k6
        # pushes on a ticker, so the pushes keep the first one's fraction of a second.
        if self.anchor is None:
            self.anchor = interval.at_s - math.floor(interval.at_s)
        start = math.floor(interval.at_s - self.anchor + 0.5) - 1
        if self.first is None:
            self.first = start
        if self.closed_through is not None and start <= self.closed_through:
            start = self.closed_through + 1
        self._emit(start, dict(sorted(interval.series.items())), interval.vus, interval.iterations)
