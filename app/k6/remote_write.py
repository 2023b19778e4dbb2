"""k6's Prometheus remote-write output, received: the wire format and a loopback receiver.

k6 (``--out experimental-prometheus-rw`` with ``K6_PROMETHEUS_RW_TREND_AS_NATIVE_HISTOGRAM``)
pushes, once a second, every series it has as a snappy-compressed protobuf ``WriteRequest``
(prometheus/prompb ``remote.proto`` and ``types.proto``). Counters and histograms are
cumulative since the start of the test; trends are native histograms (schema 3 with k6 1.1.0:
buckets 2^(1/8) ≈ 9 % wide). ``bench/datapath.py`` measured this path at a twelfth of the
JSON stream's cost to k6 (bench/README.md).

This module knows the format and nothing of runs: :func:`receiver` serves one push URL on
127.0.0.1 with a per-receiver secret path and hands each decoded push to a callback;
:func:`encode` turns series back into a body another remote-write receiver (the user's
Prometheus) accepts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import cramjam
import h11
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

log = logging.getLogger(__name__)

MAX_BODY = 8 * 1024 * 1024  # compressed bytes of one push
MAX_RAW = 64 * 1024 * 1024  # decompressed
PUSH_INTERVAL = "1s"


def _write_request() -> Any:
    """prompb's WriteRequest, with the messages in it that k6 sends, built from a descriptor
    (no generated code to keep in step)."""
    fdp = descriptor_pb2.FileDescriptorProto(
        name="perf_agent_prompb.proto", package="perfagent.prompb", syntax="proto3"
    )
    f = descriptor_pb2.FieldDescriptorProto
    rep, opt = f.LABEL_REPEATED, f.LABEL_OPTIONAL

    def message(name: str, *fields: tuple[str, int, int, int, str]) -> None:
        msg = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            added = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                added.type_name = f".perfagent.prompb.{type_name}"
            if label == rep and ftype not in (f.TYPE_MESSAGE, f.TYPE_STRING, f.TYPE_BYTES):
                added.options.packed = True

    message("Label", ("name", 1, f.TYPE_STRING, opt, ""), ("value", 2, f.TYPE_STRING, opt, ""))
    message("Sample", ("value", 1, f.TYPE_DOUBLE, opt, ""), ("timestamp", 2, f.TYPE_INT64, opt, ""))
    message(
        "BucketSpan", ("offset", 1, f.TYPE_SINT32, opt, ""), ("length", 2, f.TYPE_UINT32, opt, "")
    )
    message(
        "Histogram",
        ("count_int", 1, f.TYPE_UINT64, opt, ""),
        ("count_float", 2, f.TYPE_DOUBLE, opt, ""),
        ("sum", 3, f.TYPE_DOUBLE, opt, ""),
        ("schema", 4, f.TYPE_SINT32, opt, ""),
        ("zero_threshold", 5, f.TYPE_DOUBLE, opt, ""),
        ("zero_count_int", 6, f.TYPE_UINT64, opt, ""),
        ("zero_count_float", 7, f.TYPE_DOUBLE, opt, ""),
        ("negative_spans", 8, f.TYPE_MESSAGE, rep, "BucketSpan"),
        ("negative_deltas", 9, f.TYPE_SINT64, rep, ""),
        ("negative_counts", 10, f.TYPE_DOUBLE, rep, ""),
        ("positive_spans", 11, f.TYPE_MESSAGE, rep, "BucketSpan"),
        ("positive_deltas", 12, f.TYPE_SINT64, rep, ""),
        ("positive_counts", 13, f.TYPE_DOUBLE, rep, ""),
        ("reset_hint", 14, f.TYPE_INT32, opt, ""),
        ("timestamp", 15, f.TYPE_INT64, opt, ""),
    )
    message(
        "TimeSeries",
        ("labels", 1, f.TYPE_MESSAGE, rep, "Label"),
        ("samples", 2, f.TYPE_MESSAGE, rep, "Sample"),
        ("histograms", 4, f.TYPE_MESSAGE, rep, "Histogram"),
    )
    message("WriteRequest", ("timeseries", 1, f.TYPE_MESSAGE, rep, "TimeSeries"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("perfagent.prompb.WriteRequest")
    )


WriteRequest = _write_request()


class PushRejected(ValueError):
    """A body that is not a remote-write request this receiver accepts."""


@dataclass
class NativeHistogram:
    """A native histogram's positive side as absolute counts per bucket index; bucket ``i``
    holds (base^(i−1), base^i] with base = 2^(2^−schema), in the series' unit (seconds)."""

    schema: int
    count: int
    sum: float
    zero_count: int = 0
    buckets: dict[int, int] = field(default_factory=dict)

    @classmethod
    def from_message(cls, message: Any) -> NativeHistogram:
        buckets: dict[int, int] = {}
        index = 0
        if message.positive_counts:  # a float histogram (k6 sends integer ones)
            values: list[float] = list(message.positive_counts)
            delta_encoded = False
        else:
            values = list(message.positive_deltas)
            delta_encoded = True  # each count is the previous bucket's plus this
        position, running = 0, 0
        for number, span in enumerate(message.positive_spans):
            index = span.offset if number == 0 else index + span.offset
            for _ in range(span.length):
                if position >= len(values):
                    raise PushRejected("a histogram has fewer bucket counts than its spans")
                if delta_encoded:
                    running += int(values[position])
                    value = running
                else:
                    value = int(values[position])
                position += 1
                if value < 0:
                    raise PushRejected("a histogram bucket count is negative")
                if value:
                    buckets[index] = value
                index += 1
        count = int(message.count_int) if message.count_int else int(message.count_float)
        zero = (
            int(message.zero_count_int) if message.zero_count_int else int(message.zero_count_float)
        )
        return cls(int(message.schema), count, float(message.sum), zero, buckets)

    def minus(self, earlier: NativeHistogram | None) -> NativeHistogram | None:
        """What was observed since ``earlier`` (None: a reset, e.g. k6 restarted the series)."""
        if earlier is None:
            return self
        if earlier.schema != self.schema or earlier.count > self.count:
            return None
        buckets = {}
        for index, value in self.buckets.items():
            diff = value - earlier.buckets.get(index, 0)
            if diff < 0:
                return None
            if diff:
                buckets[index] = diff
        if any(index not in self.buckets for index in earlier.buckets):
            return None
        return NativeHistogram(
            self.schema,
            self.count - earlier.count,
            self.sum - earlier.sum,
            self.zero_count - earlier.zero_count,
            buckets,
        )

    def bounds(self, index: int) -> tuple[float, float]:
        base = 2.0 ** (2.0**-self.schema)
        return base ** (index - 1), base**index


@dataclass
class Series:
    """One time series of a push: its metric name, its labels (without ``__name__``), the
    newest sample value (gauges and counters) and the newest histogram, with their time."""

    metric: str
    labels: dict[str, str]
    timestamp_ms: int
    value: float | None = None
    histogram: NativeHistogram | None = None

    @property
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return self.metric, tuple(sorted(self.labels.items()))


def _raw_length(body: bytes) -> int:
    """The uncompressed length a snappy block announces (its leading varint)."""
    length, shift = 0, 0
    for byte in body[:10]:
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return length
        shift += 7
    raise PushRejected("not a snappy block")


def decode(body: bytes) -> tuple[list[Series], Any]:
    """A push body as series (and the decoded message, for forwarding)."""
    if len(body) > MAX_BODY:
        raise PushRejected(f"push larger than {MAX_BODY} bytes")
    if _raw_length(body) > MAX_RAW:
        raise PushRejected(f"push announces more than {MAX_RAW} bytes uncompressed")
    try:
        raw = bytes(cramjam.snappy.decompress_raw(body))
    except Exception as exc:  # cramjam raises its own DecompressionError
        raise PushRejected(f"not snappy: {exc}") from exc
    request = WriteRequest()
    try:
        request.ParseFromString(raw)
    except Exception as exc:  # google.protobuf.message.DecodeError
        raise PushRejected(f"not a WriteRequest: {exc}") from exc
    found = []
    for ts in request.timeseries:
        labels = {label.name: label.value for label in ts.labels}
        metric = labels.pop("__name__", "")
        if not metric:
            continue
        series = Series(metric, labels, 0)
        for sample in ts.samples:
            if sample.timestamp >= series.timestamp_ms:
                series.timestamp_ms, series.value = int(sample.timestamp), float(sample.value)
        for histogram in ts.histograms:
            if histogram.timestamp >= series.timestamp_ms:
                series.timestamp_ms = int(histogram.timestamp)
                series.histogram = NativeHistogram.from_message(histogram)
        found.append(series)
    return found, request


def relabel(request: Any, labels: dict[str, str], *, prefix: str = "k6_") -> bytes:
    """A copy of a push for another receiver: only series named ``prefix…``, with ``labels``
    set on each (replacing any of the same name), snappy-compressed."""
    out = WriteRequest()
    for ts in request.timeseries:
        names = {label.name: label.value for label in ts.labels}
        if not names.get("__name__", "").startswith(prefix):
            continue
        names.update(labels)
        copy = out.timeseries.add()
        for name in sorted(names):  # remote write wants labels sorted by name
            copy.labels.add(name=name, value=names[name])
        copy.samples.extend(ts.samples)
        copy.histograms.extend(ts.histograms)
    return bytes(cramjam.snappy.compress_raw(out.SerializeToString()))


def k6_environment(url: str) -> dict[str, str]:
    """What k6's output needs to push native histograms to ``url`` every second."""
    return {
        "K6_PROMETHEUS_RW_SERVER_URL": url,
        "K6_PROMETHEUS_RW_PUSH_INTERVAL": PUSH_INTERVAL,
        "K6_PROMETHEUS_RW_TREND_AS_NATIVE_HISTOGRAM": "true",
    }


OUTPUT_ARGS = ["--out", "experimental-prometheus-rw"]


@dataclass
class Receiver:
    host: str
    port: int
    path: str
    pushes: int = 0
    rejected: int = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"


OnPush = Callable[[list[Series], Any, float], None]


@contextlib.asynccontextmanager
async def receiver(on_push: OnPush) -> AsyncIterator[Receiver]:
    """Serve remote-write pushes on 127.0.0.1 (a free port) at a secret path; each valid push
    is decoded and handed to ``on_push(series, request, received_at)`` on the event loop."""
    state = Receiver("127.0.0.1", 0, f"/write/{secrets.token_urlsafe(18)}")
    connections: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        try:
            await _connection(reader, writer, state, on_push)
        except (ConnectionError, asyncio.IncompleteReadError, h11.ProtocolError):
            pass
        finally:
            connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    server = await asyncio.start_server(serve, state.host, 0, limit=64 * 1024)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        for task in list(connections):
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        await server.wait_closed()


async def _connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    state: Receiver,
    on_push: OnPush,
) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
    while True:
        request: h11.Request | None = None
        body = bytearray()
        too_big = False
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(256 * 1024)
                conn.receive_data(data)
                if not data and conn.their_state is not h11.DONE:
                    return
                continue
            if event is h11.PAUSED:
                break
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                if len(body) + len(event.data) > MAX_BODY:
                    too_big = True
                    body.clear()
                elif not too_big:
                    body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                return
        if request is None:
            return
        status, reason = 204, b""
        if request.method != b"POST":
            status, reason = 405, b"POST only"
        elif request.target.decode("latin-1") != state.path:
            status, reason = 404, b"unknown push path"
        elif too_big:
            status, reason = 413, b"push too large"
        else:
            try:
                series, message = decode(bytes(body))
            except PushRejected as exc:
                status, reason = 400, str(exc).encode()[:200]
            else:
                state.pushes += 1
                try:
                    on_push(series, message, time.time())
                except Exception:
                    log.exception("a remote-write push could not be taken in")
                    status, reason = 500, b"push not taken"
        if status >= 400:
            state.rejected += 1
        headers = [(b"content-length", str(len(reason)).encode())]
        if status == 405:
            headers.append((b"allow", b"POST"))
        writer.write(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
        if reason:
            writer.write(conn.send(h11.Data(data=reason)) or b"")
        writer.write(conn.send(h11.EndOfMessage()) or b"")
        await writer.drain()
        if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
            return
        try:
            conn.start_next_cycle()
        except h11.LocalProtocolError:
            return
