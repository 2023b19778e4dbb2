"""k6's JSON metric stream binned into seconds and windows (synthetic lines in k6's format)."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np

from app.runs.histogram import Histogram
from app.runs.live import ALL, MAX_SERIES, LiveMetrics

T0 = 1_790_000_000  # an epoch second


def stamp(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def request(t: float, ms: float, name: str = "a", ok: bool = True) -> bytes:
    # The tag order and extra fields k6 v1.1.0 writes; the reader must ignore what it skips.
    tags = {
        "expected_response": "true" if ok else "false",
        "group": "",
        "method": "GET",
        "name": name,
        "scenario": "main",
        "status": "200" if ok else "500",
        "url": f"http://127.0.0.1/{name}",
    }
    point = {"metric": "http_req_duration", "type": "Point",
             "data": {"time": stamp(t), "value": ms, "tags": tags}}  # fmt: skip
    return json.dumps(point, separators=(",", ":")).encode() + b"\n"


def gauge(metric: str, t: float, value: float) -> bytes:
    point = {"metric": metric, "type": "Point", "data": {"time": stamp(t), "value": value,
             "tags": {}}}  # fmt: skip
    return json.dumps(point, separators=(",", ":")).encode() + b"\n"


def noise(t: float) -> bytes:
    # One of the ~11 other lines k6 writes per request.
    return gauge("http_req_waiting", t, 1.0) + b'{"type":"Metric","data":{"name":"x"}}\n'


def feed_in_pieces(live: LiveMetrics, stream: bytes, size: int = 97) -> None:
    for i in range(0, len(stream), size):
        live.feed(stream[i : i + size])


def samples(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item["sample"] for item in items if item["type"] == "sample"]


def windows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for item in items if item["type"] == "histograms"]


def test_each_second_gets_its_requests_failures_vus_and_percentiles_per_endpoint() -> None:
    stream = b"".join(
        [
            request(T0 + 0.1, 10.0, "a"),
            request(T0 + 0.2, 30.0, "b"),
            request(T0 + 0.3, 0.0, "b", ok=False),
            noise(T0 + 0.4),
            gauge("iterations", T0 + 0.5, 1),
            gauge("vus", T0 + 1.0, 3),
            request(T0 + 1.5, 20.0, "a"),
        ]
    )
    live = LiveMetrics(["a", "b"])

    feed_in_pieces(live, stream)
    live.finish()
    first, second = samples(live.drain())

    assert (first["elapsed_s"], first["requests"], first["failures"]) == (0, 3, 1)
    assert first["iterations"] == 1
    assert first["endpoints"]["b"]["requests"] == 2
    assert first["endpoints"]["b"]["failures"] == 1
    # Latency counts expected responses only, as k6's http_req_duration{expected_response:true}.
    assert first["endpoints"]["b"]["latency_ms"]["max"] == 30.0
    assert first["latency_ms"]["min"] == 10.0
    assert (second["elapsed_s"], second["vus"], second["total_requests"]) == (1, 3, 4)
    assert second["vu_seconds"] == 3.0


def test_a_second_closes_once_k6_writes_past_its_end_or_the_clock_says_so() -> None:
    live = LiveMetrics(["a"])

    live.feed(request(T0 + 0.5, 5.0) + request(T0 + 1.2, 5.0))
    assert samples(live.drain()) == []  # k6 may still be writing second 0

    live.feed(request(T0 + 1.6, 5.0))
    assert [s["elapsed_s"] for s in samples(live.drain())] == [0]

    live.tick(now=T0 + 2 + 2.5)  # nothing more from k6 for a while
    assert [s["elapsed_s"] for s in samples(live.drain())] == [1]


def test_windows_hold_every_request_and_add_up_to_the_run_results() -> None:
    rng = np.random.default_rng(5)
    lines = []
    for second in range(25):
        for ms in rng.lognormal(1.5, 0.5, 40):
            lines.append(request(T0 + second + rng.random() * 0.99, float(ms), "a"))
        lines.append(request(T0 + second + 0.5, 1.0, "b", ok=False))
    live = LiveMetrics(["a", "b"], window_s=10)

    feed_in_pieces(live, b"".join(lines), size=4096)
    live.finish()
    stored = windows(live.drain())

    assert [(w["start_s"], w["seconds"]) for w in stored] == [(0, 10), (10, 10), (20, 5)]
    merged = Histogram()
    for window in stored:
        series = next(s for s in window["series"] if s["endpoint"] == "a")
        merged.add(
            Histogram.decode(
                base64.b64decode(series["counts"]),
                count=series["count"],
                sum_ms=series["sum_ms"],
                min_ms=series["min_ms"],
                max_ms=series["max_ms"],
            )
        )
    everything, a, b = live.results(["a", "b"], duration_s=25.0)
    assert everything["endpoint"] == ALL
    assert (everything["requests"], everything["failures"]) == (1025, 25)
    assert a["requests"] == merged.total == 1000
    assert a["p95_ms"] == merged.percentile(95)
    assert a["rps"] == 40.0
    assert b["error_rate"] == 1.0
    assert b["p95_ms"] is None  # no expected response, no latency


def test_a_point_arriving_after_its_second_closed_is_kept_in_the_open_window() -> None:
    live = LiveMetrics(["a"], window_s=10)
    live.feed(request(T0 + 0.5, 5.0) + request(T0 + 2.0, 5.0))  # closes second 0

    live.feed(request(T0 + 0.9, 7.0))  # late for second 0
    live.finish()
    items = live.drain()

    assert live.late == 1
    assert sum(s["requests"] for s in samples(items)) == 2  # per second: as it was when closed
    (window,) = windows(items)
    assert next(s for s in window["series"] if s["endpoint"] == ALL)["requests"] == 3
    assert live.results(["a"], None)[0]["requests"] == 3


def test_a_script_naming_endless_urls_folds_the_excess_into_all_requests() -> None:
    lines = [request(T0 + 0.1, 1.0, f"/item/{i}") for i in range(MAX_SERIES + 30)]
    live = LiveMetrics([])

    live.feed(b"".join(lines))
    live.finish()
    (sample,) = samples(live.drain())

    assert len(sample["endpoints"]) == MAX_SERIES
    assert sample["requests"] == MAX_SERIES + 30


def test_a_line_cut_short_by_a_killed_k6_is_skipped_not_fatal() -> None:
    live = LiveMetrics(["a"])

    live.feed(request(T0 + 0.1, 1.0) + request(T0 + 0.2, 2.0)[:40] + b"\n" + request(T0 + 0.3, 3.0))
    live.finish()

    assert live.results(["a"], None)[1]["requests"] == 2


def test_a_stamp_with_a_utc_offset_lands_in_the_right_second() -> None:
    from app.runs.live import _epoch

    assert _epoch("2026-11-25T20:22:35.5+01:00") == _epoch("2026-11-25T19:22:35.5Z")
    assert _epoch("2026-11-25T14:22:35-05:00") == _epoch("2026-11-25T19:22:35Z")


def test_unnamed_requests_are_counted_once_in_all_requests() -> None:
    live = LiveMetrics(["a"])

    live.feed(request(T0 + 0.1, 1.0, "a") + request(T0 + 0.2, 2.0, ""))
    live.finish()
    (sample,) = samples(live.drain())

    assert sample["requests"] == 2
    assert live.results(["a"], None)[0]["requests"] == 2


def test_a_name_too_long_to_store_is_counted_in_all_requests_only() -> None:
    live = LiveMetrics([])

    live.feed(request(T0 + 0.1, 1.0, "/x" * 150))
    live.finish()
    items = live.drain()

    assert samples(items)[0]["endpoints"] == {}
    assert [s["endpoint"] for s in windows(items)[0]["series"]] == [ALL]
