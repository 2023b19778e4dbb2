"""The fixed-layout latency histogram: k6's percentiles within 0.5 %, exact merges, few bytes."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.runs.histogram import (
    ALPHA,
    BUCKETS,
    DENSE,
    ENCODING,
    Histogram,
    decode_counts,
    encode_counts,
)


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


def test_encoding_round_trips_in_bytes_that_grow_with_the_buckets_in_use_not_the_traffic() -> None:
    rng = np.random.default_rng(11)
    sizes = []
    for requests in (10, 1_000, 100_000):
        histogram = Histogram()
        histogram.record(rng.lognormal(0.5, 0.6, requests))
        encoded = histogram.encode()
        assert np.array_equal(decode_counts(encoded), histogram.counts)
        sizes.append(len(encoded))

    # A dense array was BUCKETS + 1 bytes for any of these.
    assert sizes[0] < 60
    assert sizes[1] < 400
    assert sizes[2] < 1_000
    assert sizes[2] < BUCKETS / 2


def test_empty_single_and_huge_counts_round_trip() -> None:
    huge = np.zeros(BUCKETS, dtype=np.int64)
    huge[[0, 7, BUCKETS - 1]] = [1, 2**40, 3]
    for counts in (np.zeros(BUCKETS, dtype=np.int64), huge):
        assert np.array_equal(decode_counts(encode_counts(counts)), counts)


def dense(counts: np.ndarray) -> bytes:
    """The LEB128 array earlier versions stored."""
    out = bytearray([DENSE])
    for value in counts.tolist():
        while value >= 0x80:
            out.append((value & 0x7F) | 0x80)
            value >>= 7
        out.append(value)
    return bytes(out)


def test_histograms_stored_dense_by_earlier_versions_still_decode() -> None:
    histogram = Histogram()
    histogram.record(np.random.default_rng(12).lognormal(2, 1, 50_000))

    assert np.array_equal(decode_counts(dense(histogram.counts)), histogram.counts)


def sparse(payload: bytes, width: int = 0) -> bytes:
    return bytes([ENCODING, width]) + zlib.compress(payload)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x09" + b"\x00" * BUCKETS,
        b"\x01" + b"\x00" * (BUCKETS - 1),
        b"\x01\x80",
        b"\x02",
        b"\x02\x09" + zlib.compress(b""),
        b"\x02\x00not deflate",
        sparse(b"\x01\x00\x01\x00"),  # 1⅓ buckets
        sparse(np.array([BUCKETS], dtype="<u2").tobytes() + b"\x01"),  # past the layout
        sparse(np.array([3, 0], dtype="<u2").tobytes() + b"\x01\x01"),  # bucket 3 twice
        sparse(np.array([3], dtype="<u2").tobytes() + b"\x00"),  # an empty bucket stored
        sparse(b"\x00" * (BUCKETS * 11)),  # inflates past any histogram
        sparse(np.array([3], dtype="<u2").tobytes() + b"\x01") + b"tail",
    ],
)
def test_damaged_encodings_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each message differs
        decode_counts(data)


def test_a_decoded_histogram_must_add_up_to_its_count() -> None:
    encoded = encode_counts(np.ones(BUCKETS, dtype=np.int64))

    with pytest.raises(ValueError, match="add up"):
        Histogram.decode(encoded, count=3, sum_ms=1.0, min_ms=1.0, max_ms=1.0)


@pytest.mark.parametrize(
    "data",
    [bytes([DENSE]) + b"\xff" * 10 + b"\x01", bytes([DENSE]) + b"\x80" * (BUCKETS * 11)],
    ids=["a count past 64 bits", "longer than any histogram"],
)
def test_hostile_dense_encodings_are_refused_quickly(data: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each message differs
        decode_counts(data)
