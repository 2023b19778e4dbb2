"""RemoteWriteLive: k6's cumulative pushes become the same per-second samples, windows and
totals as the JSON stream gives."""

from __future__ import annotations

import numpy as np
import pytest

from app.k6.remote_write import NativeHistogram, Series
from app.runs.histogram import Histogram
from app.runs.live import ALL, RemoteWriteLive

T0 = 1_796_000_000.25  # a push's time stamp: k6's ticker keeps its fraction of a second


def duration(name: str, ok: bool, buckets: dict[int, int], at: float) -> Series:
    labels = {"name": name, "expected_response": "true" if ok else "false", "method": "GET"}
    count = sum(buckets.values())
    hist = NativeHistogram(3, count, 0.004 * count, 0, dict(buckets))
    return Series("k6_http_req_duration_seconds", labels, int(at * 1000), histogram=hist)


def gauge(metric: str, value: float, at: float) -> Series:
    return Series(metric, {}, int(at * 1000), value=value)


def samples(live: RemoteWriteLive) -> list[dict]:
    return [item["sample"] for item in live.drain() if item["type"] == "sample"]


def test_each_push_minus_the_one_before_is_one_second_with_exact_counts() -> None:
    live = RemoteWriteLive(["a"], window_s=10)
    live.push([duration("a", True, {-64: 10}, T0), gauge("k6_vus", 2, T0)], received=T0)
    live.push(
        [
            duration("a", True, {-64: 25, -63: 5}, T0 + 1),
            duration("a", False, {-60: 3}, T0 + 1),
            gauge("k6_vus", 5, T0 + 1),
        ],
        received=T0 + 1,
    )
    live.finish()

    first, second = samples(live)
    assert (first["elapsed_s"], first["requests"], first["vus"]) == (0, 10, 2)
    assert (second["elapsed_s"], second["requests"], second["failures"]) == (1, 23, 3)
    assert second["endpoints"]["a"]["requests"] == 23
    assert live.totals[ALL].requests == 33
    assert live.totals[ALL].failures == 3
    assert live.reported_vus == 5


def test_the_final_flush_right_after_a_periodic_push_joins_its_second() -> None:
    live = RemoteWriteLive(["a"], window_s=10)
    live.push([duration("a", True, {-64: 10}, T0)], received=T0)
    live.push([duration("a", True, {-64: 20}, T0 + 1)], received=T0 + 1)
    live.push([duration("a", True, {-64: 21}, T0 + 1.01)], received=T0 + 1.01)
    live.finish()

    assert [s["requests"] for s in samples(live)] == [10, 11]


def test_a_series_that_goes_backwards_is_not_counted_negative() -> None:
    live = RemoteWriteLive(["a"], window_s=10)
    live.push([duration("a", True, {-64: 10}, T0)], received=T0)
    live.push([duration("a", True, {-64: 4}, T0 + 1)], received=T0 + 1)  # forged or reset
    live.push([duration("a", True, {-64: 6}, T0 + 2)], received=T0 + 2)
    live.finish()

    assert [s["requests"] for s in samples(live)] == [10, 0, 2]
    assert live.resets == 1


def test_a_native_histogram_spread_over_the_fine_layout_keeps_its_percentiles() -> None:
    rng = np.random.default_rng(7)
    values_ms = rng.lognormal(mean=np.log(8), sigma=0.5, size=20_000)
    base = 2 ** (1 / 8)
    indexes = np.ceil(np.log(values_ms / 1000) / np.log(base)).astype(int)
    buckets = {int(i): int(c) for i, c in zip(*np.unique(indexes, return_counts=True), strict=True)}

    spread = Histogram.from_native(buckets, schema=3, zero=0, sum_ms=float(values_ms.sum()))

    assert spread.total == values_ms.size
    assert spread.sum_ms == pytest.approx(values_ms.sum())
    for pct in (50, 95, 99):
        exact = float(np.percentile(values_ms, pct))
        assert spread.percentile(pct) == pytest.approx(exact, rel=0.02), pct
