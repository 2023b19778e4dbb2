"""Latency histograms with a fixed layout: mergeable, bounded error, constant stored size.

Buckets are logarithmic with relative accuracy ``ALPHA`` (the DDSketch layout): any value in
bucket ``i`` is within 0.5 % of the bucket's representative value, so every percentile read
from a histogram is within 0.5 % of the exact one. The layout spans 1 µs to 10 minutes in
``BUCKETS`` buckets, the same for every histogram, so histograms of different seconds,
endpoints or runs merge by adding their counts.

Percentiles follow k6's own rule (``TrendSink.P``: linear interpolation at rank p·(n−1) of
the sorted samples), so they can be compared with k6's summary number for number. Exact
count, sum, min and max are kept beside the counts.

Stored (``ENCODING`` 2), a histogram is its non-empty buckets only: their indexes as
differences from the previous one (unsigned 16-bit), their counts in the narrowest unsigned
width that holds the largest, both arrays deflated — 40–120 bytes for a window of tens to
hundreds of responses, ~420 bytes at 100,000 (a dense array was 2 KB whatever it held), and
decoded with two ``frombuffer`` calls. A run's stored bytes still grow with its duration and
endpoints, barely with its traffic. Histograms stored by earlier versions as dense varints
(``DENSE``) still decode.
"""

from __future__ import annotations

import math
import zlib
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
DENSE = 1  # every bucket as a LEB128 varint, as earlier versions stored them
ENCODING = 2  # sparse: see the module's docstring; bump if the layout or byte format changes
_WIDTHS: tuple[np.dtype[Any], ...] = (
    np.dtype("<u1"),
    np.dtype("<u2"),
    np.dtype("<u4"),
    np.dtype("<u8"),
)
# Two bytes of index and at most eight of count per bucket: nothing decodes to more.
_MAX_SPARSE = BUCKETS * (2 + 8)

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

    def coarse(self, step: int) -> tuple[list[float], list[int]]:
        """The non-empty buckets of a layout ``step`` times coarser (each ``step`` adjacent
        buckets as one, relative width γ^step − 1), as their upper bounds in ms and counts:
        a distribution small enough to draw (a few hundred bins at most)."""
        if step < 1:
            raise ValueError("step must be at least 1")
        padded = np.zeros(-(-BUCKETS // step) * step, dtype=np.int64)
        padded[:BUCKETS] = self.counts
        grouped = padded.reshape(-1, step).sum(axis=1)
        kept = np.nonzero(grouped)[0]
        # Group g holds native buckets g·step … g·step+step−1; the last one's upper bound.
        # Unrounded: rounded to 4 decimals, a value near its bin's top lay above the bound
        # shown (10.30182 ms in the bin up to 10.3018), and sub-0.1 ms bounds ran together.
        upper = MIN_MS * GAMMA ** ((kept + 1) * step - 1)
        return [float(u) for u in upper], [int(c) for c in grouped[kept]]

    def encode(self) -> bytes:
        return encode_counts(self.counts)

    def add_encoded(
        self, data: bytes, *, count: int, sum_ms: float, min_ms: float | None, max_ms: float | None
    ) -> None:
        """Merge a stored histogram in without decoding it into a histogram of its own."""
        add_counts(self.counts, data, expected=count)
        if count == 0:
            return
        self.total += count
        self.sum_ms += sum_ms
        self.min_ms = min(self.min_ms, min_ms if min_ms is not None else math.inf)
        self.max_ms = max(self.max_ms, max_ms if max_ms is not None else 0.0)

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
    """``ENCODING``, the count width's code, then the deflated index differences and counts."""
    if counts.size != BUCKETS or (counts.size and int(counts.min()) < 0):
        raise ValueError("not a histogram of this layout")
    filled = np.flatnonzero(counts)
    values = counts[filled]
    largest = int(values.max(initial=0))
    code = next(i for i, width in enumerate(_WIDTHS) if largest < 1 << (8 * width.itemsize))
    steps = np.diff(filled, prepend=0).astype("<u2")
    payload = steps.tobytes() + values.astype(_WIDTHS[code]).tobytes()
    return bytes([ENCODING, code]) + zlib.compress(payload, 6)


def decode_counts(data: bytes) -> np.ndarray:
    counts = np.zeros(BUCKETS, dtype=np.int64)
    add_counts(counts, data)
    return counts


def add_counts(into: np.ndarray, data: bytes, expected: int | None = None) -> int:
    """Add an encoded histogram's counts into ``into`` (a ``BUCKETS`` array) without building
    a dense array for it; the number of responses added. With ``expected``, a histogram that
    does not hold that many is refused before anything is added."""
    if data and data[0] == DENSE:
        dense = _decode_dense(data)
        if expected is not None and int(dense.sum()) != expected:
            raise ValueError("histogram counts do not add up to its count")
        into += dense
        return int(dense.sum())
    if len(data) < 2 or data[0] != ENCODING or data[1] >= len(_WIDTHS):
        raise ValueError("unknown histogram encoding")
    width = _WIDTHS[data[1]]
    inflate = zlib.decompressobj()
    try:
        payload = inflate.decompress(data[2:], _MAX_SPARSE)
    except zlib.error as exc:
        raise ValueError(f"damaged histogram: {exc}") from None
    if inflate.unconsumed_tail or inflate.unused_data or not inflate.eof:
        raise ValueError("damaged histogram: not one whole deflate stream of a histogram")
    filled, rest = divmod(len(payload), 2 + width.itemsize)
    if rest:
        raise ValueError("truncated histogram")
    steps = np.frombuffer(payload, dtype="<u2", count=filled).astype(np.int64)
    values = np.frombuffer(payload, dtype=width, offset=2 * filled).astype(np.int64)
    indexes = np.cumsum(steps)
    if filled and ((steps[1:] == 0).any() or int(indexes[-1]) >= BUCKETS or (values <= 0).any()):
        raise ValueError("histogram buckets out of its layout")
    if expected is not None and int(values.sum()) != expected:
        raise ValueError("histogram counts do not add up to its count")
    into[indexes] += values  # indexes are distinct: no need for np.add.at
    return int(values.sum())


def _decode_dense(data: bytes) -> np.ndarray:
    if len(data) > 1 + BUCKETS * 10:
        raise ValueError("histogram longer than any of its layout")
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
            if shift > 56:
                raise ValueError("histogram count too large")
            continue
        if index >= BUCKETS:
            raise ValueError("histogram has more buckets than its layout")
        counts[index] = value
        index, value, shift = index + 1, 0, 0
    if index != BUCKETS or shift:
        raise ValueError("truncated histogram")
    return counts
