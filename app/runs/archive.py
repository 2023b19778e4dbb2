"""A finished run's seconds and histogram windows packed into one row (``run_archives``).

While a run runs, each second is a ``run_samples`` row (JSONB, what the live stream relays)
and each endpoint's window a ``run_histograms`` row. A 30-minute, 20-endpoint run is then
1,800 + 3,780 rows and 3.7 MB, most of it JSONB keys and row headers. Shortly after a run
finishes the worker packs them (``bench/storage.py --long``: to ~0.8 MB):

- **seconds as columns**: every leaf of the samples' JSON (``endpoints.<name>.latency_ms.
  p95``, ``system.cpu_percent``, …) becomes one column over the seconds, with a presence
  bitmap where some seconds lack it: integers as differences from the previous second,
  latency figures as a 16-bit index on a 0.2 % logarithmic grid (within 0.1 % of the value,
  finer than the 0.5 % the histograms keep), other numbers as doubles, anything else as JSON;
- **windows as arrays**: their figures as columns and every window's non-empty buckets one
  after another, all deflated together (one row's header no longer costs more than its
  buckets).

Readers ask the repository, which reads rows and archive alike (a sample stored after the run
was packed — a spool replayed late — stays a row): the analysis reads only the columns it
needs, the live stream's replay unpacks whole samples with their ids, so ``Last-Event-ID``
still resumes.
"""

from __future__ import annotations

import functools
import json
import math
import struct
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import numpy as np

from app.models import RunHistogram
from app.runs.histogram import BUCKETS, Histogram, add_counts, encode_counts

FORMAT = 1
MIN_MS = 1e-3
LATENCY_STEP = math.log1p(0.002)
NULL = 0xFFFF
_MAX_UNPACKED = 256 * 1024 * 1024  # a 24-hour, 50-endpoint run unpacks to ~100 MB

Path = tuple[str, ...]
P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class SampleRow:
    id: int
    at: datetime
    vus: int
    requests: int
    failures: int
    data: dict[str, Any]


@dataclass(frozen=True)
class WindowRow:
    """A stored window as ``run_histograms`` holds it (``counts`` encoded)."""

    attempt: int
    endpoint: str
    at: datetime
    start_s: int
    seconds: int
    requests: int
    failures: int
    count: int
    sum_ms: float
    min_ms: float | None
    max_ms: float | None
    counts: bytes


# -- packing ------------------------------------------------------------------------------


def _leaves(value: Any, path: Path = ()) -> Iterable[tuple[Path, Any]]:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            yield from _leaves(inner, (*path, str(key)))
    else:
        yield path, value


def _kind(path: Path, values: Sequence[Any]) -> str:
    known = [v for v in values if v is not None]
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in known)
    if not known or not numbers:
        return "j"
    if "latency_ms" in path:
        return "q"
    if all(isinstance(v, int) for v in known) and len(known) == len(values):
        return "i"
    return "f"


def _blob(header: dict[str, Any], parts: list[bytes]) -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<BI", FORMAT, len(head)) + zlib.compress(head + b"".join(parts), 6)


def _open(blob: bytes) -> tuple[dict[str, Any], memoryview]:
    if len(blob) < 5 or blob[0] != FORMAT:
        raise ValueError("not an archive of this format")
    (length,) = struct.unpack_from("<I", blob, 1)
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(blob[5:], _MAX_UNPACKED)
        if inflate.unconsumed_tail or not inflate.eof:
            raise ValueError("damaged archive")
        header: dict[str, Any] = json.loads(raw[:length])
    except (zlib.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"damaged archive: {exc}") from None
    return header, memoryview(raw)[length:]


def pack_samples(samples: Sequence[SampleRow]) -> bytes:
    rows: list[dict[Path, Any]] = [dict(_leaves(s.data)) for s in samples]
    paths: list[Path] = list(dict.fromkeys(p for row in rows for p in row))
    columns: list[dict[str, Any]] = []
    parts: list[bytes] = []
    offset = 0

    def add(part: bytes) -> tuple[int, int]:
        nonlocal offset
        parts.append(part)
        offset += len(part)
        return offset - len(part), len(part)

    ids = np.array([s.id for s in samples], dtype=np.int64)
    at = np.array([s.at.timestamp() for s in samples], dtype="<f8")
    header: dict[str, Any] = {"n": len(samples), "ids": add(np.diff(ids, prepend=0).tobytes())}
    header["at"] = add(at.tobytes())
    for path in paths:
        present = [path in row for row in rows]
        values = [row.get(path) for row in rows]
        kind = _kind(path, [v for v, p in zip(values, present, strict=True) if p])
        column: dict[str, Any] = {"path": list(path), "kind": kind}
        if not all(present):
            column["mask"] = add(np.packbits(np.array(present, dtype=bool)).tobytes())
        if kind == "i":
            array = np.array([v if p else 0 for v, p in zip(values, present, strict=True)])
            column["data"] = add(np.diff(array.astype(np.int64), prepend=0).tobytes())
        elif kind == "q":
            array = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                index = np.round(np.log(np.maximum(array, MIN_MS) / MIN_MS) / LATENCY_STEP)
            quantised = np.where(np.isnan(array), NULL, np.clip(index, 0, NULL - 1))
            column["data"] = add(quantised.astype("<u2").tobytes())
        elif kind == "f":
            array = np.array([np.nan if v is None else float(v) for v in values], dtype="<f8")
            column["data"] = add(array.tobytes())
        else:
            column["data"] = add(json.dumps(values, separators=(",", ":")).encode())
        columns.append(column)
    header["columns"] = columns
    return _blob(header, parts)


def pack_windows(windows: Sequence[RunHistogram | WindowRow]) -> bytes:
    endpoints = list(dict.fromkeys(w.endpoint for w in windows))
    index = {name: i for i, name in enumerate(endpoints)}
    steps: list[bytes] = []
    counts: list[np.ndarray] = []
    filled: list[int] = []
    for w in windows:
        dense = np.zeros(BUCKETS, dtype=np.int64)
        add_counts(dense, w.counts, expected=w.count)
        where = np.flatnonzero(dense)
        steps.append(np.diff(where, prepend=0).astype("<u2").tobytes())
        counts.append(dense[where])
        filled.append(len(where))
    every = np.concatenate(counts) if counts else np.zeros(0, dtype=np.int64)
    wide = int(every.max(initial=0)) >= 1 << 32
    figures = {
        "attempt": np.array([w.attempt for w in windows], dtype="<i4"),
        "endpoint": np.array([index[w.endpoint] for w in windows], dtype="<i4"),
        "start_s": np.array([w.start_s for w in windows], dtype="<i4"),
        "seconds": np.array([w.seconds for w in windows], dtype="<i4"),
        "requests": np.array([w.requests for w in windows], dtype="<i8"),
        "failures": np.array([w.failures for w in windows], dtype="<i8"),
        "count": np.array([w.count for w in windows], dtype="<i8"),
        "sum_ms": np.array([w.sum_ms for w in windows], dtype="<f8"),
        "min_ms": np.array([np.nan if w.min_ms is None else w.min_ms for w in windows], "<f8"),
        "max_ms": np.array([np.nan if w.max_ms is None else w.max_ms for w in windows], "<f8"),
        "at": np.array([w.at.timestamp() for w in windows], dtype="<f8"),
        "filled": np.array(filled, dtype="<i4"),
    }
    parts = [array.tobytes() for array in figures.values()]
    parts += [b"".join(steps), every.astype("<u8" if wide else "<u4").tobytes()]
    header = {"n": len(windows), "endpoints": endpoints, "wide": wide}
    return _blob(header, parts)


# -- unpacking ----------------------------------------------------------------------------


def _array(body: memoryview, place: Sequence[int], dtype: str) -> np.ndarray:
    start, length = place
    return np.frombuffer(body, dtype=dtype, count=length // np.dtype(dtype).itemsize, offset=start)


def _column_values(body: memoryview, column: Mapping[str, Any], n: int) -> tuple[list[Any], Any]:
    """(values, presence mask or None)."""
    kind = column["kind"]
    mask = None
    if "mask" in column:
        mask = np.unpackbits(_array(body, column["mask"], "u1"))[:n].astype(bool)
    if kind == "i":
        values: Any = np.cumsum(_array(body, column["data"], "<i8"))
    elif kind == "q":
        values = latency_values(_array(body, column["data"], "<u2"))
    elif kind == "f":
        values = _array(body, column["data"], "<f8")
    else:
        start, length = column["data"]
        values = json.loads(bytes(body[start : start + length]))
    return values, mask


def latency_values(quantised: np.ndarray) -> np.ndarray:
    values = MIN_MS * np.exp(quantised.astype(np.float64) * LATENCY_STEP)
    return np.where(quantised == NULL, np.nan, np.round(values, 3))


def _plain(value: Any, kind: str) -> Any:
    if kind == "i":
        return int(value)
    if kind in ("q", "f"):
        return None if math.isnan(value) else float(value)
    return value


def _damage_as_value_error(read: Callable[P, T]) -> Callable[P, T]:
    """A damaged archive is a ValueError whatever part of it is damaged."""

    @functools.wraps(read)
    def reading(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return read(*args, **kwargs)
        except (KeyError, IndexError, TypeError, struct.error) as exc:
            raise ValueError(f"damaged archive: {exc!r}") from None

    return reading


@_damage_as_value_error
def unpack_samples(blob: bytes) -> list[SampleRow]:
    header, body = _open(blob)
    n = header["n"]
    ids = np.cumsum(_array(body, header["ids"], "<i8"))
    at = _array(body, header["at"], "<f8")
    data: list[dict[str, Any]] = [{} for _ in range(n)]
    for column in header["columns"]:
        values, mask = _column_values(body, column, n)
        path, kind = column["path"], column["kind"]
        for i in range(n):
            if mask is not None and not mask[i]:
                continue
            into = data[i]
            for key in path[:-1]:
                into = into.setdefault(key, {})
            if path:
                into[path[-1]] = _plain(values[i], kind)
    return [
        SampleRow(
            id=int(ids[i]),
            at=datetime.fromtimestamp(float(at[i]), UTC),
            vus=int(d.get("vus") or 0),
            requests=int(d.get("requests") or 0),
            failures=int(d.get("failures") or 0),
            data=d,
        )
        for i, d in enumerate(data)
    ]


@_damage_as_value_error
def sample_columns(blob: bytes, wanted: Iterable[Path]) -> tuple[int, dict[Path, np.ndarray]]:
    """(number of seconds, the wanted numeric columns as float arrays, NaN where a second
    lacks the value) without unpacking whole samples."""
    return _columns(*_open(blob), wanted)


def _columns(
    header: Mapping[str, Any], body: memoryview, wanted: Iterable[Path]
) -> tuple[int, dict[Path, np.ndarray]]:
    n = header["n"]
    want = set(wanted)
    found: dict[Path, np.ndarray] = {}
    for column in header["columns"]:
        path = tuple(column["path"])
        if path not in want or column["kind"] == "j":
            continue
        values, mask = _column_values(body, column, n)
        array = np.asarray(values, dtype=np.float64).copy()
        if mask is not None:
            array[~mask] = np.nan
        found[path] = array
    return n, found


@_damage_as_value_error
def sample_paths(blob: bytes) -> list[Path]:
    return _paths(_open(blob)[0])


def _paths(header: Mapping[str, Any]) -> list[Path]:
    return [tuple(c["path"]) for c in header["columns"]]


@_damage_as_value_error
def unpack_windows(blob: bytes, endpoint: str | None = None) -> list[WindowRow]:
    """The windows (of one endpoint, or all), in the order they were packed."""
    return [w for w, _ in _windows(blob, endpoint, encode=True)]


@_damage_as_value_error
def merged_windows(blob: bytes) -> dict[tuple[int, str], Histogram]:
    """(attempt, endpoint) → its windows merged."""
    merged: dict[tuple[int, str], Histogram] = {}
    for w, counts in _windows(blob, None, encode=False):
        into = merged.setdefault((w.attempt, w.endpoint), Histogram())
        into.add(
            Histogram(
                counts,
                w.count,
                w.sum_ms,
                w.min_ms if w.min_ms is not None else math.inf,
                w.max_ms if w.max_ms is not None else 0.0,
            )
        )
    return merged


def _windows(
    blob: bytes, endpoint: str | None, *, encode: bool
) -> Iterable[tuple[WindowRow, np.ndarray]]:
    header, body = _open(blob)
    n, endpoints = header["n"], header["endpoints"]
    layout = [
        ("attempt", "<i4"), ("endpoint", "<i4"), ("start_s", "<i4"), ("seconds", "<i4"),
        ("requests", "<i8"), ("failures", "<i8"), ("count", "<i8"), ("sum_ms", "<f8"),
        ("min_ms", "<f8"), ("max_ms", "<f8"), ("at", "<f8"), ("filled", "<i4"),
    ]  # fmt: skip
    columns: dict[str, np.ndarray] = {}
    offset = 0
    for name, dtype in layout:
        columns[name] = np.frombuffer(body, dtype=dtype, count=n, offset=offset)
        offset += n * np.dtype(dtype).itemsize
    filled = columns["filled"].astype(np.int64)
    total = int(filled.sum())
    steps = np.frombuffer(body, dtype="<u2", count=total, offset=offset).astype(np.int64)
    offset += total * 2
    width = "<u8" if header["wide"] else "<u4"
    values = np.frombuffer(body, dtype=width, count=total, offset=offset).astype(np.int64)
    starts = np.cumsum(filled) - filled
    for i in range(n):
        name = endpoints[int(columns["endpoint"][i])]
        if endpoint is not None and name != endpoint:
            continue
        first, k = int(starts[i]), int(filled[i])
        dense = np.zeros(BUCKETS, dtype=np.int64)
        dense[np.cumsum(steps[first : first + k])] = values[first : first + k]
        low, high = float(columns["min_ms"][i]), float(columns["max_ms"][i])
        row = WindowRow(
            attempt=int(columns["attempt"][i]),
            endpoint=name,
            at=datetime.fromtimestamp(float(columns["at"][i]), UTC),
            start_s=int(columns["start_s"][i]),
            seconds=int(columns["seconds"][i]),
            requests=int(columns["requests"][i]),
            failures=int(columns["failures"][i]),
            count=int(columns["count"][i]),
            sum_ms=float(columns["sum_ms"][i]),
            min_ms=None if math.isnan(low) else low,
            max_ms=None if math.isnan(high) else high,
            counts=encode_counts(dense) if encode else b"",
        )
        yield row, dense


# -- the analysis's reads (what analysis/repository.py's SQL takes from rows) --------------


def _live_seconds(n: int, columns: Mapping[Path, np.ndarray]) -> np.ndarray:
    """The per-second samples of the latest attempt: live ones (with running totals), not
    the per-minute ones retention made."""
    keep = ~np.isnan(columns.get(("total_requests",), np.full(n, np.nan)))
    keep &= np.isnan(columns.get(("span_s",), np.full(n, np.nan)))
    attempts = np.nan_to_num(columns.get(("attempt",), np.ones(n)), nan=1.0)
    if keep.any():
        keep &= attempts == attempts[keep].max()
    return keep


@_damage_as_value_error
def endpoint_seconds(
    blob: bytes,
) -> dict[str, tuple[list[int], list[int], list[float], list[float], list[float]]]:
    """Per endpoint ('*': all), each second's requests, failures, p50, p95, p99 (NaN where
    none), of the latest attempt, for the seconds in which the endpoint was present."""
    return {name: columns[1:] for name, columns in _endpoint_columns(blob).items()}


@_damage_as_value_error
def endpoint_timelines(
    blob: bytes,
) -> dict[str, tuple[list[int], list[int], list[int], list[float], list[float], list[float]]]:
    """``endpoint_seconds`` with each second's whole elapsed seconds first: (elapsed,
    requests, failures, p50, p95, p99), to draw an endpoint on the run's time axis."""
    return _endpoint_columns(blob)


def _endpoint_columns(
    blob: bytes,
) -> dict[str, tuple[list[int], list[int], list[int], list[float], list[float], list[float]]]:
    header, body = _open(blob)
    paths = _paths(header)
    names = sorted({p[1] for p in paths if len(p) > 2 and p[0] == "endpoints"})
    figures = (
        "requests",
        "failures",
        ("latency_ms", "p50"),
        ("latency_ms", "p95"),
        ("latency_ms", "p99"),
    )

    def path_of(prefix: Path, figure: str | tuple[str, ...]) -> Path:
        return (*prefix, *((figure,) if isinstance(figure, str) else figure))

    prefixes: dict[str, Path] = {"*": (), **{name: ("endpoints", name) for name in names}}
    wanted: list[Path] = [("total_requests",), ("span_s",), ("attempt",), ("elapsed_s",)]
    wanted += [path_of(prefix, f) for prefix in prefixes.values() for f in figures]
    n, columns = _columns(header, body, wanted)
    live = _live_seconds(n, columns)
    elapsed = np.floor(np.nan_to_num(columns.get(("elapsed_s",), np.zeros(n)))).astype(int)
    found = {}
    for name, prefix in prefixes.items():
        requests = columns.get(path_of(prefix, "requests"))
        if requests is None:
            continue
        here = live & ~np.isnan(requests)
        nan = np.full(n, np.nan)
        values = [columns.get(path_of(prefix, f), nan)[here] for f in figures]
        found[name] = (
            elapsed[here].tolist(),
            np.nan_to_num(values[0]).astype(int).tolist(),
            np.nan_to_num(values[1]).astype(int).tolist(),
            values[2].tolist(),
            values[3].tolist(),
            values[4].tolist(),
        )
    return found


@_damage_as_value_error
def overall_seconds(blob: bytes) -> list[tuple[Any, ...]]:
    """The latest attempt's seconds as analysis/repository.py's ``Second`` fields: elapsed,
    VUs, requests, failures, p50, p95, p99, system readings, epoch, generator readings."""
    header, body = _open(blob)
    paths = _paths(header)
    readings = {
        group: [p for p in paths if len(p) == 2 and p[0] == group]
        for group in ("system", "generator")
    }
    scalar = [("elapsed_s",), ("vus",), ("requests",), ("failures",)]
    latency = [("latency_ms", s) for s in ("p50", "p95", "p99")]
    wanted: list[Path] = [("total_requests",), ("span_s",), ("attempt",), *scalar, *latency]
    wanted += readings["system"] + readings["generator"]
    n, columns = _columns(header, body, wanted)
    at = _array(body, header["at"], "<f8")
    live = _live_seconds(n, columns)
    nan = np.full(n, np.nan)

    def value(path: Path, i: int) -> float | None:
        v = float(columns.get(path, nan)[i])
        return None if math.isnan(v) else v

    kinds = {tuple(c["path"]): c["kind"] for c in header["columns"]}

    def group(name: str, i: int) -> dict[str, Any] | None:
        known: dict[str, Any] = {}
        for path in readings[name]:
            v = value(path, i)
            if v is not None:
                known[path[1]] = int(v) if kinds.get(path) == "i" else v
        return known or None

    seconds = []
    for i in np.flatnonzero(live).tolist():
        seconds.append(
            (
                int(value(("elapsed_s",), i) or 0),
                int(value(("vus",), i) or 0),
                int(value(("requests",), i) or 0),
                int(value(("failures",), i) or 0),
                *(value(p, i) for p in latency),
                group("system", i),
                float(at[i]),
                group("generator", i),
            )
        )
    return seconds
