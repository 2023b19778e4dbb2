"""Latency histograms with a fixed layout: mergeable, bounded error, constant stored size.

Buckets are logarithmic with relative accuracy ``ALPHA`` (the DDSketch layout): any value in
bucket ``i`` is within 0.5 % of the bucket's representative value, so every percentile read
from a histogram is within 0.5 % of the exact one. The layout spans 1 µs to 10 minutes in
``BUCKETS`` buckets, the same for every histogram, so histograms of different seconds,
endpoints or runs merge by adding their counts.

Percentiles follow k6's own rule (``TrendSink.P``: linear interpolation at rank p·(n−1) of
the sorted samples), so they can be compared with k6's summary number for number. Exact
count, sum, min and max are kept beside the counts.

Stored, a histogram is its dense count array as LEB128 varints: 2 KB while no bucket counts
128 or more, about 2.2 KB with 100,000 responses in one histogram — a run's stored bytes grow
with its duration and endpoints, not with its traffic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.core import slis

ALPHA = 0.005
GAMMA = (1 + ALPHA) / (1 - ALPHA)
MIN_MS = 0.001
MAX_MS = 600_000.0
_LOG_GAMMA = math.log(GAMMA)
BUCKETS = math.ceil(math.log(MAX_MS / MIN_MS) / _LOG_GAMMA) + 1
ENCODING = 1  # bump if the layout or byte format ever changes

# Bucket i > 0 holds (MIN_MS·γ^(i−1), MIN_MS·γ^i]; its representative is within ALPHA of both ends.
_REPRESENTATIVE = np.array(
    [MIN_MS] + [2 * MIN_MS * GAMMA**i / (GAMMA + 1) for i in range(1, BUCKETS)]
)

PERCENTILES = slis.PERCENTILES


def bucket_indexes(values_ms: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        raw = np.ceil(np.log(np.maximum(values_ms, MIN_MS) / MIN_MS) / _LOG_GAMMA)
    return np.clip(raw, 0, BUCKETS - 1).astype(np.int64)


@dataclass
class Histogram:
    counts: np.ndarray = field(default_factory=lambda: np.zeros(BUCKETS, dtype=np.int64))
    total: int = 0
    sum_ms: float = 0.0
    min_ms: float = math.inf
    max_ms: float = 0.0

    def record(self, values_ms: np.ndarray) -> None:
        if values_ms.size == 0:
            return
        self.counts += np.bincount(bucket_indexes(values_ms), minlength=BUCKETS)
        self.total += int(values_ms.size)
        self.sum_ms += float(values_ms.sum())
        self.min_ms = min(self.min_ms, float(values_ms.min()))
        self.max_ms = max(self.max_ms, float(values_ms.max()))

    @classmethod
    def from_native(
        cls, buckets: dict[int, int], *, schema: int, zero: int, sum_ms: float
    ) -> Histogram:
        """A Prometheus native histogram (bucket i: (base^(i−1), base^i] seconds, base =
        2^(2^−schema)) in this layout: each native bucket's observations are spread over it
        by exponential interpolation (as Prometheus reads a quantile inside a bucket), zero
        bucket at ``MIN_MS``. The sum is the native one, exact; min and max are the spread's."""
        base = 2.0 ** (2.0**-schema)
        indexes = sorted(i for i, c in buckets.items() if c > 0)
        counts = np.array([buckets[i] for i in indexes], dtype=np.int64)
        total = int(counts.sum()) + zero
        hist = cls()
        if total == 0:
            return hist
        if counts.size:
            lower = 1000.0 * base ** (np.array(indexes, dtype=np.float64) - 1)
            # The j-th of c observations in (lo, lo·base] sits at lo·base^((j+½)/c).
            owner = np.repeat(np.arange(counts.size), counts)
            starts = np.cumsum(counts) - counts
            rank = np.arange(owner.size) - starts[owner]
            values = lower[owner] * base ** ((rank + 0.5) / counts[owner])
            hist.counts += np.bincount(bucket_indexes(values), minlength=BUCKETS)
            hist.min_ms = float(values[0])
            hist.max_ms = float(values[-1])
        if zero:
            hist.counts[0] += zero
            hist.min_ms = MIN_MS
            hist.max_ms = max(hist.max_ms, MIN_MS)
        hist.total = total
        hist.sum_ms = sum_ms
        return hist

    def add(self, other: Histogram) -> None:
        if other.total == 0:
            return
        self.counts += other.counts
        self.total += other.total
        self.sum_ms += other.sum_ms
        self.min_ms = min(self.min_ms, other.min_ms)
        self.max_ms = max(self.max_ms, other.max_ms)

    def copy(self) -> Histogram:
        return Histogram(self.counts.copy(), self.total, self.sum_ms, self.min_ms, self.max_ms)

    def percentile(self, pct: float) -> float | None:
        """k6's percentile: interpolation at rank pct/100·(n−1), each rank's sample read as
        its bucket's representative (the extreme ranks as the exact min and max)."""
        if self.total == 0:
            return None
        rank = pct / 100 * (self.total - 1)
        lo, hi = math.floor(rank), math.ceil(rank)
        cumulative = np.cumsum(self.counts)
        a, b = self._at_rank(cumulative, lo), self._at_rank(cumulative, hi)
        return a + (b - a) * (rank - lo)

    def _at_rank(self, cumulative: np.ndarray, rank: int) -> float:
        if rank <= 0:
            return self.min_ms
        if rank >= self.total - 1:
            return self.max_ms
        index = int(np.searchsorted(cumulative, rank + 1))
        return min(max(float(_REPRESENTATIVE[index]), self.min_ms), self.max_ms)

    def above(self, threshold_ms: float) -> int:
        """Responses in buckets whose representative value is above ``threshold_ms``."""
        return int(self.counts[_REPRESENTATIVE > threshold_ms].sum())

    def stats(self) -> dict[str, float | None]:
        """avg/min/p50/p90/p95/p99/max in ms (all ``None`` for an empty histogram)."""
        if self.total == 0:
            return {"avg": None, "min": None, **dict.fromkeys(PERCENTILES), "max": None}
        figures: dict[str, float | None] = {
            "avg": self.sum_ms / self.total,
            "min": self.min_ms,
        }
        for name, pct in PERCENTILES.items():
            figures[name] = self.percentile(pct)
        figures["max"] = self.max_ms
        return figures

    def encode(self) -> bytes:
        return encode_counts(self.counts)

    def to_record(self) -> dict[str, Any]:
        return {
            "count": self.total,
            "sum_ms": self.sum_ms,
            "min_ms": self.min_ms if self.total else None,
            "max_ms": self.max_ms if self.total else None,
        }

    @classmethod
    def decode(
        cls, data: bytes, *, count: int, sum_ms: float, min_ms: float | None, max_ms: float | None
    ) -> Histogram:
        counts = decode_counts(data)
        if int(counts.sum()) != count:
            raise ValueError("histogram counts do not add up to its count")
        return cls(
            counts,
            count,
            sum_ms,
            min_ms if min_ms is not None else math.inf,
            max_ms if max_ms is not None else 0.0,
        )


def encode_counts(counts: np.ndarray) -> bytes:
    """``ENCODING`` then one LEB128 varint per bucket: a zero or small count is one byte."""
    if counts.size != BUCKETS or (counts.size and int(counts.min()) < 0):
        raise ValueError("not a histogram of this layout")
    if int(counts.max(initial=0)) < 0x80:
        return bytes([ENCODING]) + counts.astype(np.uint8).tobytes()
    out = bytearray([ENCODING])
    for value in counts.tolist():
        while value >= 0x80:
            out.append((value & 0x7F) | 0x80)
            value >>= 7
        out.append(value)
    return bytes(out)


def decode_counts(data: bytes) -> np.ndarray:
    if not data or data[0] != ENCODING:
        raise ValueError("unknown histogram encoding")
    if len(data) == BUCKETS + 1:
        # Every count under 128: one byte each (encode_counts' compact case), read at once.
        dense = np.frombuffer(data, dtype=np.uint8, offset=1)
        if int(dense.max(initial=0)) < 0x80:
            return dense.astype(np.int64)
    counts = np.zeros(BUCKETS, dtype=np.int64)
    index, value, shift = 0, 0, 0
    for byte in data[1:]:
        value |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            continue
        if index >= BUCKETS:
            raise ValueError("histogram has more buckets than its layout")
        counts[index] = value
        index, value, shift = index + 1, 0, 0
    if index != BUCKETS or shift:
        raise ValueError("truncated histogram")
    return counts
