"""Compare data paths for streaming live per-second, per-endpoint k6 metrics into the service.

Usage:  .venv/bin/python bench/datapath.py [--pairs 5] [--seconds 5] [--candidates ...]

Every candidate run is bracketed by bare k6 runs (B c1 B c2 B ... cN B, repeated ``--pairs``
times with the candidate order rotated), all running the same closed-loop script at
saturation against a local nginx. Throughput is k6's own request rate (``http_reqs`` count over
``testRunDurationMs`` from ``handleSummary``); a candidate's ratio is its rate over the mean of
the two bare runs around it. Consumers run as separate processes so their CPU and peak RSS
come from ``wait4``. See bench/README.md for the candidates and the measured figures.

The same file is also the consumer program: ``datapath.py --consumer KIND ...`` (internal).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import http.client
import itertools
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, cast

import msgspec
import numpy as np
from hdrh.histogram import HdrHistogram
from machine import machine_busy, tree_cpu, wait_quiet
from targets import Target, free_port, local_target

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_K6 = REPO / ".venv" / "bin" / "k6"
TREND_STATS = "avg,min,med,max,p(50),p(90),p(95),p(99),count"
ENDPOINTS = ("a", "b")
ALL = "*"  # key for "all endpoints" in per-second rows and whole-run figures
PERCENTILES = (50.0, 90.0, 95.0, 99.0)

# ---------------------------------------------------------------------------------------------
# The k6 script: two endpoints per iteration, tagged by name; always-true thresholds make k6
# report the per-endpoint sub-metrics in its summary (see shared notes, "Results").
# ---------------------------------------------------------------------------------------------

K6_SCRIPT = """\
import http from 'k6/http';

const BASE = __ENV.BENCH_TARGET;
const VUS = parseInt(__ENV.BENCH_VUS, 10);
const load = __ENV.BENCH_MODE === 'open'
  ? {
      executor: 'constant-arrival-rate',
      rate: parseInt(__ENV.BENCH_RATE, 10),
      timeUnit: '1s',
      duration: __ENV.BENCH_DURATION,
      preAllocatedVUs: VUS * 5,
      maxVUs: VUS * 20,
      gracefulStop: '5s',
    }
  : { executor: 'constant-vus', vus: VUS, duration: __ENV.BENCH_DURATION, gracefulStop: '5s' };

export const options = {
  scenarios: { load },
  thresholds: {
    'http_req_duration': ['max>=0'],
    'http_req_duration{name:a}': ['max>=0'],
    'http_req_duration{name:b}': ['max>=0'],
    'http_reqs{name:a}': ['count>=0'],
    'http_reqs{name:b}': ['count>=0'],
    'http_req_failed{name:a}': ['rate>=0'],
    'http_req_failed{name:b}': ['rate>=0'],
  },
};

export default function () {
  http.get(`${BASE}/a`, { tags: { name: 'a' } });
  http.get(`${BASE}/b`, { tags: { name: 'b' } });
}

export function handleSummary(data) {
  return { [__ENV.BENCH_SUMMARY]: JSON.stringify(data) };
}
"""

# =============================================================================================
# HDR histograms: the hdrh package's structure and encoding, recorded in bulk with numpy
# =============================================================================================

HDR_HIGHEST_NS = 60 * 10**9  # 60 s
HDR_DIGITS = 3


class BulkHdr:
    """An ``hdrh`` HdrHistogram (1 ns .. 60 s, 3 significant digits) recorded with numpy.

    ``record_value`` in a Python loop costs ~1 s per million samples; here the counts index of
    every value is computed with numpy (the same formula as ``HdrHistogram._counts_index_for``)
    and added to the histogram's own counts array through a zero-copy view, so ``encode()``,
    ``add()`` and the package's percentile functions keep working.
    """

    def __init__(self) -> None:
        self.h = HdrHistogram(1, HDR_HIGHEST_NS, HDR_DIGITS)
        self.counts = np.ctypeslib.as_array(self.h.counts)
        self._shift = self.h.unit_magnitude + self.h.sub_bucket_half_count_magnitude + 1

    def indexes(self, ns: np.ndarray) -> np.ndarray:
        h = self.h
        # bit length of (v | mask): exact through frexp for values below 2**53
        _, pow2ceiling = np.frexp((ns | h.sub_bucket_mask).astype(np.float64))
        bucket = pow2ceiling.astype(np.int64) - self._shift
        sub = ns >> (bucket + h.unit_magnitude)
        return ((bucket + 1) << h.sub_bucket_half_count_magnitude) + sub - h.sub_bucket_half_count

    def record_ms(self, values_ms: np.ndarray) -> None:
        if values_ms.size == 0:
            return
        ns = np.clip(np.rint(values_ms * 1e6), 0, HDR_HIGHEST_NS).astype(np.int64)
        idx = self.indexes(ns)
        binned = np.bincount(idx, minlength=self.counts.size)[: self.counts.size]
        self.counts += binned.astype(self.counts.dtype)
        h = self.h
        h.total_count += int(ns.size)
        h.min_value = min(h.min_value, int(ns.min()))
        h.max_value = max(h.max_value, int(ns.max()))

    def add(self, other: BulkHdr) -> None:
        if other.h.total_count == 0:
            return
        self.counts += other.counts
        self.h.total_count += other.h.total_count
        self.h.min_value = min(self.h.min_value, other.h.min_value)
        self.h.max_value = max(self.h.max_value, other.h.max_value)

    def reset(self) -> None:
        self.counts[:] = 0
        self.h.total_count = 0
        self.h.min_value = sys.maxsize
        self.h.max_value = 0

    @property
    def count(self) -> int:
        return int(self.h.total_count)

    def percentiles_ms(self, pcts: tuple[float, ...] = PERCENTILES) -> dict[str, float]:
        """Percentiles in ms, read with k6's rank convention (linear interpolation between the
        samples at ranks floor/ceil of p*(n-1)), each sample taken at its bucket's midpoint.
        HDR's own ``get_value_at_percentile`` picks rank ceil(p*n) and the bucket's highest
        value; in a sparse tail that is one sample off k6's choice, which at p99 of a second's
        few thousand samples can differ by ~1 %: a convention gap, not a precision one."""
        out: dict[str, float] = {}
        total = self.count
        if total == 0:
            return out
        cum = np.cumsum(self.counts)
        for p in pcts:
            i = p / 100 * (total - 1)
            lo, hi = int(np.floor(i)), int(np.ceil(i))
            a, b = (self.value_at_rank(cum, r) for r in (lo, hi))
            out[f"p{p:g}"] = (a + (b - a) * (i - lo)) / 1e6
        out["max"] = self.h.max_value / 1e6
        return out

    def value_at_rank(self, cum: np.ndarray, rank: int) -> float:
        """The (0-based) rank-th smallest sample, as the midpoint of its bucket, in ns."""
        index = int(np.searchsorted(cum, rank + 1))
        low = self.h.get_value_from_index(index)
        high = self.h.get_highest_equivalent_value(low)
        return float(low + (high - low) / 2)

    def hdr_percentiles_ms(self, pcts: tuple[float, ...] = PERCENTILES) -> dict[str, float]:
        """HDR semantics (``get_value_at_percentile``: highest equivalent value), in ms."""
        out: dict[str, float] = {}
        total = self.count
        if total == 0:
            return out
        cum = np.cumsum(self.counts)
        for p in pcts:
            target = max(int(p * total / 100 + 0.5), 1)
            index = int(np.searchsorted(cum, target))
            value = self.h.get_highest_equivalent_value(self.h.get_value_from_index(index))
            out[f"p{p:g}"] = value / 1e6
        return out

    def encoded_size(self) -> int:
        return len(self.h.encode())


def hdr_selfcheck() -> None:
    """The numpy index formula must agree with hdrh's own record_value."""
    rng = np.random.default_rng(1)
    values = np.concatenate(
        [rng.integers(1, 5000, 200), rng.lognormal(13, 2, 2000).astype(np.int64) + 1]
    )
    values = values[values < HDR_HIGHEST_NS]
    bulk = BulkHdr()
    bulk.record_ms(values / 1e6)
    ref = HdrHistogram(1, HDR_HIGHEST_NS, HDR_DIGITS)
    for v in values.tolist():
        ref.record_value(v)
    ref_counts = np.ctypeslib.as_array(ref.counts)
    if not np.array_equal(bulk.counts, ref_counts):
        raise AssertionError("bulk HDR recording disagrees with hdrh.record_value")
    exact = np.sort(values) / 1e6
    for p in PERCENTILES:
        if ref.get_value_at_percentile(p) / 1e6 != bulk.hdr_percentiles_ms()[f"p{p:g}"]:
            raise AssertionError(f"bulk HDR p{p} disagrees with hdrh")
        got, want = bulk.percentiles_ms()[f"p{p:g}"], k6_percentile(exact, p)
        if abs(got - want) > want * 0.001:
            raise AssertionError(f"HDR p{p} {got} is not within 0.1 % of exact {want}")


def k6_percentile(sorted_values: np.ndarray, pct: float) -> float:
    """k6's TrendSink.P: linear interpolation at index pct*(n-1) of the sorted samples."""
    n = sorted_values.size
    if n == 0:
        return float("nan")
    i = pct / 100 * (n - 1)
    lo = int(np.floor(i))
    hi = int(np.ceil(i))
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (i - lo))


# =============================================================================================
# Consumers (each runs in its own process: ``datapath.py --consumer KIND``)
# =============================================================================================


class Tags(msgspec.Struct):
    name: str = ""
    expected_response: str = ""


class PointData(msgspec.Struct):
    time: str
    value: float
    tags: Tags | None = None


class Point(msgspec.Struct):
    metric: str
    data: PointData


POINTS = msgspec.json.Decoder(list[Point])
# Only these lines are decoded; ~11 of every 12 lines k6 writes per request are skipped
# on a bytes prefix test. http_req_duration carries the name and expected_response tags,
# so it also gives the request and failure counts.
WANTED = (
    b'{"metric":"http_req_duration","type":"Point"',
    b'{"metric":"vus","type":"Point"',
)

_EPOCH_CACHE: dict[str, float] = {}


def parse_epoch(ts: str) -> float:
    """RFC 3339 with up to 9 fraction digits (Go trims trailing zeros) to epoch seconds."""
    base = ts[:19]
    rest = ts[19:]
    frac = 0.0
    if rest.startswith("."):
        i = 1
        while i < len(rest) and rest[i].isdigit():
            i += 1
        frac = float(rest[:i])
        rest = rest[i:]
    key = base + rest
    sec = _EPOCH_CACHE.get(key)
    if sec is None:
        tz = "+00:00" if rest in ("Z", "") else rest
        sec = dt.datetime.fromisoformat(base + tz).timestamp()
        _EPOCH_CACHE[key] = sec
    return sec + frac


@dataclass
class SecondBin:
    key: str
    start: float  # epoch of the second's start
    values: dict[str, list[float]] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    vus: float | None = None


class JsonBinner:
    """Bins k6 JSON points into per-second, per-endpoint HDR histograms.

    A second is closed (histograms built, stats computed, the encoded histogram sized, the
    raw samples dropped) once a point at least ``grace`` s past its end has been seen.
    """

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.bins: dict[str, SecondBin] = {}
        self.closed: set[str] = set()
        self.rows: list[dict[str, Any]] = []
        self.totals: dict[str, BulkHdr] = {}
        self.scratch = BulkHdr()
        self.second_all = BulkHdr()
        self.newest = 0.0
        self.points = 0
        self.late = 0
        self.lags: list[float] = []  # wall clock minus newest point time, per chunk
        self.publish_delays: list[float] = []  # close time minus end of the second
        self.encoded_bytes = 0

    def total(self, name: str) -> BulkHdr:
        hist = self.totals.get(name)
        if hist is None:
            hist = self.totals[name] = BulkHdr()
        return hist

    def feed(self, points: list[Point]) -> None:
        if not points:
            return
        for p in points:
            d = p.data
            key = d.time[:19]
            b = self.bins.get(key)
            if b is None:
                if key in self.closed:
                    self.late += 1
                    if p.metric == "http_req_duration":
                        # too late for its second, still counted in the whole-run totals
                        arr = np.array([d.value])
                        name = d.tags.name if d.tags else ""
                        self.total(name).record_ms(arr)
                        self.total(ALL).record_ms(arr)
                    continue
                b = self.bins[key] = SecondBin(key, float(int(parse_epoch(d.time))))
            if p.metric == "vus":
                b.vus = d.value
                continue
            self.points += 1
            name = d.tags.name if d.tags else ""
            vals = b.values.get(name)
            if vals is None:
                vals = b.values[name] = []
                b.failed[name] = 0
            vals.append(d.value)
            if d.tags is not None and d.tags.expected_response == "false":
                b.failed[name] += 1
        self.newest = max(self.newest, parse_epoch(points[-1].data.time))
        self.lags.append(time.time() - self.newest)
        for key in sorted(
            k for k, b in self.bins.items() if b.start + 1 + self.grace <= self.newest
        ):
            self.close(key)

    def close(self, key: str) -> None:
        b = self.bins.pop(key)
        self.closed.add(key)
        self.second_all.reset()
        for name in sorted(b.values):
            arr = np.array(b.values[name])
            self.scratch.reset()
            self.scratch.record_ms(arr)
            size = self.scratch.encoded_size()
            self.encoded_bytes += size
            self.rows.append(self.row(key, name, self.scratch, b.failed[name], b.vus, size))
            self.total(name).add(self.scratch)
            self.second_all.add(self.scratch)
        if self.second_all.count:
            failed = sum(b.failed.values())
            self.rows.append(self.row(key, ALL, self.second_all, failed, b.vus, 0))
            self.total(ALL).add(self.second_all)
        self.publish_delays.append(time.time() - (b.start + 1))

    @staticmethod
    def row(
        key: str, name: str, hist: BulkHdr, failed: int, vus: float | None, size: int
    ) -> dict[str, Any]:
        return {
            "second": key,
            "name": name,
            "count": hist.count,
            "failed": failed,
            "vus": vus,
            "hdr_bytes": size,
            **hist.percentiles_ms(),
        }

    def finish(self) -> None:
        for key in sorted(self.bins):
            self.close(key)

    def result(self) -> dict[str, Any]:
        return {
            "points": self.points,
            "late_points": self.late,
            "seconds": len(self.closed),
            "per_second": self.rows,
            "whole_run": {
                name: {"count": h.count, **h.percentiles_ms()} for name, h in self.totals.items()
            },
            "lag_s": summarize(self.lags),
            "publish_delay_s": summarize(self.publish_delays),
            "hdr_encoded_bytes": self.encoded_bytes,
        }


def summarize(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    arr = np.sort(np.array(values))
    return {
        "p50": float(np.median(arr)),
        "p95": k6_percentile(arr, 95),
        "max": float(arr[-1]),
        "n": float(arr.size),
    }


class JsonLineSplitter:
    """Splits a byte stream into lines, keeps only the wanted ones, decodes them in one call."""

    def __init__(self) -> None:
        self.rest = b""
        self.bytes_in = 0

    def feed(self, chunk: bytes) -> list[Point]:
        self.bytes_in += len(chunk)
        lines = (self.rest + chunk).split(b"\n")
        self.rest = lines.pop()
        wanted = [line for line in lines if line.startswith(WANTED)]
        if not wanted:
            return []
        return POINTS.decode(b"[" + b",".join(wanted) + b"]")

    def flush(self) -> list[Point]:
        rest, self.rest = self.rest, b""
        if rest.startswith(WANTED):
            return POINTS.decode(b"[" + rest + b"]")
        return []


@dataclass
class ConsumerCtx:
    result_path: Path
    ready_path: Path
    stop_path: Path
    args: argparse.Namespace
    cpu_at_ready: float = 0.0
    ready_at: float = 0.0

    def ready(self) -> None:
        self.cpu_at_ready = cpu_self()
        self.ready_at = time.monotonic()
        self.ready_path.write_text("ready")

    def stopping(self) -> bool:
        return self.stop_path.exists()

    def write(self, result: dict[str, Any]) -> None:
        result["cpu_after_ready_s"] = cpu_self() - self.cpu_at_ready
        result["active_s"] = time.monotonic() - self.ready_at
        result["peak_rss_self_mb"] = vm_hwm_mb("self")
        tmp = self.result_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result))
        tmp.replace(self.result_path)


def cpu_self() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def consume_json_pipe(ctx: ConsumerCtx) -> None:
    fd = sys.stdin.fileno()
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1 << 20)
    binner = JsonBinner(ctx.args.grace)
    splitter = JsonLineSplitter()
    ctx.ready()
    first_byte: float | None = None
    while chunk := os.read(fd, 1 << 20):
        if first_byte is None:
            first_byte = time.time()
        binner.feed(splitter.feed(chunk))
    binner.feed(splitter.flush())
    binner.finish()
    ctx.write({"bytes_in": splitter.bytes_in, "eof_at": time.time(), **binner.result()})


def consume_json_file(ctx: ConsumerCtx) -> None:
    path = Path(ctx.args.path)
    binner = JsonBinner(ctx.args.grace)
    splitter = JsonLineSplitter()
    ctx.ready()
    while not path.exists():
        if ctx.stopping() and not path.exists():
            ctx.write({"error": "the JSON file never appeared"})
            return
        time.sleep(0.02)
    with path.open("rb", buffering=0) as fh:
        stop_seen = False
        while True:
            chunk = fh.read(1 << 20)
            if chunk:
                binner.feed(splitter.feed(chunk))
                continue
            if stop_seen:
                break  # k6 has exited and the file is read to its end
            stop_seen = ctx.stopping()
            if not stop_seen:
                time.sleep(ctx.args.poll)
    binner.feed(splitter.flush())
    binner.finish()
    ctx.write({"bytes_in": splitter.bytes_in, "eof_at": time.time(), **binner.result()})


# --- Prometheus remote write ------------------------------------------------------------------


@dataclass
class NativeHist:
    """A Prometheus native histogram as absolute bucket counts (positive side only)."""

    schema: int
    zero: int
    buckets: dict[int, int]
    count: int

    @classmethod
    def from_proto(cls, h: Any) -> NativeHist:
        buckets: dict[int, int] = {}
        index = 0
        count = 0
        deltas = iter(h.positive_deltas)
        for span_no, span in enumerate(h.positive_spans):
            index = span.offset if span_no == 0 else index + span.offset
            for _ in range(span.length):
                count += next(deltas)
                buckets[index] = count
                index += 1
        return cls(int(h.schema), int(h.zero_count_int), buckets, int(h.count_int))

    def minus(self, other: NativeHist | None) -> NativeHist:
        if other is None:
            return self
        diff = {i: c - other.buckets.get(i, 0) for i, c in self.buckets.items()}
        return NativeHist(
            self.schema,
            self.zero - other.zero,
            {i: c for i, c in diff.items() if c},
            self.count - other.count,
        )

    def plus(self, other: NativeHist) -> NativeHist:
        merged = dict(self.buckets)
        for i, c in other.buckets.items():
            merged[i] = merged.get(i, 0) + c
        return NativeHist(self.schema, self.zero + other.zero, merged, self.count + other.count)

    def quantile(self, q: float) -> float:
        """Prometheus-style: exponential interpolation inside the bucket holding the rank."""
        total = self.zero + sum(self.buckets.values())
        if total == 0:
            return float("nan")
        rank = q * total
        cum = float(self.zero)
        if rank <= cum:
            return 0.0
        base = 2.0 ** (2.0**-self.schema)
        for i in sorted(self.buckets):
            c = self.buckets[i]
            if cum + c >= rank:
                lower, upper = base ** (i - 1), base**i
                return float(lower * (upper / lower) ** ((rank - cum) / c))
            cum += c
        return float(base ** max(self.buckets))


class RemoteWriteState:
    def __init__(self) -> None:
        from app.k6.remote_write import WriteRequest  # the service's own prompb messages

        self.write_request = WriteRequest
        self.pushes: list[dict[str, Any]] = []
        self.bytes_in = 0
        self.bytes_raw = 0
        self.gauges: dict[tuple[str, str, str], float] = {}  # (metric, name, series) -> last
        self.series_per_name: dict[str, set[str]] = {}
        self.native_prev: dict[str, NativeHist] = {}  # series -> last cumulative
        self.native_last: dict[str, tuple[str, NativeHist]] = {}  # series -> (name, hist)
        self.native_rows: list[dict[str, Any]] = []
        self.gauge_rows: list[dict[str, Any]] = []

    def handle(self, body: bytes) -> None:
        import cramjam

        received = time.time()
        raw = bytes(cramjam.snappy.decompress_raw(body))
        self.bytes_in += len(body)
        self.bytes_raw += len(raw)
        req = self.write_request()
        req.ParseFromString(raw)
        deltas: dict[str, NativeHist] = {}
        newest_ms = 0
        for ts in req.timeseries:
            labels = {lbl.name: lbl.value for lbl in ts.labels}
            metric = labels.pop("__name__", "")
            name = labels.get("name", "")
            series = metric + json.dumps(sorted(labels.items()))
            for sample in ts.samples:
                newest_ms = max(newest_ms, sample.timestamp)
                self.gauges[(metric, name, series)] = sample.value
                if metric.startswith("k6_http_req_duration_"):
                    stat = metric[len("k6_http_req_duration_") :]
                    self.gauge_rows.append(
                        {"push": len(self.pushes) + 1, "name": name, stat: sample.value * 1000}
                    )
            if metric.startswith("k6_http_req_duration"):
                self.series_per_name.setdefault(name, set()).add(series)
            for h in ts.histograms:
                newest_ms = max(newest_ms, h.timestamp)
                if metric != "k6_http_req_duration_seconds":
                    continue
                cur = NativeHist.from_proto(h)
                delta = cur.minus(self.native_prev.get(series))
                self.native_prev[series] = cur
                self.native_last[series] = (name, cur)
                for key in (name, ALL):
                    deltas[key] = deltas[key].plus(delta) if key in deltas else delta
        push: dict[str, Any] = {
            "received": received,
            "bytes": len(body),
            "raw_bytes": len(raw),
            "series": len(req.timeseries),
            "lag_s": received - newest_ms / 1000 if newest_ms else None,
        }
        self.pushes.append(push)
        for key, delta in deltas.items():
            if delta.count:
                row = {"push": len(self.pushes), "name": key, "count": delta.count}
                row.update({f"p{p:g}": delta.quantile(p / 100) * 1000 for p in PERCENTILES})
                self.native_rows.append(row)

    def result(self) -> dict[str, Any]:
        whole: dict[str, dict[str, Any]] = {}
        # Trend stats as gauges: cumulative since the start, one value per full tag set.
        for (metric, name, _series), value in self.gauges.items():
            prefix = "k6_http_req_duration_"
            if metric.startswith(prefix) and metric[len(prefix) :] in ("p50", "p95", "p99", "max"):
                entry = whole.setdefault(name, {"series": len(self.series_per_name.get(name, ()))})
                entry[metric[len(prefix) :]] = value * 1000
        merged: dict[str, NativeHist] = {}
        for name, hist in self.native_last.values():
            for key in (name, ALL):
                merged[key] = merged[key].plus(hist) if key in merged else hist
        for key, hist in merged.items():
            entry = whole.setdefault(key, {})
            entry["count"] = hist.count
            entry.update({f"p{p:g}": hist.quantile(p / 100) * 1000 for p in PERCENTILES})
            entry["schema"] = hist.schema
        lags = [p["lag_s"] for p in self.pushes if p["lag_s"] is not None]
        return {
            "bytes_in": self.bytes_in,
            "bytes_raw": self.bytes_raw,
            "pushes": len(self.pushes),
            "series_max": max((p["series"] for p in self.pushes), default=0),
            "whole_run": whole,
            "per_push_native": self.native_rows,
            "per_push_gauges": self.gauge_rows,
            "lag_s": summarize(lags),
        }


def consume_prom_rw(ctx: ConsumerCtx) -> None:
    state = RemoteWriteState()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            try:
                state.handle(body)
                status = 204
            except Exception as exc:  # a decode error must not kill the receiver
                print(f"remote write decode failed: {exc!r}", file=sys.stderr)
                status = 400
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = HTTPServer(("127.0.0.1", ctx.args.port), Handler)
    server.timeout = 0.1
    ctx.ready()
    while not ctx.stopping():
        server.handle_request()
    server.server_close()
    ctx.write(state.result())


# --- REST /v1/metrics polling ---------------------------------------------------------------


def consume_rest(ctx: ConsumerCtx) -> None:
    ctx.ready()
    polls: list[dict[str, Any]] = []
    bytes_in = 0
    conn: http.client.HTTPConnection | None = None
    next_poll = time.monotonic()
    while not ctx.stopping():
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", ctx.args.port, timeout=5)
            conn.request("GET", "/v1/metrics")
            resp = conn.getresponse()
            body = resp.read()
        except OSError:
            if conn is not None:
                conn.close()
                conn = None
            time.sleep(0.05)
            continue
        bytes_in += len(body)
        if resp.status == 200:
            polls.append({"at": time.time(), **rest_figures(json.loads(body))})
        next_poll += ctx.args.interval
        while not ctx.stopping() and time.monotonic() < next_poll:
            time.sleep(min(0.05, max(0.0, next_poll - time.monotonic())))
    if conn is not None:
        conn.close()
    per_second: list[dict[str, Any]] = []
    for prev, cur in itertools.pairwise(polls):
        span = cur["at"] - prev["at"]
        for name in (ALL, *ENDPOINTS):
            reqs = cur["reqs"].get(name, 0) - prev["reqs"].get(name, 0)
            per_second.append({"name": name, "rps": reqs / span if span else None})
    last = polls[-1] if polls else {}
    return ctx.write(
        {
            "bytes_in": bytes_in,
            "polls": len(polls),
            "whole_run": last.get("durations", {}),
            "per_second_rates": per_second,
        }
    )


def rest_figures(doc: dict[str, Any]) -> dict[str, Any]:
    reqs: dict[str, float] = {}
    durations: dict[str, dict[str, float]] = {}
    for item in doc.get("data", []):
        metric_id = item.get("id", "")
        sample = item.get("attributes", {}).get("sample", {})
        name = ALL if "{" not in metric_id else metric_id.split("name:")[-1].rstrip("}")
        if metric_id.startswith("http_reqs"):
            reqs[name] = sample.get("count", 0)
        elif metric_id.startswith("http_req_duration") and "expected_response" not in metric_id:
            durations[name] = {"p95": sample.get("p(95)"), "max": sample.get("max")}
    return {"reqs": reqs, "durations": durations}


# --- web dashboard SSE ----------------------------------------------------------------------


class DashboardDecoder:
    """Decodes xk6-dashboard v0.7 events: ``metric`` events declare names and types, ``param``
    gives each type's aggregate names; ``snapshot``/``cumulative`` are arrays of per-metric
    arrays in the sorted order of the names the meter holds, the ``time`` gauge included."""

    def __init__(self) -> None:
        self.types: dict[str, str] = {}
        self.aggregates: dict[str, list[str]] = {}
        self.snapshots: list[dict[str, Any]] = []
        self.cumulative: dict[str, dict[str, float]] = {}
        self.unmapped = 0
        self.events: dict[str, int] = {}

    def on_event(self, name: str, data: bytes) -> None:
        self.events[name] = self.events.get(name, 0) + 1
        if name == "metric":
            for metric, info in json.loads(data).items():
                self.types[metric] = info.get("type", "")
        elif name == "param":
            self.aggregates = json.loads(data).get("aggregates", {})
        elif name in ("snapshot", "cumulative"):
            mapped = self.map(json.loads(data))
            if mapped is None:
                self.unmapped += 1
            elif name == "snapshot":
                self.snapshots.append({"received": time.time(), "metrics": mapped})
            else:
                self.cumulative = mapped

    def map(self, arrays: list[list[float]]) -> dict[str, dict[str, float]] | None:
        # Everything we need sorts before "time"; metrics after it (vus, vus_max) may be
        # missing from a period, so only the prefix is mapped, and "time" must line up.
        names = sorted(n for n in self.types if n < "time")
        if len(arrays) <= len(names) or len(arrays[len(names)]) != 1:
            return None
        if arrays[len(names)][0] < 1e12:
            return None
        out: dict[str, dict[str, float]] = {"time": {"value": arrays[len(names)][0]}}
        for name, values in zip(names, arrays, strict=False):
            stats = self.aggregates.get(self.types[name], [])
            if values and len(values) != len(stats):
                return None
            out[name] = dict(zip(stats, values, strict=False))
        return out


def sse_key(metric: str) -> str | None:
    if metric == "http_req_duration":
        return ALL
    if metric.startswith("http_req_duration{name:"):
        return metric[len("http_req_duration{name:") : -1]
    return None


def consume_sse(ctx: ConsumerCtx) -> None:
    ctx.ready()
    decoder = DashboardDecoder()
    bytes_in = 0
    resp: http.client.HTTPResponse | None = None
    conn: http.client.HTTPConnection | None = None
    while resp is None:
        if ctx.stopping():
            ctx.write({"error": "could not connect to the dashboard"})
            return
        try:
            conn = http.client.HTTPConnection("127.0.0.1", ctx.args.port, timeout=60)
            conn.request("GET", "/events", headers={"Accept": "text/event-stream"})
            resp = conn.getresponse()
        except OSError:
            time.sleep(0.02)
    buf = b""
    stopped = False
    while not stopped:
        try:
            chunk = resp.read1(65536)
        except (OSError, http.client.HTTPException):
            break
        if not chunk:
            break
        bytes_in += len(chunk)
        buf += chunk
        while b"\n\n" in buf:
            raw, buf = buf.split(b"\n\n", 1)
            event, data = "message", b""
            for line in raw.split(b"\n"):
                if line.startswith(b"event:"):
                    event = line[6:].strip().decode()
                elif line.startswith(b"data:"):
                    data += line[5:].strip()
            if event == "stop":
                stopped = True  # the dashboard waits for its clients to leave before k6 exits
            elif data:
                decoder.on_event(event, data)
    if conn is not None:
        conn.close()
    per_period: list[dict[str, Any]] = []
    lags: list[float] = []
    for snap in decoder.snapshots:
        metrics = snap["metrics"]
        lags.append(snap["received"] - metrics["time"]["value"] / 1000)
        for metric, stats in metrics.items():
            key = sse_key(metric)
            if key is not None and stats:
                per_period.append({"name": key, **stats})
    whole = {
        key: stats
        for metric, stats in decoder.cumulative.items()
        if (key := sse_key(metric)) is not None
    }
    ctx.write(
        {
            "bytes_in": bytes_in,
            "events": decoder.events,
            "unmapped": decoder.unmapped,
            "snapshots": len(decoder.snapshots),
            "per_period": per_period,
            "whole_run": whole,
            "lag_s": summarize(lags),
            "got_stop": stopped,
        }
    )


CONSUMERS: dict[str, Callable[[ConsumerCtx], None]] = {
    "json-pipe": consume_json_pipe,
    "json-file": consume_json_file,
    "prom-rw": consume_prom_rw,
    "rest": consume_rest,
    "sse": consume_sse,
}


def consumer_main(args: argparse.Namespace) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ctx = ConsumerCtx(Path(args.result), Path(args.ready), Path(args.stop), args)
    CONSUMERS[args.consumer](ctx)


# =============================================================================================
# Orchestration
# =============================================================================================


@dataclass(frozen=True)
class Candidate:
    key: str
    title: str
    consumer: str | None
    per_second_endpoint: str  # what a second of data gives per endpoint
    meets_1pct: bool  # can give per-second, per-endpoint p95/p99 within 1 %


CANDIDATES: dict[str, Candidate] = {
    c.key: c
    for c in [
        Candidate("bare", "bare k6 run (baseline)", None, "-", False),
        Candidate(
            "json-pipe",
            "--out json=- into a msgspec+HDR reader on the pipe",
            "json-pipe",
            "HDR histogram per second per endpoint (any percentile, mergeable)",
            True,
        ),
        Candidate(
            "json-pipe-slim",
            "as json-pipe, with --system-tags limited to what the service reads",
            "json-pipe",
            "HDR histogram per second per endpoint (any percentile, mergeable)",
            True,
        ),
        Candidate(
            "json-null",
            "--out json=/dev/null (k6's side of the JSON path only, no reader)",
            None,
            "-",
            False,
        ),
        Candidate(
            "csv-null",
            "--out csv=/dev/null, unix_micro times, 200 ms flushes (k6's side only)",
            None,
            "-",
            False,
        ),
        Candidate(
            "json-file",
            "--out json=FILE on disk, tailed by the same reader",
            "json-file",
            "HDR histogram per second per endpoint (any percentile, mergeable)",
            True,
        ),
        Candidate(
            "prom-rw",
            "experimental-prometheus-rw, trend stats p50,p95,p99,max, 1 s",
            "prom-rw",
            "cumulative-since-start p50/p95/p99/max per tag set; no per-second percentiles",
            False,
        ),
        Candidate(
            "prom-rw-native",
            "experimental-prometheus-rw, trend as native histograms, 1 s",
            "prom-rw",
            "cumulative native histogram (schema 3, ~9 % buckets); diff for per-second",
            False,
        ),
        Candidate(
            "rest",
            "REST GET /v1/metrics every 1 s",
            "rest",
            "cumulative avg/min/med/max/p90/p95 only; per-second rates by diff",
            False,
        ),
        Candidate(
            "sse",
            "web dashboard SSE /events (K6_WEB_DASHBOARD env, period 1 s)",
            "sse",
            "exact per-period stats for all requests together; no per-endpoint",
            False,
        ),
        Candidate(
            "sse-tags",
            "web dashboard SSE /events, --out web-dashboard=...&tag=name",
            "sse",
            "exact per-period avg/min/med/max/p90/p95/p99 per endpoint (no histogram)",
            True,
        ),
    ]
}
# k6-side cost only (no consumer): opt-in
OPT_IN = ("json-null", "csv-null")
DEFAULT_CANDIDATES = [k for k in CANDIDATES if k != "bare" and k not in OPT_IN]
# Default system tags minus url, proto, error, tls_version, service, subproto. check and
# group must stay: without them k6 1.1.0's handleSummary root_group has no checks at all.
SLIM_TAGS = "name,status,method,expected_response,error_code,check,group,scenario"


@dataclass
class Launch:
    k6_args: list[str] = field(default_factory=list)
    k6_env: dict[str, str] = field(default_factory=dict)
    consumer_args: list[str] = field(default_factory=list)
    pipe_stdout: bool = False
    api_port: int = 0
    json_path: Path | None = None


def plan_launch(cand: Candidate, workdir: Path, args: argparse.Namespace) -> Launch:
    launch = Launch()
    key = cand.key
    if key in ("json-pipe", "json-pipe-slim"):
        launch.k6_args = ["--out", "json=-"]
        if key == "json-pipe-slim":
            launch.k6_args += ["--system-tags", SLIM_TAGS]
        launch.pipe_stdout = True
        launch.consumer_args = ["--grace", str(args.grace)]
    elif key == "json-null":
        launch.k6_args = ["--out", "json=/dev/null"]
    elif key == "csv-null":
        launch.k6_args = ["--out", "csv=/dev/null"]
        launch.k6_env = {"K6_CSV_TIME_FORMAT": "unix_micro", "K6_CSV_SAVE_INTERVAL": "200ms"}
    elif key == "json-file":
        launch.json_path = workdir / "out.json"
        launch.k6_args = ["--out", f"json={launch.json_path}"]
        launch.consumer_args = ["--path", str(launch.json_path), "--grace", str(args.grace)]
    elif key in ("prom-rw", "prom-rw-native"):
        port = free_port()
        launch.k6_args = ["--out", "experimental-prometheus-rw"]
        launch.k6_env = {
            "K6_PROMETHEUS_RW_SERVER_URL": f"http://127.0.0.1:{port}/api/v1/write",
            "K6_PROMETHEUS_RW_PUSH_INTERVAL": "1s",
        }
        if key == "prom-rw":
            launch.k6_env["K6_PROMETHEUS_RW_TREND_STATS"] = "p(50),p(95),p(99),max"
        else:
            launch.k6_env["K6_PROMETHEUS_RW_TREND_AS_NATIVE_HISTOGRAM"] = "true"
        launch.consumer_args = ["--port", str(port)]
    elif key == "rest":
        launch.api_port = free_port()
        launch.consumer_args = ["--port", str(launch.api_port), "--interval", "1"]
    elif key == "sse":
        port = free_port()
        launch.k6_env = {
            "K6_WEB_DASHBOARD": "true",
            "K6_WEB_DASHBOARD_PERIOD": "1s",
            "K6_WEB_DASHBOARD_PORT": str(port),
        }
        launch.consumer_args = ["--port", str(port)]
    elif key == "sse-tags":
        port = free_port()
        launch.k6_args = ["--out", f"web-dashboard=port={port}&period=1s&tag=name"]
        launch.consumer_args = ["--port", str(port)]
    return launch


@dataclass
class RunResult:
    candidate: str
    mode: str
    exit_code: int
    rps: float
    summary: dict[str, Any]
    k6_cpu_s: float
    k6_rss_mb: float
    nginx_cpu_s: float
    machine_busy_s: float
    wall_s: float
    requests: int = 0
    consumer: dict[str, Any] | None = None
    consumer_cpu_s: float | None = None
    consumer_rss_mb: float | None = None
    drain_s: float | None = None
    json_file_bytes: int | None = None
    offline: dict[str, Any] | None = None

    @property
    def foreign_cores(self) -> float:
        """CPU the rest of the machine used during the run, in cores (other sessions' work,
        plus a little of this benchmark's own bookkeeping)."""
        ours = self.k6_cpu_s + self.nginx_cpu_s + (self.consumer_cpu_s or 0.0)
        return (self.machine_busy_s - ours) / max(self.wall_s, 1e-9)

    def brief(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("summary", "consumer")}
        data["foreign_cores"] = self.foreign_cores
        data["summary_durations"] = summary_durations(self.summary)
        if self.consumer is not None:
            data["consumer"] = {
                k: v
                for k, v in self.consumer.items()
                if k
                not in (
                    "per_second",
                    "per_period",
                    "per_push_native",
                    "per_push_gauges",
                    "per_second_rates",
                )
            }
        return data


def summary_durations(summary: dict[str, Any]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    metrics = summary.get("metrics", {})
    pairs = [(ALL, "http_req_duration")]
    pairs += [(n, f"http_req_duration{{name:{n}}}") for n in ENDPOINTS]
    for key, metric in pairs:
        values = metrics.get(metric, {}).get("values")
        if values:
            out[key] = values
    return out


def renice(nice: int) -> None:
    """Lower (or raise) this benchmark's priority; k6, nginx and consumers inherit it. With
    the kernel's session autogroups, CPU is shared between sessions first, so the session's
    autogroup gets the same nice value (root may lower it; see sched(7))."""
    os.nice(nice)
    with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as fh:
        fh.write(str(nice))


def autogroup() -> str:
    try:
        return Path("/proc/self/autogroup").read_text().strip()
    except OSError:
        return "no autogroup"


def vm_hwm_mb(pid: int | str) -> float | None:
    """Peak RSS of a process's current image (VmHWM; unlike ``ru_maxrss`` it does not carry
    the parent's RSS from before ``exec``)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def wait_rusage(pid: int, timeout_s: float) -> tuple[int, Any, float | None] | None:
    """Reap a child: (exit code, its rusage, last VmHWM seen); None on timeout.
    VmHWM is polled every 0.2 s, so growth in the child's last moments can be missed."""
    deadline = time.monotonic() + timeout_s
    hwm: float | None = None
    next_hwm = 0.0
    while True:
        now = time.monotonic()
        if now >= next_hwm:
            hwm = max(hwm or 0.0, vm_hwm_mb(pid) or 0.0) or hwm
            next_hwm = now + 0.2
        done, status, ru = os.wait4(pid, os.WNOHANG)
        if done == pid:
            return os.waitstatus_to_exitcode(status), ru, hwm
        if now > deadline:
            return None
        time.sleep(0.02)


def stop_child(proc: subprocess.Popen[bytes], grace_s: float) -> tuple[int, Any, float | None]:
    """SIGINT, then SIGKILL; returns (exit code, rusage, VmHWM)."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
    got = wait_rusage(proc.pid, grace_s)
    if got is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        got = wait_rusage(proc.pid, 10)
    assert got is not None
    proc.returncode = got[0]
    return got


class Runner:
    def __init__(self, args: argparse.Namespace, target: Target, root: Path) -> None:
        self.args = args
        self.target = target
        self.root = root
        self.script = root / "bench.js"
        self.script.write_text(K6_SCRIPT)
        self.counter = 0

    def run(
        self, key: str, *, mode: str = "closed", rate: int = 0, offline: bool = False
    ) -> RunResult:
        cand = CANDIDATES[key]
        self.counter += 1
        workdir = self.root / f"run{self.counter:03d}-{key}"
        workdir.mkdir()
        summary_path = workdir / "summary.json"
        launch = plan_launch(cand, workdir, self.args)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(workdir),
            "K6_NO_USAGE_REPORT": "true",
            "BENCH_TARGET": self.target.base_url,
            "BENCH_VUS": str(self.args.vus),
            "BENCH_MODE": mode,
            "BENCH_RATE": str(rate),
            "BENCH_DURATION": f"{self.args.seconds}s",
            "BENCH_SUMMARY": str(summary_path),
            **launch.k6_env,
        }
        argv = [
            str(self.args.k6),
            "run",
            "--no-color",
            "--quiet",
            "--address",
            f"127.0.0.1:{launch.api_port}",
            "--summary-trend-stats",
            TREND_STATS,
            *launch.k6_args,
            str(self.script),
        ]
        consumer: subprocess.Popen[bytes] | None = None
        read_fd = write_fd = -1
        result_path = workdir / "consumer.json"
        stop_path = workdir / "consumer.stop"
        if cand.consumer is not None:
            ready_path = workdir / "consumer.ready"
            if launch.pipe_stdout:
                read_fd, write_fd = os.pipe()
                with contextlib.suppress(OSError):
                    fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 1 << 20)
            consumer = subprocess.Popen(
                [
                    *(["nice", "-n", str(self.args.reader_nice)] if self.args.reader_nice else []),
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--consumer",
                    cand.consumer,
                    "--result",
                    str(result_path),
                    "--ready",
                    str(ready_path),
                    "--stop",
                    str(stop_path),
                    *launch.consumer_args,
                ],
                stdin=read_fd if read_fd >= 0 else subprocess.DEVNULL,
                stdout=(workdir / "consumer.out").open("wb"),
                stderr=subprocess.STDOUT,
            )
            if read_fd >= 0:
                os.close(read_fd)
            deadline = time.monotonic() + 30
            while not ready_path.exists():
                if consumer.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"consumer {cand.consumer} did not start; see {workdir}")
                time.sleep(0.01)
        nginx_before = tree_cpu(self.target.pid)
        busy_before = machine_busy()
        started = time.monotonic()
        with (workdir / "k6.log").open("wb") as log:
            k6 = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=write_fd if write_fd >= 0 else log,
                stderr=log,
                cwd=workdir,
                env=env,
            )
        if write_fd >= 0:
            os.close(write_fd)
        got = wait_rusage(k6.pid, self.args.seconds + 60)
        if got is None:
            print(f"  k6 overran its time limit in {workdir}; stopping it", file=sys.stderr)
            got = stop_child(k6, 15)
        k6.returncode = got[0]
        exit_code, k6_ru, k6_hwm = got
        k6_done = time.monotonic()
        wall = k6_done - started
        busy = machine_busy() - busy_before
        nginx_cpu = tree_cpu(self.target.pid) - nginx_before
        run = RunResult(
            candidate=key,
            mode=mode,
            exit_code=exit_code,
            rps=0.0,
            summary={},
            k6_cpu_s=k6_ru.ru_utime + k6_ru.ru_stime,
            k6_rss_mb=k6_hwm or 0.0,
            nginx_cpu_s=nginx_cpu,
            machine_busy_s=busy,
            wall_s=wall,
        )
        if consumer is not None:
            stop_path.write_text("stop")
            got_c = wait_rusage(consumer.pid, 60)
            if got_c is None:
                print(f"  consumer {cand.consumer} did not finish; killing it", file=sys.stderr)
                got_c = stop_child(consumer, 5)
            consumer.returncode = got_c[0]
            run.drain_s = time.monotonic() - k6_done
            run.consumer_cpu_s = got_c[1].ru_utime + got_c[1].ru_stime
            run.consumer_rss_mb = got_c[2]
            if result_path.exists():
                run.consumer = json.loads(result_path.read_text())
                run.consumer_rss_mb = run.consumer.get("peak_rss_self_mb") or got_c[2]
            else:
                run.consumer = {"error": f"no result (exit {got_c[0]}); see {workdir}"}
        if summary_path.exists():
            run.summary = json.loads(summary_path.read_text())
            reqs = run.summary["metrics"]["http_reqs"]["values"]["count"]
            run.requests = int(reqs)
            run.rps = reqs / (run.summary["state"]["testRunDurationMs"] / 1000)
        if launch.json_path is not None and launch.json_path.exists():
            run.json_file_bytes = launch.json_path.stat().st_size
            if offline:
                run.offline = offline_fidelity(launch.json_path, run)
        if not self.args.keep:
            for path in workdir.iterdir():
                if path.name not in ("k6.log", "summary.json", "consumer.json", "consumer.out"):
                    path.unlink()
        return run


# --- offline ground truth from a JSON file -----------------------------------------------------

NATIVE_SCHEMA = 3  # what k6's NativeHistogramBucketFactor 1.1 gives (2**(2**-3) = 1.0905)


def native_quantile_from_samples(values_s: np.ndarray, q: float) -> float:
    """Put samples into schema-3 native buckets, then read q back the Prometheus way."""
    base = 2.0 ** (2.0**-NATIVE_SCHEMA)
    idx = np.ceil(np.log(values_s) / np.log(base) - 1e-12).astype(np.int64)
    uniq, counts = np.unique(idx, return_counts=True)
    hist = NativeHist(NATIVE_SCHEMA, 0, dict(zip(uniq.tolist(), counts.tolist(), strict=True)), 0)
    return hist.quantile(q)


def offline_fidelity(path: Path, run: RunResult) -> dict[str, Any]:
    """Exact percentiles from every sample in the file (k6's own interpolation) against
    k6's summary, the reader's per-second HDR figures and simulated native histograms."""
    seconds: list[str] = []
    names: list[str] = []
    values: list[float] = []
    splitter = JsonLineSplitter()
    with path.open("rb") as fh:
        while chunk := fh.read(8 << 20):
            for p in splitter.feed(chunk):
                if p.metric == "http_req_duration":
                    seconds.append(p.data.time[:19])
                    names.append(p.data.tags.name if p.data.tags else "")
                    values.append(p.data.value)
    vals = np.array(values)
    sec_arr = np.array(seconds)
    name_arr = np.array(names)
    out: dict[str, Any] = {"samples": int(vals.size)}
    summ = summary_durations(run.summary)
    whole: dict[str, Any] = {}
    for key in (ALL, *ENDPOINTS):
        sel = np.sort(vals if key == ALL else vals[name_arr == key])
        entry: dict[str, Any] = {"count": int(sel.size)}
        for p in (95.0, 99.0):
            exact = k6_percentile(sel, p)
            k6v = summ.get(key, {}).get(f"p({p:g})")
            entry[f"p{p:g}_exact"] = exact
            entry[f"p{p:g}_vs_summary"] = rel_err(exact, k6v)
        whole[key] = entry
    out["whole_run_exact_vs_summary"] = whole
    # per second per endpoint: reader (HDR) and simulated native histograms against exact
    reader_rows = {(r["second"], r["name"]): r for r in (run.consumer or {}).get("per_second", [])}
    hdr_err: dict[str, list[float]] = {"p95": [], "p99": []}
    native_err: dict[str, list[float]] = {"p95": [], "p99": []}
    small = 0
    for sec in np.unique(sec_arr):
        in_sec = sec_arr == sec
        for name in ENDPOINTS:
            sel = np.sort(vals[in_sec & (name_arr == name)])
            if sel.size < 200:
                small += 1  # ramp-up/down fragments; percentiles of a handful say little
                continue
            row = reader_rows.get((str(sec), name))
            for p in (95.0, 99.0):
                exact = k6_percentile(sel, p)
                if row is not None and row.get(f"p{p:g}") is not None:
                    hdr_err[f"p{p:g}"].append(abs(rel_err(row[f"p{p:g}"], exact) or 0.0))
                native = native_quantile_from_samples(sel / 1000, p / 100) * 1000
                native_err[f"p{p:g}"].append(abs(rel_err(native, exact) or 0.0))
    out["per_second_seconds_skipped_small"] = small
    out["per_second_hdr_abs_rel_err"] = {k: summarize(v) for k, v in hdr_err.items()}
    out["per_second_native_abs_rel_err"] = {k: summarize(v) for k, v in native_err.items()}
    return out


def rel_err(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference == 0:
        return None
    return (value - reference) / reference


# --- figures --------------------------------------------------------------------------------


def fidelity(run: RunResult) -> dict[str, float | None]:
    """Whole-run p95/p99 of the candidate's own data against k6's summary of the same run;
    the worst relative error over all-requests and each endpoint."""
    if run.consumer is None:
        return {}
    whole = run.consumer.get("whole_run", {})
    summ = summary_durations(run.summary)
    out: dict[str, float | None] = {}
    for p in (95, 99):
        errs: list[float] = []
        for key in (ALL, *ENDPOINTS):
            mine = whole.get(key, {})
            value = mine.get(f"p{p}", mine.get(f"p({p})"))
            err = rel_err(value, summ.get(key, {}).get(f"p({p})"))
            if err is not None:
                errs.append(err)
        out[f"p{p}"] = max(errs, key=abs) if errs else None
    return out


def fmt_pct(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x * 100:+.{digits}f}%"


def fmt_num(x: float | None, digits: int = 0) -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}"


def bytes_per_10s(run: RunResult) -> float | None:
    dur = run.summary.get("state", {}).get("testRunDurationMs")
    if not dur:
        return None
    produced: float | None = None
    if run.json_file_bytes is not None:
        produced = run.json_file_bytes
    elif run.consumer is not None and "bytes_in" in run.consumer:
        produced = run.consumer["bytes_in"]
    return None if produced is None else produced / (dur / 1000) * 10


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


# two-sided 95 % Student t quantiles by degrees of freedom
_T95 = [12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23, 2.20, 2.18, 2.16, 2.14, 2.13]


def mean_ci95(xs: list[float]) -> tuple[float | None, float | None]:
    """Mean and the half-width of its 95 % confidence interval (t distribution)."""
    if not xs:
        return None, None
    if len(xs) < 2:
        return xs[0], None
    df = len(xs) - 1
    t = _T95[df - 1] if df <= len(_T95) else 2.0
    return statistics.fmean(xs), t * statistics.stdev(xs) / len(xs) ** 0.5


@dataclass
class Pair:
    run: RunResult
    ratio: float
    clean: bool  # the run and both bare runs around it had the machine to themselves


def report(results: dict[str, list[Pair]], bare_runs: list[RunResult]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    bare_rps = [r.rps for r in bare_runs if r.rps]
    rows.append(
        {
            "candidate": "bare",
            "ratio_median": 1.0,
            "ratio_min": None,
            "ratio_max": None,
            "rps": median(bare_rps),
            "rps_min": min(bare_rps, default=None),
            "rps_max": max(bare_rps, default=None),
            "k6_cpu_per_req_us": median([per_req(r.k6_cpu_s, r) for r in bare_runs if r.requests]),
            "system_cpu_per_req_us": median(
                [system_cpu_per_req(r) for r in bare_runs if r.requests]
            ),
            "k6_rss_mb": median([r.k6_rss_mb for r in bare_runs]),
        }
    )
    for key, pairs in results.items():
        if not pairs:
            continue
        runs = [p.run for p in pairs]
        ratios = [p.ratio for p in pairs]
        clean = [p.ratio for p in pairs if p.clean]
        mean, ci = mean_ci95(ratios)
        fids = [fidelity(r) for r in runs]
        cons = [r.consumer or {} for r in runs]
        lag = [c["lag_s"]["p50"] for c in cons if c.get("lag_s")]
        lag_max = [c["lag_s"]["max"] for c in cons if c.get("lag_s")]
        pub = [c["publish_delay_s"]["p50"] for c in cons if c.get("publish_delay_s")]
        rows.append(
            {
                "candidate": key,
                "ratio_median": median(ratios),
                "ratio_min": min(ratios, default=None),
                "ratio_max": max(ratios, default=None),
                "ratio_mean": mean,
                "ratio_ci95": ci,
                "ratio_median_clean": median(clean),
                "pairs_clean": len(clean),
                "pairs": len(pairs),
                "rps": median([r.rps for r in runs]),
                "bytes_per_10s": median([b for r in runs if (b := bytes_per_10s(r)) is not None]),
                "consumer_cpu_core": median(
                    [
                        c["cpu_after_ready_s"] / max(r.wall_s + (r.drain_s or 0), 1e-9)
                        for r, c in zip(runs, cons, strict=True)
                        if "cpu_after_ready_s" in c
                    ]
                ),
                "consumer_rss_mb": median([r.consumer_rss_mb for r in runs if r.consumer_rss_mb]),
                "k6_cpu_per_req_us": median([per_req(r.k6_cpu_s, r) for r in runs if r.requests]),
                "system_cpu_per_req_us": median(
                    [system_cpu_per_req(r) for r in runs if r.requests]
                ),
                "k6_rss_mb": median([r.k6_rss_mb for r in runs]),
                "drain_s": median([r.drain_s for r in runs if r.drain_s is not None]),
                "lag_p50_s": median(lag),
                "lag_max_s": max(lag_max, default=None),
                "publish_delay_p50_s": median(pub),
                "p95_err": worst([f.get("p95") for f in fids]),
                "p99_err": worst([f.get("p99") for f in fids]),
                "late_points": sum(c.get("late_points", 0) for c in cons),
                "errors": [c["error"] for c in cons if "error" in c],
                "foreign_cores": median([r.foreign_cores for r in runs]),
            }
        )
    bare_cpu = rows[0]["system_cpu_per_req_us"]
    for row in rows:
        cand_cpu = row.get("system_cpu_per_req_us")
        row["cpu_model_ratio"] = bare_cpu / cand_cpu if bare_cpu and cand_cpu else None
    return rows


def per_req(cpu_s: float, run: RunResult) -> float:
    return cpu_s / run.requests * 1e6


def system_cpu_per_req(run: RunResult) -> float:
    """CPU (us) that k6, nginx and the consumer together spent per request."""
    return per_req(run.k6_cpu_s + run.nginx_cpu_s + (run.consumer_cpu_s or 0.0), run)


def worst(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return max(vals, key=abs) if vals else None


LEGEND = """\
ratio: candidate k6 RPS / mean of the bare runs just before and after it: median, min..max,
  and mean with the half-width of its 95 % t interval; clean: median over the pairs in which
  no run saw other load on the machine, and how many pairs that was;
cpu-mdl: (k6+nginx CPU per request, bare) / (k6+nginx+consumer CPU per request, candidate);
MB/10s: bytes the path produced per 10 s; cons CPU: consumer CPU as a share of one core;
lag p50: wall clock minus the newest sample's time when data reaches the consumer;
p95/p99 err: worst of all/a/b, the candidate's whole-run figure vs k6's own summary"""


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'candidate':<15} {'ratio':>6} {'min..max':>13} {'mean±95%':>12} {'clean':>11} "
        f"{'cpu-mdl':>7} "
        f"{'k6 RPS':>8} {'MB/10s':>8} "
        f"{'cons CPU':>8} {'cons RSS':>8} {'lag p50':>7} {'p95 err':>8} {'p99 err':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        spread = (
            f"{row['ratio_min']:.3f}..{row['ratio_max']:.3f}"
            if row.get("ratio_min") is not None
            else "-"
        )
        mb = row.get("bytes_per_10s")
        cpu = row.get("consumer_cpu_core")
        rss = row.get("consumer_rss_mb")
        lag = row.get("lag_p50_s")
        model = row.get("cpu_model_ratio")
        clean = (
            f"{row['ratio_median_clean']:.3f} {row['pairs_clean']}/{row['pairs']}"
            if row.get("ratio_median_clean") is not None
            else ("-" if "pairs" not in row else f"- 0/{row['pairs']}")
        )
        ci = (
            f"{row['ratio_mean']:.3f}±{row['ratio_ci95']:.3f}"
            if row.get("ratio_ci95") is not None
            else "-"
        )
        print(
            f"{row['candidate']:<15} {row['ratio_median']:>6.3f} {spread:>13} {ci:>12} "
            f"{clean:>11} "
            f"{'-' if model is None else f'{model:.3f}':>7} "
            f"{fmt_num(row['rps']):>8} {'-' if mb is None else f'{mb / 1e6:.2f}':>8} "
            f"{'-' if cpu is None else f'{cpu * 100:.1f}%':>8} "
            f"{'-' if rss is None else f'{rss:.0f}MB':>8} "
            f"{'-' if lag is None else f'{lag:.2f}s':>7} "
            f"{fmt_pct(row.get('p95_err')) if 'p95_err' in row else '-':>8} "
            f"{fmt_pct(row.get('p99_err')) if 'p99_err' in row else '-':>8}"
        )


def closed_loop(runner: Runner, args: argparse.Namespace) -> tuple[dict[str, Any], list[RunResult]]:
    keys: list[str] = args.candidates
    results: dict[str, list[Pair]] = {k: [] for k in keys}
    bare_runs: list[RunResult] = []

    def bare() -> RunResult:
        wait_quiet(args.quiet_wait, args.clean_cores)
        r = runner.run("bare")
        bare_runs.append(r)
        print(
            f"  bare            {r.rps:>9,.0f} req/s  (exit {r.exit_code}; "
            f"other load {r.foreign_cores:.2f} cores)",
            flush=True,
        )
        return r

    before = bare()
    for rnd in range(args.pairs):
        shift = rnd % len(keys)
        order = keys[shift:] + keys[:shift]
        print(f"round {rnd + 1}/{args.pairs}: {' '.join(order)}", flush=True)
        for key in order:
            offline = rnd == args.pairs - 1 and key == "json-file" and not args.no_offline
            for attempt in range(args.retries + 1):
                wait_quiet(args.quiet_wait, args.clean_cores)
                run = runner.run(key, offline=offline)
                after = bare()
                ref = (before.rps + after.rps) / 2
                ratio = run.rps / ref if ref else float("nan")
                clean = max(r.foreign_cores for r in (before, run, after)) < args.clean_cores
                fid = fidelity(run)
                note = (run.consumer or {}).get("error", "")
                print(
                    f"  {key:<15} {run.rps:>9,.0f} req/s  ratio {ratio:.3f}"
                    f"{'' if clean else '*'}  p95 {fmt_pct(fid.get('p95'))} "
                    f"p99 {fmt_pct(fid.get('p99'))}  (exit {run.exit_code}; "
                    f"other load {run.foreign_cores:.2f} cores) {note}",
                    flush=True,
                )
                before = after
                if clean or attempt == args.retries:
                    results[key].append(Pair(run, ratio, clean))
                    break
                print("  (* other load on the machine: repeating the pair)", flush=True)
    rows = report(results, bare_runs)
    offline = [p.run.offline for v in results.values() for p in v if p.run.offline is not None]
    raw = {
        "rows": rows,
        "offline_fidelity": offline,
        "runs": {
            k: [{**p.run.brief(), "ratio": p.ratio, "clean": p.clean} for p in v]
            for k, v in results.items()
        },
        "bare": [r.brief() for r in bare_runs],
        "per_second_samples": {k: sample_per_second(v[-1].run) for k, v in results.items() if v},
    }
    return raw, bare_runs


def sample_per_second(run: RunResult) -> list[dict[str, Any]]:
    """A few per-second rows of the last run of a candidate, to show what it yields."""
    c = run.consumer or {}
    rows = (
        c.get("per_second")
        or c.get("per_period")
        or c.get("per_push_native")
        or c.get("per_push_gauges")
        or []
    )
    return cast(list[dict[str, Any]], rows[:9])


def best_candidate(rows: list[dict[str, Any]]) -> str:
    ok = [
        r
        for r in rows
        if r["candidate"] != "bare"
        and CANDIDATES[r["candidate"]].meets_1pct
        and r.get("ratio_median") is not None
        and not r.get("errors")
        and (r.get("p95_err") is None or abs(r["p95_err"]) <= 0.01)
    ]
    if not ok:
        return "json-pipe"
    return str(max(ok, key=lambda r: r["ratio_median"])["candidate"])


def open_loop(
    runner: Runner, args: argparse.Namespace, sat_rps: float, cands: list[str]
) -> list[dict[str, Any]]:
    # two requests per iteration
    rate = max(1, int(sat_rps * args.open_fraction / 2))
    print(
        f"open loop: constant-arrival-rate {rate} it/s (~{rate * 2} req/s, "
        f"{args.open_fraction:.0%} of saturation), bare vs {', '.join(cands)}",
        flush=True,
    )
    return [open_loop_one(runner, args, rate, cand) for cand in cands]


def open_loop_one(runner: Runner, args: argparse.Namespace, rate: int, cand: str) -> dict[str, Any]:
    pairs: list[dict[str, Any]] = []
    for i in range(args.open_pairs):
        order = ["bare", cand] if i % 2 == 0 else [cand, "bare"]
        for attempt in range(args.retries + 1):
            got: dict[str, RunResult] = {}
            for key in order:
                wait_quiet(args.quiet_wait, args.clean_cores)
                got[key] = runner.run(key, mode="open", rate=rate)
            clean = max(r.foreign_cores for r in got.values()) < args.clean_cores
            entry = open_pair(got, cand)
            entry["clean"] = clean
            b, c = entry["bare"], entry[cand]
            print(
                f"  {cand} pair {i + 1}{'' if clean else '*'}: bare {b['rps']:,.0f} req/s p95 "
                f"{b['p95']:.3f} ms (dropped {b['dropped_iterations']}) | {cand} "
                f"{c['rps']:,.0f} req/s p95 {c['p95']:.3f} ms (dropped "
                f"{c['dropped_iterations']}) | reader p95 vs k6 "
                f"{fmt_pct(c['fidelity'].get('p95'))}",
                flush=True,
            )
            if clean or attempt == args.retries:
                pairs.append(entry)
                break
            print("  (* other load on the machine: repeating the pair)", flush=True)
    return {"rate_it_s": rate, "candidate": cand, "pairs": pairs}


def open_pair(got: dict[str, RunResult], cand: str) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    for key, run in got.items():
        s = summary_durations(run.summary)
        dropped = run.summary.get("metrics", {}).get("dropped_iterations", {})
        entry[key] = {
            "rps": run.rps,
            "p95": s.get(ALL, {}).get("p(95)"),
            "p99": s.get(ALL, {}).get("p(99)"),
            "p95_by_name": {n: s.get(n, {}).get("p(95)") for n in ENDPOINTS},
            "dropped_iterations": dropped.get("values", {}).get("count", 0),
            "fidelity": fidelity(run),
            "foreign_cores": run.foreign_cores,
            "k6_cpu_s": run.k6_cpu_s,
            "consumer_cpu_s": run.consumer_cpu_s,
        }
    b, c = entry["bare"], entry[cand]
    entry["rps_ratio"] = c["rps"] / b["rps"] if b["rps"] else None
    entry["p95_ratio"] = c["p95"] / b["p95"] if b["p95"] and c["p95"] else None
    entry["p99_ratio"] = c["p99"] / b["p99"] if b["p99"] and c["p99"] else None
    return entry


def print_open(result: dict[str, Any]) -> None:
    cand = result["candidate"]
    pairs = result["pairs"]
    if not pairs:
        return

    def med(path: Callable[[dict[str, Any]], float | None]) -> float | None:
        return median([v for p in pairs if (v := path(p)) is not None])

    print(
        f"open loop at {result['rate_it_s'] * 2:,} req/s target: "
        f"achieved bare {fmt_num(med(lambda p: p['bare']['rps']))} vs {cand} "
        f"{fmt_num(med(lambda p: p[cand]['rps']))} req/s "
        f"(ratio {fmt_num(med(lambda p: p['rps_ratio']), 4)}); "
        f"p95 bare {fmt_num(med(lambda p: p['bare']['p95']), 3)} ms vs {cand} "
        f"{fmt_num(med(lambda p: p[cand]['p95']), 3)} ms "
        f"(ratio {fmt_num(med(lambda p: p['p95_ratio']), 3)}); p99 ratio "
        f"{fmt_num(med(lambda p: p['p99_ratio']), 3)}; "
        f"{sum(1 for p in pairs if p.get('clean'))}/{len(pairs)} pairs without other load"
    )


def print_offline(offline: list[dict[str, Any]]) -> None:
    for off in offline:
        print(f"offline ground truth from one json-file run ({off['samples']:,} samples):")
        for key, entry in off["whole_run_exact_vs_summary"].items():
            print(
                f"  whole run {key}: exact-from-stream vs k6 summary "
                f"p95 {fmt_pct(entry['p95_vs_summary'], 4)} p99 "
                f"{fmt_pct(entry['p99_vs_summary'], 4)} (n={entry['count']:,})"
            )
        for label, errs in (
            ("reader HDR", off["per_second_hdr_abs_rel_err"]),
            ("native hist (schema 3, simulated)", off["per_second_native_abs_rel_err"]),
        ):
            parts = []
            for p, s in errs.items():
                if s:
                    med, top = s["p50"] * 100, s["max"] * 100
                    parts.append(f"{p} |err| median {med:.3f}% max {top:.3f}%")
            print(f"  per second per endpoint, {label}: {'; '.join(parts) or 'n/a'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=5, help="rounds of bracketed pairs")
    parser.add_argument("--seconds", type=int, default=5, help="duration of every k6 run")
    parser.add_argument("--vus", type=int, default=20)
    parser.add_argument(
        "--candidates",
        default=",".join(DEFAULT_CANDIDATES),
        help=f"comma list from: {', '.join(k for k in CANDIDATES if k != 'bare')}",
    )
    parser.add_argument("--open-pairs", type=int, default=2, help="open-loop pairs (0: skip)")
    parser.add_argument("--open-fraction", type=float, default=0.5)
    parser.add_argument(
        "--saturation-rps",
        type=float,
        default=0.0,
        help="closed-loop saturation to base the open-loop rate on (default: measured bare)",
    )
    parser.add_argument(
        "--open-candidates",
        default="",
        help="comma list for the open-loop comparison (default: the best measured)",
    )
    parser.add_argument("--grace", type=float, default=0.5, help="s past a second's end")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="renice this benchmark (and so k6, nginx, consumers); negative needs root",
    )
    parser.add_argument(
        "--reader-nice",
        type=int,
        default=0,
        help="run consumers at this nice value relative to k6 (e.g. 19)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="before each run wait up to this many s for the machine to be idle",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=0,
        help="repeat a pair up to this many times when other load touched it",
    )
    parser.add_argument(
        "--clean-cores",
        type=float,
        default=0.15,
        help="a pair is clean if other load stayed below this many cores in all three runs",
    )
    parser.add_argument("--k6", type=Path, default=DEFAULT_K6)
    parser.add_argument("--results", type=Path, default=None, help="write all figures (JSON)")
    parser.add_argument("--keep", action="store_true", help="keep run directories and files")
    parser.add_argument("--no-offline", action="store_true", help="skip the ground-truth pass")
    parser.add_argument(
        "--smoke", action="store_true", help="allow the Python fallback target (figures moot)"
    )
    # consumer mode (internal)
    parser.add_argument("--consumer", choices=sorted(CONSUMERS), help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--ready", help=argparse.SUPPRESS)
    parser.add_argument("--stop", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--poll", type=float, default=0.05, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.consumer:
        consumer_main(args)
        return
    args.candidates = [c.strip() for c in args.candidates.split(",") if c.strip()]
    opens = [c for c in args.open_candidates.split(",") if c]
    unknown = [c for c in args.candidates + opens if c not in CANDIDATES or c == "bare"]
    if unknown:
        parser.error(f"unknown candidates: {unknown}")
    if not args.k6.exists():
        parser.error(f"no k6 binary at {args.k6}")
    hdr_selfcheck()
    saved_autogroup = autogroup_nice()
    if args.nice:
        # let SIGTERM unwind too, so the session's autogroup nice is put back below
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        renice(args.nice)
    try:
        run_benchmark(args)
    finally:
        if args.nice and saved_autogroup is not None:
            # the autogroup outlives this process (it belongs to the session): restore it
            with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as fh:
                fh.write(str(saved_autogroup))


def autogroup_nice() -> int | None:
    try:
        return int(Path("/proc/self/autogroup").read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def run_benchmark(args: argparse.Namespace) -> None:
    started = time.monotonic()
    with (
        local_target(allow_python=args.smoke) as target,
        tempfile.TemporaryDirectory(prefix="bench-datapath-") as tmp,
    ):
        runner = Runner(args, target, Path(tmp))
        print(
            f"target {target.kind} {target.base_url}; {os.cpu_count()} cores; k6 {args.k6}; "
            f"{args.vus} VUs closed loop, {args.seconds}s per run, {args.pairs} rounds; "
            f"load average {os.getloadavg()[0]:.2f}; nice {os.nice(0)} ({autogroup()})",
            flush=True,
        )
        raw, bare_runs = closed_loop(runner, args)
        rows = raw["rows"]
        open_result: list[dict[str, Any]] | None = None
        if args.open_pairs > 0:
            cands = [c for c in args.open_candidates.split(",") if c] or [best_candidate(rows)]
            quiet = [r.rps for r in bare_runs if r.rps and r.foreign_cores < args.clean_cores]
            sat = args.saturation_rps or median(quiet or [r.rps for r in bare_runs if r.rps]) or 0.0
            open_result = open_loop(runner, args, sat, cands)
            raw["open_loop"] = open_result
        elapsed = time.monotonic() - started
        raw["meta"] = {
            "target": target.kind,
            "seconds": args.seconds,
            "pairs": args.pairs,
            "vus": args.vus,
            "elapsed_s": elapsed,
            "loadavg_end": os.getloadavg(),
            "k6": str(args.k6),
        }
        print()
        print(f"== closed loop, {args.vus} VUs, {args.seconds}s runs, {args.pairs} pairs ==")
        print_table(rows)
        print(LEGEND)
        print()
        for row in rows[1:]:
            print(
                f"{row['candidate']:<15} k6 CPU/req {fmt_num(row['k6_cpu_per_req_us'], 1)} us, "
                f"k6+nginx+consumer CPU/req {fmt_num(row['system_cpu_per_req_us'], 1)} us "
                f"(CPU-model ratio {fmt_num(row['cpu_model_ratio'], 3)}), "
                f"k6 RSS {fmt_num(row['k6_rss_mb'])} MB, drain {fmt_num(row['drain_s'], 2)} s, "
                f"lag max {fmt_num(row['lag_max_s'], 2)} s, publish p50 "
                f"{fmt_num(row['publish_delay_p50_s'], 2)} s, late {row['late_points']}, "
                f"other load {fmt_num(row['foreign_cores'], 2)} cores "
                f"{'ERRORS ' + str(row['errors']) if row['errors'] else ''}"
            )
        print(
            f"bare            k6 CPU/req {fmt_num(rows[0]['k6_cpu_per_req_us'], 1)} us, "
            f"k6+nginx CPU/req {fmt_num(rows[0]['system_cpu_per_req_us'], 1)} us, "
            f"k6 RSS {fmt_num(rows[0]['k6_rss_mb'])} MB"
        )
        print_offline(raw["offline_fidelity"])
        if open_result is not None:
            for one in open_result:
                print_open(one)
        print(f"total {elapsed:.0f}s")
        if args.results is not None:
            args.results.write_text(json.dumps(raw, indent=1, default=str))
            print(f"figures written to {args.results}")


if __name__ == "__main__":
    main()
