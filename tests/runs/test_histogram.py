"""The fixed-layout latency histogram: k6's percentiles within 0.5 %, exact merges, fixed size."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.runs.histogram import ALPHA, BUCKETS, Histogram, decode_counts, encode_counts


def k6_percentile(values: np.ndarray, pct: float) -> float:
    """k6's TrendSink.P: linear interpolation at rank pct·(n−1) of the sorted samples."""
    ordered = np.sort(values)
    rank = pct / 100 * (ordered.size - 1)
    lo, hi = math.floor(rank), math.ceil(rank)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo))


latencies = st.lists(
    st.floats(min_value=0.0005, max_value=590_000, allow_nan=False), min_size=1, max_size=400
)


@settings(max_examples=200, deadline=None)
@given(latencies, st.sampled_from([50.0, 90.0, 95.0, 99.0]))
def test_every_percentile_is_within_half_a_percent_of_k6s(values: list[float], pct: float) -> None:
    samples = np.array(values)
    histogram = Histogram()
    histogram.record(samples)

    got = histogram.percentile(pct)
    want = k6_percentile(samples, pct)

    assert got is not None
    # Below the layout's first bucket (1 µs) the error is bounded in absolute terms instead.
    assert abs(got - want) <= ALPHA * want + 0.001 + 1e-9


def test_lognormal_latencies_match_k6_well_inside_one_percent() -> None:
    samples = np.random.default_rng(7).lognormal(mean=1.0, sigma=0.9, size=50_000)
    histogram = Histogram()
    histogram.record(samples)

    for pct in (50.0, 90.0, 95.0, 99.0):
        got, want = histogram.percentile(pct), k6_percentile(samples, pct)
        assert got is not None
        assert abs(got / want - 1) < ALPHA
    stats = histogram.stats()
    assert stats["min"] == samples.min()
    assert stats["max"] == samples.max()
    assert stats["avg"] == pytest.approx(samples.mean())


def test_merging_histograms_equals_recording_everything_in_one() -> None:
    rng = np.random.default_rng(3)
    parts = [rng.exponential(scale, 2_000) for scale in (1.0, 5.0, 40.0)]
    merged = Histogram()
    for part in parts:
        one = Histogram()
        one.record(part)
        merged.add(one)
    whole = Histogram()
    whole.record(np.concatenate(parts))

    assert np.array_equal(merged.counts, whole.counts)
    assert merged.stats() == pytest.approx(whole.stats())


def test_an_empty_histogram_has_no_figures() -> None:
    assert set(Histogram().stats().values()) == {None}
    assert Histogram().percentile(95) is None


def test_a_single_sample_is_every_percentile() -> None:
    histogram = Histogram()
    histogram.record(np.array([12.345]))

    assert histogram.percentile(99) == 12.345
    assert histogram.percentile(50) == 12.345


def test_encoding_round_trips_and_costs_the_same_bytes_whatever_the_traffic() -> None:
    rng = np.random.default_rng(11)
    sizes = []
    for requests in (10, 1_000, 100_000):
        histogram = Histogram()
        histogram.record(rng.lognormal(0.5, 0.6, requests))
        encoded = histogram.encode()
        assert np.array_equal(decode_counts(encoded), histogram.counts)
        sizes.append(len(encoded))

    assert sizes[0] == sizes[1] == BUCKETS + 1
    # Counts of 128 and more take a second varint byte: at 100,000 responses a few hundred
    # buckets do, and the size stops there until counts pass 16,383.
    assert sizes[2] <= sizes[0] * 1.15


@pytest.mark.parametrize(
    "data",
    [b"", b"\x09" + b"\x00" * BUCKETS, b"\x01" + b"\x00" * (BUCKETS - 1), b"\x01\x80"],
)
def test_damaged_encodings_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each message differs
        decode_counts(data)


def test_a_decoded_histogram_must_add_up_to_its_count() -> None:
    encoded = encode_counts(np.ones(BUCKETS, dtype=np.int64))

    with pytest.raises(ValueError, match="add up"):
        Histogram.decode(encoded, count=3, sum_ms=1.0, min_ms=1.0, max_ms=1.0)
