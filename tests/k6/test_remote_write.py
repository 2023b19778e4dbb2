"""The remote-write receiver: what it takes in, what it refuses, and relabelled copies."""

from __future__ import annotations

from typing import Any

import cramjam
import httpx
import pytest

from app.k6 import remote_write
from app.k6.remote_write import MAX_BODY, NativeHistogram, PushRejected, Series


def push(*series: dict[str, Any]) -> bytes:
    request = remote_write.WriteRequest()
    for one in series:
        ts = request.timeseries.add()
        for name, value in sorted(one["labels"].items()):
            ts.labels.add(name=name, value=value)
        if "value" in one:
            ts.samples.add(value=one["value"], timestamp=one["at"])
        if "buckets" in one:
            h = ts.histograms.add(
                count_int=sum(one["buckets"].values()), sum=one["sum"], schema=3,
                timestamp=one["at"],
            )  # fmt: skip
            indexes = sorted(one["buckets"])
            span = h.positive_spans.add(offset=indexes[0], length=indexes[-1] - indexes[0] + 1)
            previous = 0
            for index in range(indexes[0], indexes[0] + span.length):
                count = one["buckets"].get(index, 0)
                h.positive_deltas.append(count - previous)
                previous = count
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


DURATION = {"__name__": "k6_http_req_duration_seconds", "name": "a", "expected_response": "true"}


def test_a_native_histogram_decodes_to_its_absolute_bucket_counts() -> None:
    body = push({"labels": DURATION, "buckets": {-40: 3, -38: 5}, "sum": 0.1, "at": 1000})

    [series], _ = remote_write.decode(body)

    assert (series.metric, series.labels["name"], series.timestamp_ms) == (
        "k6_http_req_duration_seconds", "a", 1000,
    )  # fmt: skip
    assert series.histogram is not None
    assert series.histogram.buckets == {-40: 3, -38: 5}
    assert series.histogram.count == 8


def test_the_difference_of_two_cumulative_histograms_is_what_came_in_between() -> None:
    earlier = NativeHistogram(3, 4, 0.2, 0, {-40: 3, -39: 1})
    later = NativeHistogram(3, 10, 0.5, 0, {-40: 5, -39: 1, -38: 4})

    delta = later.minus(earlier)

    assert delta is not None
    assert (delta.count, delta.buckets) == (6, {-40: 2, -38: 4})
    assert delta.sum == pytest.approx(0.3)
    assert earlier.minus(later) is None  # went backwards: a reset, not a negative count


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "not a snappy block"),
        (b"\x80\x80\x80\x80\x40", "uncompressed"),  # announces 16 GiB
        (bytes(cramjam.snappy.compress_raw(b"\x0a\x05garbage")), "WriteRequest"),
        (b"\x05hello", "snappy"),
    ],
)
def test_a_body_that_is_not_a_push_is_rejected_with_its_reason(body: bytes, message: str) -> None:
    with pytest.raises(PushRejected, match=message):
        remote_write.decode(body)


def test_a_relabelled_copy_keeps_only_k6_series_and_sets_the_run_labels() -> None:
    body = push(
        {"labels": {**DURATION, "testid": "theirs"}, "buckets": {-40: 1}, "sum": 0.01, "at": 5},
        {"labels": {"__name__": "not_k6", "x": "1"}, "value": 1.0, "at": 5},
    )
    _, request = remote_write.decode(body)

    copied, _ = remote_write.decode(remote_write.relabel(request, {"testid": "run-1", "plan": "p"}))

    assert [s.metric for s in copied] == ["k6_http_req_duration_seconds"]
    assert copied[0].labels["testid"] == "run-1"  # the run's, not the script's
    assert copied[0].labels["plan"] == "p"
    assert copied[0].histogram is not None
    assert copied[0].histogram.buckets == {-40: 1}


async def test_the_receiver_takes_pushes_at_its_secret_path_only() -> None:
    taken: list[list[Series]] = []
    body = push({"labels": {"__name__": "k6_vus"}, "value": 4.0, "at": 2000})
    async with (
        remote_write.receiver(lambda series, _request, _at: taken.append(series)) as receiver,
        httpx.AsyncClient() as client,
    ):
        ok = await client.post(receiver.url, content=body)
        again = await client.post(receiver.url, content=body)  # the same connection, kept alive
        elsewhere = await client.post(f"http://127.0.0.1:{receiver.port}/write/guess", content=body)
        wrong_method = await client.get(receiver.url)
        garbage = await client.post(receiver.url, content=b"\x05hello")
        too_big = await client.post(receiver.url, content=b"\0" * (MAX_BODY + 1))

    assert (ok.status_code, again.status_code) == (204, 204)
    assert [[s.value for s in series] for series in taken] == [[4.0], [4.0]]
    assert elsewhere.status_code == 404
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "POST")
    assert garbage.status_code == 400
    assert "snappy" in garbage.text
    assert too_big.status_code == 413
    assert (receiver.pushes, receiver.rejected) == (2, 4)
