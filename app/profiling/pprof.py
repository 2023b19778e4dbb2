"""A Go ``net/http/pprof`` CPU profile, fetched and ranked into functions and stacks.

``GET <url>?seconds=N`` on a target that imports ``net/http/pprof`` (the path is usually
``/debug/pprof/profile``) answers after N seconds with a gzipped ``profile.proto``
(github.com/google/pprof/proto/profile.proto). The message types are built from a descriptor
at import, as :mod:`app.k6.remote_write` does for Prometheus' WriteRequest, and decoded with
protobuf's upb parser: no generated code, no new dependency.

The caller passes the httpx client (and so applies its outbound address policy); the adapter
only fetches the URL it is given. A Go CPU profile samples running goroutines only, so there
are no idle samples to drop.
"""

from __future__ import annotations

import zlib
from typing import Any, Final

import httpx
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from app.profiling.schemas import Profile, failed, unavailable
from app.profiling.stacks import TOP_FUNCTIONS, TOP_STACKS, Frame, Stack, rank

SOURCE: Final = "pprof"
MAX_BODY = 64 * 1024 * 1024  # compressed
MAX_RAW = 256 * 1024 * 1024
MAX_SECONDS = 600
RESPONSE_GRACE_S = 15.0
REASON_CHARS = 300


def _profile_message() -> Any:
    """pprof's Profile message and the messages in it, from a descriptor."""
    fdp = descriptor_pb2.FileDescriptorProto(
        name="perf_agent_pprof.proto", package="perfagent.pprof", syntax="proto3"
    )
    f = descriptor_pb2.FieldDescriptorProto
    rep, opt = f.LABEL_REPEATED, f.LABEL_OPTIONAL
    u64, i64, string, boolean, msg = (
        f.TYPE_UINT64, f.TYPE_INT64, f.TYPE_STRING, f.TYPE_BOOL, f.TYPE_MESSAGE,
    )  # fmt: skip

    def message(name: str, *fields: tuple[str, int, int, int, str]) -> None:
        added_message = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            added = added_message.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                added.type_name = f".perfagent.pprof.{type_name}"

    message("ValueType", ("type", 1, i64, opt, ""), ("unit", 2, i64, opt, ""))
    message(
        "Label",
        ("key", 1, i64, opt, ""), ("str", 2, i64, opt, ""),
        ("num", 3, i64, opt, ""), ("num_unit", 4, i64, opt, ""),
    )  # fmt: skip
    message(
        "Sample",
        ("location_id", 1, u64, rep, ""), ("value", 2, i64, rep, ""),
        ("label", 3, msg, rep, "Label"),
    )  # fmt: skip
    message(
        "Mapping",
        ("id", 1, u64, opt, ""), ("memory_start", 2, u64, opt, ""),
        ("memory_limit", 3, u64, opt, ""), ("file_offset", 4, u64, opt, ""),
        ("filename", 5, i64, opt, ""), ("build_id", 6, i64, opt, ""),
        ("has_functions", 7, boolean, opt, ""), ("has_filenames", 8, boolean, opt, ""),
        ("has_line_numbers", 9, boolean, opt, ""), ("has_inline_frames", 10, boolean, opt, ""),
    )  # fmt: skip
    message(
        "Line",
        ("function_id", 1, u64, opt, ""), ("line", 2, i64, opt, ""),
        ("column", 3, i64, opt, ""),
    )  # fmt: skip
    message(
        "Location",
        ("id", 1, u64, opt, ""), ("mapping_id", 2, u64, opt, ""),
        ("address", 3, u64, opt, ""), ("line", 4, msg, rep, "Line"),
        ("is_folded", 5, boolean, opt, ""),
    )  # fmt: skip
    message(
        "Function",
        ("id", 1, u64, opt, ""), ("name", 2, i64, opt, ""),
        ("system_name", 3, i64, opt, ""), ("filename", 4, i64, opt, ""),
        ("start_line", 5, i64, opt, ""),
    )  # fmt: skip
    message(
        "Profile",
        ("sample_type", 1, msg, rep, "ValueType"), ("sample", 2, msg, rep, "Sample"),
        ("mapping", 3, msg, rep, "Mapping"), ("location", 4, msg, rep, "Location"),
        ("function", 5, msg, rep, "Function"), ("string_table", 6, string, rep, ""),
        ("drop_frames", 7, i64, opt, ""), ("keep_frames", 8, i64, opt, ""),
        ("time_nanos", 9, i64, opt, ""), ("duration_nanos", 10, i64, opt, ""),
        ("period_type", 11, msg, opt, "ValueType"), ("period", 12, i64, opt, ""),
        ("comment", 13, i64, rep, ""), ("default_sample_type", 14, i64, opt, ""),
    )  # fmt: skip
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("perfagent.pprof.Profile"))


ProfileMessage = _profile_message()


class BadProfile(ValueError):
    """A body that is not a profile.proto this adapter can read."""


def _raw(body: bytes) -> bytes:
    if body[:2] != b"\x1f\x8b":
        return body
    try:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        raw = inflater.decompress(body, MAX_RAW)
    except zlib.error as exc:
        raise BadProfile(f"not a gzipped profile: {exc}") from exc
    if inflater.unconsumed_tail:
        raise BadProfile(f"the profile is over {MAX_RAW} bytes uncompressed")
    return raw


def decode(body: bytes) -> tuple[list[tuple[Stack, int]], float, str]:
    """``(stacks root first with their sample counts, seconds, sample type)`` of a
    profile.proto, gzipped or not. Raises :class:`BadProfile`."""
    message = ProfileMessage()
    try:
        message.ParseFromString(_raw(body))
    except DecodeError as exc:
        raise BadProfile(f"not a profile.proto: {exc}") from exc
    strings = list(message.string_table)

    def string(index: int) -> str:
        return strings[index] if 0 <= index < len(strings) else ""

    types = [string(t.type) for t in message.sample_type]
    if not types:
        raise BadProfile("the profile declares no sample type")
    # Samples weigh by their count ("samples" in a CPU profile), else by the default type.
    if "samples" in types:
        index = types.index("samples")
    elif message.default_sample_type and string(message.default_sample_type) in types:
        index = types.index(string(message.default_sample_type))
    else:
        index = len(types) - 1
    functions = {
        fn.id: (string(fn.name) or string(fn.system_name) or f"function {fn.id}",
                string(fn.filename))
        for fn in message.function
    }  # fmt: skip
    mappings = {m.id: string(m.filename) for m in message.mapping}
    locations: dict[int, list[Frame]] = {}
    for location in message.location:
        frames = []
        # Lines: inlined callees first, the function they were inlined into last.
        for line in reversed(location.line):
            name, filename = functions.get(line.function_id, (f"function {line.function_id}", ""))
            frames.append(Frame(name, filename, int(line.line)))
        if not frames:  # not symbolized: the address and its binary
            frames.append(Frame(f"0x{location.address:x}", mappings.get(location.mapping_id, "")))
        locations[location.id] = frames
    stacks: list[tuple[Stack, int]] = []
    for sample in message.sample:
        if index >= len(sample.value):
            continue
        frames = []
        for location_id in reversed(sample.location_id):  # location_id[0] is the leaf
            frames.extend(locations.get(location_id, [Frame(f"location {location_id}", "")]))
        stacks.append((frames, int(sample.value[index])))
    seconds = message.duration_nanos / 1e9
    kind = string(message.period_type.type) if message.HasField("period_type") else types[index]
    return stacks, seconds, kind


def from_bytes(
    body: bytes, *, top_functions: int = TOP_FUNCTIONS, top_stacks: int = TOP_STACKS
) -> Profile:
    """A profile.proto's functions and stacks as a :class:`Profile`."""
    try:
        stacks, seconds, _ = decode(body)
    except BadProfile as exc:
        return failed(SOURCE, str(exc)[:REASON_CHARS])
    ranked = rank(stacks, top_functions=top_functions, top_stacks=top_stacks)
    if not ranked.samples:
        return unavailable(
            SOURCE, "the profile has no samples (the target used no CPU in the window)",
            seconds=seconds,
        )  # fmt: skip
    return Profile(
        source=SOURCE, status="ok", samples=ranked.samples, seconds=seconds,
        functions=ranked.functions, stacks=ranked.stacks,
    )  # fmt: skip


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    seconds: int,
    *,
    top_functions: int = TOP_FUNCTIONS,
    top_stacks: int = TOP_STACKS,
) -> Profile:
    """Fetch ``url`` (a ``net/http/pprof`` profile endpoint, e.g.
    ``http://host:6060/debug/pprof/profile``) with ``?seconds=`` and rank it. The request
    may take ``seconds`` plus 15 s. Never raises for what the target does."""
    seconds = max(1, min(MAX_SECONDS, int(seconds)))
    try:
        target = httpx.URL(url).copy_merge_params({"seconds": str(seconds)})
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        return failed(SOURCE, f"bad profile URL: {exc}"[:REASON_CHARS])
    shown = str(target.copy_with(query=None, fragment=None))
    try:
        async with client.stream(
            "GET", target, timeout=httpx.Timeout(seconds + RESPONSE_GRACE_S)
        ) as response:
            if response.status_code == 404:
                return unavailable(
                    SOURCE, f"no pprof profile at {shown} (404): the target must import "
                    "net/http/pprof and serve it on that path",
                )  # fmt: skip
            if response.status_code != 200:
                head = (await response.aread())[:REASON_CHARS].decode(errors="replace")
                first = head.strip().splitlines()[0] if head.strip() else ""
                return failed(
                    SOURCE, f"{shown} answered {response.status_code}: {first}"[:REASON_CHARS]
                )
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY:
                    return failed(SOURCE, f"the profile is over {MAX_BODY} bytes")
    except httpx.ConnectError as exc:
        return unavailable(SOURCE, f"cannot connect to {shown}: {exc}"[:REASON_CHARS])
    except httpx.TimeoutException:
        return failed(SOURCE, f"{shown} did not answer within {seconds + RESPONSE_GRACE_S:.0f} s")
    except httpx.HTTPError as exc:
        return failed(SOURCE, f"fetching {shown} failed: {exc!r}"[:REASON_CHARS])
    return from_bytes(bytes(body), top_functions=top_functions, top_stacks=top_stacks)
