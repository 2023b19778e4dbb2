"""The service's cost to k6 and its fidelity, for both live paths, against bare `k6 run`.

The same generated plan script (GET /a, GET /b) against the same nginx on 127.0.0.1 runs
bare and through perf-agent with ``live_path`` remote-write and json, chained
``bare, A, bare, B, bare, …`` with the order rotating each round; each service run's ratio is
against the mean of the two bare runs beside it. For every run the load the rest of the
machine put on the CPUs is measured (``/proc/stat`` busy time minus k6, nginx and this
process, which holds the service); a pair that saw more than ``--clean-cores`` of it is
repeated up to ``--retries`` times.

- Closed loop (constant VUs): k6's throughput through the service / bare.
- Open loop at fractions of the bare saturation (constant arrival rate, generous
  pre-allocated VUs): achieved rate and p95 against bare.
- Fidelity: each service run's stored whole-run p95/p99 against that run's own k6 summary;
  and, per second, a bare k6 with both ``--out json=FILE`` and the remote-write output into
  the service's own receiver and ``RemoteWriteLive``: its per-push percentiles against exact
  ones from the file's samples over the same interval (and the json path's ``LiveMetrics``
  fed the same file, per wall second).

    .venv/bin/python bench/fidelity.py [--paths remote-write,json] [--pairs 5] [--seconds 10]
        [--vus 20] [--open-pairs 3] [--open-fractions 0.3,0.5] [--nice -5] [--results F.json]
    .venv/bin/python bench/fidelity.py --smoke      # 1 pair of 3 s runs: the script works

Needs nginx (apt-get install -y nginx-light; --smoke falls back to a Python server whose
figures mean nothing) and PostgreSQL: PERF_AGENT_DATABASE_URL / DATABASE_URL, else the
embedded one under the data directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import psutil
import uvicorn
from machine import machine_busy, tree_cpu, wait_quiet
from targets import Target, free_port, local_target

from app.cli import wait_http
from app.client import PerfAgentClient
from app.core.settings import Settings, get_settings
from app.k6 import remote_write
from app.k6.process import SUMMARY_FILE, TREND_STATS, go_runtime_env, k6_env
from app.plans.k6script import duration_metric
from app.runs.histogram import Histogram
from app.runs.live import LiveMetrics, RemoteWriteLive, _epoch, _Point, _Tags

ENDPOINTS = ["a", "b"]
ALL = "*"
KEYS = [ALL, *ENDPOINTS]
PATHS = ("remote-write", "json")
# Opt-in stand-ins that split a path's cost: k6's own part of it, without the service.
K6_ONLY = {
    "k6-rw": "bare k6 with the remote-write output into a receiver that only discards",
    "k6-json": "bare k6 with --out json=- into /dev/null (no reader)",
    "bare-gc": "bare k6 with the service's Go GC settings (what the GC settings alone give)",
}
MIN_SAMPLES = 50  # seconds with fewer samples than this are left out of the max errors
NATIVE_SCHEMA = 3  # k6 1.1.0's native histograms: buckets 2^(1/8) wide


# -- the plan ---------------------------------------------------------------------------------


def plan_document(name: str, target: str, load: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "target": {"base_url": target, "environment": "local"},
        "endpoints": [{"name": n, "path": f"/{n}"} for n in ENDPOINTS],
        "load": load,
        "slos": ["p95 < 1000ms"],
    }


def closed_load(args: argparse.Namespace) -> dict[str, Any]:
    return {"vus": args.vus, "duration": f"{args.seconds}s"}


def open_load(args: argparse.Namespace, rate: int) -> dict[str, Any]:
    return {
        "profile": "constant-arrival",
        "rate": rate,
        "duration": f"{args.seconds}s",
        "pre_allocated_vus": args.vus * 5,
        "max_vus": args.vus * 20,
    }


# -- CPU accounting ---------------------------------------------------------------------------


def rusage_s(who: int) -> float:
    ru = resource.getrusage(who)
    return ru.ru_utime + ru.ru_stime


@dataclass
class Usage:
    """CPU over one run. k6 is this process's child in both cases (bare: ``subprocess``;
    service: the worker's launcher), so once reaped its CPU is in ``RUSAGE_CHILDREN``; the
    service (API + worker) is this process (``RUSAGE_SELF``); nginx is measured by psutil."""

    wall_s: float = 0.0
    busy_s: float = 0.0
    k6_cpu_s: float = 0.0
    self_cpu_s: float = 0.0
    nginx_cpu_s: float = 0.0
    k6_life_s: float = 0.0  # from the first to the last time the watcher saw k6
    self_cpu_k6_s: float = 0.0  # this process's CPU over that span
    k6_argv: list[str] = field(default_factory=list)
    k6_autogroup: str = ""  # /proc/<k6>/autogroup once the watcher found it (and set it)

    @property
    def other_cores(self) -> float:
        ours = self.k6_cpu_s + self.self_cpu_s + self.nginx_cpu_s
        return (self.busy_s - ours) / max(self.wall_s, 1e-9)

    @property
    def service_cores(self) -> float | None:
        """This process's CPU while k6 ran, in cores (the service's live path, sampler,
        stores, API; for a bare run, the idle service and the watcher)."""
        return self.self_cpu_k6_s / self.k6_life_s if self.k6_life_s > 0.5 else None


def set_autogroup(pid: int, nice: int) -> str:
    path = Path(f"/proc/{pid}/autogroup")
    with contextlib.suppress(OSError):
        if nice:
            path.write_text(str(nice))
        return path.read_text().strip()
    return ""


@contextlib.contextmanager
def metered(nginx_pid: int | None, k6_nice: int = 0) -> Iterator[Usage]:
    """CPU over a run. k6 starts in a session of its own both bare and through the worker
    (``start_new_session``), so under autogroup scheduling it is a scheduling group of its own
    at nice 0; with ``k6_nice`` that group gets the bench's nice, for bare and service alike."""
    usage = Usage()
    me = psutil.Process()
    stop = threading.Event()
    seen: dict[str, float] = {}

    def watch() -> None:
        # Look for k6 until it appears (a scan of /proc: ~2 ms), then only read our own CPU.
        k6: psutil.Process | None = None
        while not stop.wait(0.2):
            try:
                if k6 is None:
                    found = [
                        p
                        for p in me.children(recursive=True)
                        if p.name() == "k6" and "run" in p.cmdline()[1:3]
                    ]
                    if not found:
                        continue
                    k6 = found[0]
                    usage.k6_argv = k6.cmdline()
                    usage.k6_autogroup = set_autogroup(k6.pid, k6_nice)
                elif not k6.is_running() or k6.status() == psutil.STATUS_ZOMBIE:
                    return
            except psutil.Error:
                if k6 is not None:
                    return
                continue
            now, cpu = time.monotonic(), sum(me.cpu_times()[:2])
            if "t0" not in seen:
                seen["t0"], seen["c0"] = now, cpu
            seen["t1"], seen["c1"] = now, cpu

    watcher = threading.Thread(target=watch, name="fidelity-watch", daemon=True)
    t0, busy0 = time.monotonic(), machine_busy()
    self0, child0 = rusage_s(resource.RUSAGE_SELF), rusage_s(resource.RUSAGE_CHILDREN)
    nginx0 = tree_cpu(nginx_pid)
    watcher.start()
    try:
        yield usage
    finally:
        stop.set()
        watcher.join()
        usage.wall_s = time.monotonic() - t0
        usage.busy_s = machine_busy() - busy0
        usage.self_cpu_s = rusage_s(resource.RUSAGE_SELF) - self0
        usage.k6_cpu_s = rusage_s(resource.RUSAGE_CHILDREN) - child0
        usage.nginx_cpu_s = tree_cpu(nginx_pid) - nginx0
        if "t0" in seen:
            usage.k6_life_s = seen["t1"] - seen["t0"]
            usage.self_cpu_k6_s = seen["c1"] - seen["c0"]


# -- one run ----------------------------------------------------------------------------------


@dataclass
class Run:
    kind: str  # "bare" or a live path
    rps: float
    requests: int
    test_s: float
    p95: dict[str, float | None]
    p99: dict[str, float | None]
    dropped: int
    usage: Usage
    run_id: str | None = None
    stored_diff_ms: float | None = None  # max |stored − own summary| over p95/p99 × *, a, b
    notes: list[str] = field(default_factory=list)

    @property
    def other(self) -> float:
        return self.usage.other_cores

    def brief(self) -> dict[str, Any]:
        data = asdict(self)
        data["other_cores"] = self.other
        data["service_cores"] = self.usage.service_cores
        data["k6_cpu_us_per_request"] = (
            self.usage.k6_cpu_s / self.requests * 1e6 if self.requests else None
        )
        return data


def from_summary(kind: str, summary: dict[str, Any], usage: Usage) -> Run:
    metrics = summary["metrics"]
    reqs = metrics["http_reqs"]["values"]
    p95: dict[str, float | None] = {}
    p99: dict[str, float | None] = {}
    for key in KEYS:
        values = metrics.get(duration_metric(None if key == ALL else key), {}).get("values", {})
        p95[key], p99[key] = values.get("p(95)"), values.get("p(99)")
    dropped = metrics.get("dropped_iterations", {}).get("values", {}).get("count", 0)
    return Run(
        kind=kind,
        rps=float(reqs["rate"]),
        requests=int(reqs["count"]),
        test_s=summary["state"]["testRunDurationMs"] / 1000,
        p95=p95,
        p99=p99,
        dropped=int(dropped),
        usage=usage,
    )


def k6_argv(binary: str, *extra: str) -> list[str]:
    """The service's argv (app/k6/process.py run_k6) without a live output."""
    return [
        binary,
        "run",
        "--no-color",
        "--quiet",
        "--address",
        "127.0.0.1:0",
        "--summary-trend-stats",
        ",".join(TREND_STATS),
        "--summary-export",
        "summary-export.json",
        *extra,
        "script.js",
    ]


class _Discard(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


@contextlib.contextmanager
def discarding_receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Discard)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="fidelity-discard", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/write"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def bare(
    binary: str, script: str, target: Target, args: argparse.Namespace, kind: str = "bare"
) -> Run:
    """``k6 run`` as the service starts it; ``kind`` k6-rw / k6-json adds that output."""
    wait_quiet(args.quiet_wait, args.clean_cores)
    with tempfile.TemporaryDirectory(prefix="fidelity-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        (work / "script.js").write_text(script)
        extra: list[str] = []
        env: dict[str, str] = {}
        if kind == "k6-rw":
            env = remote_write.k6_environment(stack.enter_context(discarding_receiver()))
            extra = remote_write.OUTPUT_ARGS
        elif kind == "k6-json":
            extra = ["--out", "json=-"]  # stdout is /dev/null
        elif kind == "bare-gc":
            settings = get_settings()
            env = go_runtime_env(settings.k6_gogc, settings.k6_memory_limit_fraction)
        with metered(target.pid, args.nice) as usage:
            subprocess.run(
                k6_argv(binary, *extra),
                cwd=work,
                env={**env, **k6_env({})},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
                timeout=600,
                start_new_session=True,  # as the worker starts it (app/k6/process.py)
            )
        summary = json.loads((work / SUMMARY_FILE).read_text())
    return from_summary(kind, summary, usage)


class Service:
    """perf-agent (API + worker) in this process, as ``app.cli.running_service`` runs it, with
    its live settings at hand so the live path can change between runs."""

    def __init__(self, settings: Settings, sandbox: str) -> None:
        self.port = free_port()
        self.settings = settings.model_copy(
            update={"auth": "off", "host": "127.0.0.1", "port": self.port, "sandbox": sandbox}
        )
        self.url = f"http://127.0.0.1:{self.port}"

    @contextlib.contextmanager
    def running(self) -> Iterator[Settings]:
        from app.main import create_app

        app = create_app(self.settings)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="perf-agent-service", daemon=True)
        thread.start()
        try:
            wait_http(f"{self.url}/readyz", timeout_s=120)
            live: Settings = app.state.settings  # the object the worker reads at each attempt
            yield live
        finally:
            server.should_exit = True
            thread.join(30)


WANTED_EVENTS = ("live_mismatch", "live_broken", "results_from_histograms", "retry", "fallback")


def through_service(
    client: PerfAgentClient,
    live: Settings,
    plan_id: str,
    path: str,
    target: Target,
    args: argparse.Namespace,
) -> Run:
    live.live_path = path  # type: ignore[assignment]
    wait_quiet(args.quiet_wait, args.clean_cores)
    with metered(target.pid, args.nice) as usage:
        run = client.wait(client.execute(plan_id)["id"], poll_s=1.0)
    if run["status"] != "succeeded":
        raise SystemExit(f"run {run['id']} {run['status']}: {run['error']}")
    attempts = sorted((live.runs_dir / run["id"]).glob("attempt-*"))
    summary = json.loads((attempts[-1] / SUMMARY_FILE).read_text())
    result = from_summary(path, summary, usage)
    result.run_id = run["id"]
    rows = {r["endpoint"]: r for r in run["results"]}
    diffs = []
    for key in KEYS:
        for stat, own in (("p95_ms", result.p95[key]), ("p99_ms", result.p99[key])):
            stored = rows.get(key, {}).get(stat)
            if stored is None or own is None:
                result.notes.append(f"{key} {stat}: stored {stored}, summary {own}")
            else:
                diffs.append(abs(stored - own))
    result.stored_diff_ms = max(diffs) if diffs else None
    for event in run["events"]:
        if event["kind"] in WANTED_EVENTS:
            result.notes.append(f"{event['kind']}: {event['message']}")
        elif event["kind"] == "finished" and (event.get("data") or {}).get("late_points"):
            result.notes.append(f"late points: {event['data']['late_points']}")
    wanted = "experimental-prometheus-rw" if path == "remote-write" else "json=-"
    if usage.k6_argv and wanted not in usage.k6_argv:
        result.notes.append(f"k6 ran without {wanted}: {' '.join(usage.k6_argv[1:])}")
    return result


# -- chains of pairs --------------------------------------------------------------------------


@dataclass
class Pair:
    path: str
    round: int
    attempt: int
    before: Run
    service: Run
    after: Run
    clean_cores: float

    @property
    def clean(self) -> bool:
        return max(r.other for r in (self.before, self.service, self.after)) < self.clean_cores

    def _ref(self, get: Callable[[Run], float | None]) -> float | None:
        values = [get(self.before), get(self.after)]
        return None if None in values else statistics.fmean(v for v in values if v is not None)

    @property
    def ratio(self) -> float:
        ref = self._ref(lambda r: r.rps)
        return self.service.rps / ref if ref else math.nan

    @property
    def cpu_ratio(self) -> float | None:
        """k6's CPU per request, service run / its two bare neighbours (the output's cost in
        k6 itself; noisy too, as the VM's speed drifts)."""

        def per_request(r: Run) -> float | None:
            return r.usage.k6_cpu_s / r.requests if r.requests else None

        ref, own = self._ref(per_request), per_request(self.service)
        return own / ref if ref and own is not None else None

    def pct_ratio(self, which: str) -> float | None:
        def get(r: Run) -> float | None:
            return (r.p95 if which == "p95" else r.p99)[ALL]

        ref, own = self._ref(get), get(self.service)
        return own / ref if ref and own is not None else None

    def brief(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "round": self.round,
            "attempt": self.attempt,
            "clean": self.clean,
            "rps_ratio": self.ratio,
            "k6_cpu_ratio": self.cpu_ratio,
            "p95_ratio": self.pct_ratio("p95"),
            "p99_ratio": self.pct_ratio("p99"),
            "bare_before": self.before.brief(),
            "service": self.service.brief(),
            "bare_after": self.after.brief(),
        }


def fmt_cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def chain(
    paths: list[str],
    rounds: int,
    run_bare: Callable[[], Run],
    run_service: Callable[[str], Run],
    args: argparse.Namespace,
    *,
    open_loop: bool,
) -> list[Pair]:
    pairs: list[Pair] = []
    before = run_bare()
    print(f"  bare {describe(before, open_loop)}", flush=True)
    for rnd in range(rounds):
        order = paths[rnd % len(paths) :] + paths[: rnd % len(paths)]
        for path in order:
            for attempt in range(args.retries + 1):
                service = run_service(path)
                after = run_bare()
                pair = Pair(path, rnd + 1, attempt + 1, before, service, after, args.clean_cores)
                before = after
                mark = "clean" if pair.clean else "DISTURBED"
                if open_loop:
                    figures = (
                        f"rate ratio {pair.ratio:.4f}  p95 ratio {fmt_ratio(pair.pct_ratio('p95'))}"
                    )
                else:
                    figures = f"ratio {pair.ratio:.3f}"
                print(
                    f"  {path:<12} round {rnd + 1} try {attempt + 1}: "
                    f"{describe(service, open_loop)}"
                    f"\n  bare {describe(after, open_loop)}\n"
                    f"    -> {figures}  other load {pair.before.other:.2f}/{service.other:.2f}/"
                    f"{after.other:.2f} cores: {mark}; service "
                    f"{fmt_cores(service.usage.service_cores)} cores while k6 ran; stored vs "
                    f"summary max |diff| {fmt_ms(service.stored_diff_ms)}"
                    + "".join(f"\n    note: {n}" for n in service.notes),
                    flush=True,
                )
                if pair.clean or attempt == args.retries:
                    pairs.append(pair)
                    break
                print("    (other load on the machine: repeating the pair)", flush=True)
    return pairs


def describe(run: Run, open_loop: bool) -> str:
    text = (
        f"{run.rps:>9,.0f} req/s  p95 {fmt_ms(run.p95[ALL])}  p99 {fmt_ms(run.p99[ALL])}  "
        f"k6 {run.usage.k6_cpu_s / max(run.test_s, 1e-9):.2f} cores"
    )
    if open_loop:
        text += f"  dropped {run.dropped}"
    return text + f"  other load {run.other:.2f}"


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} ms"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarise(pairs: list[Pair], path: str) -> dict[str, Any]:
    mine = [p for p in pairs if p.path == path]
    clean = [p for p in mine if p.clean]
    use = clean or mine

    def stats(values: list[float]) -> dict[str, Any]:
        if not values:
            return {}
        out: dict[str, Any] = {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "mean": statistics.fmean(values),
        }
        if len(values) > 1:
            out["stdev"] = statistics.stdev(values)
        return out

    services = [p.service for p in mine]
    cores = [c for r in services if (c := r.usage.service_cores) is not None]
    bares = [r for p in mine for r in (p.before, p.after)]
    bare_cores = [c for r in bares if (c := r.usage.service_cores) is not None]
    k6_us = [r.usage.k6_cpu_s / r.requests * 1e6 for r in services if r.requests]
    bare_us = [r.usage.k6_cpu_s / r.requests * 1e6 for r in bares if r.requests]
    diffs = [r.stored_diff_ms for r in services if r.stored_diff_ms is not None]
    return {
        "path": path,
        "pairs": len(mine),
        "clean_pairs": len(clean),
        "over": "clean pairs" if clean else "all pairs (none clean)",
        "rps_ratio": stats([p.ratio for p in use]),
        "rps_ratio_all": stats([p.ratio for p in mine]),
        "k6_cpu_ratio": stats([r for p in use if (r := p.cpu_ratio) is not None]),
        "p95_ratio": stats([r for p in use if (r := p.pct_ratio("p95")) is not None]),
        "p99_ratio": stats([r for p in use if (r := p.pct_ratio("p99")) is not None]),
        "service_rps": med([r.rps for r in services]),
        "bare_rps": med([r.rps for r in bares]),
        "service_p95_ms": med([v for r in services if (v := r.p95[ALL]) is not None]),
        "bare_p95_ms": med([v for r in bares if (v := r.p95[ALL]) is not None]),
        "service_dropped": med([float(r.dropped) for r in services]),
        "bare_dropped": med([float(r.dropped) for r in bares]),
        "service_cores_while_k6": med(cores),
        "idle_service_cores_in_bare_runs": med(bare_cores),
        "k6_cpu_us_per_request": med(k6_us),
        "bare_k6_cpu_us_per_request": med(bare_us),
        "other_cores_max": max(r.other for p in mine for r in (p.before, p.service, p.after))
        if mine
        else None,
        "stored_vs_summary_max_abs_ms": max(diffs) if diffs else None,
        "notes": sorted({n for r in services for n in r.notes}),
    }


# -- per-second fidelity ----------------------------------------------------------------------


class _TaggedLive(RemoteWriteLive):
    """RemoteWriteLive that marks each second's sample with the push time stamp it ends at."""

    def _release(self) -> None:
        pending, before = self.pending, len(self.outbox)
        super()._release()
        if pending is not None:
            for item in self.outbox[before:]:
                if item["type"] == "sample":
                    item["upto_s"] = pending.at_s


_POINT = msgspec.json.Decoder(_Point)
_DURATION = b'{"metric":"http_req_duration","type":"Point"'


def read_durations(path: Path) -> dict[str, np.ndarray]:
    """Every http_req_duration sample of a ``--out json`` file: time (epoch s), value (ms),
    endpoint index (0 a, 1 b, 2 other) and whether k6 counted the response as expected."""
    names = {n: i for i, n in enumerate(ENDPOINTS)}
    times, values, who, ok = [], [], [], []
    with path.open("rb") as fh:
        for line in fh:
            if not line.startswith(_DURATION):
                continue
            data = _POINT.decode(line).data
            tags = data.tags or _Tags()
            times.append(_epoch(data.time))
            values.append(data.value)
            who.append(names.get(tags.name, len(ENDPOINTS)))
            ok.append(tags.expected_response != "false")
    order = np.argsort(np.array(times), kind="stable")
    return {
        "t": np.array(times)[order],
        "v": np.array(values)[order],
        "who": np.array(who, dtype=np.int8)[order],
        "ok": np.array(ok, dtype=bool)[order],
    }


def exact(values: np.ndarray, pct: float) -> float | None:
    """k6's percentile: linear interpolation at rank p·(n−1) of the sorted values."""
    if values.size == 0:
        return None
    return float(np.percentile(values, pct))


def native(values_ms: np.ndarray) -> dict[str, float | None]:
    """The same samples as k6 pushes them (schema-3 native buckets) read back by the service
    (``Histogram.from_native``): the part of the error the buckets alone cause."""
    if values_ms.size == 0:
        return {}
    index = np.ceil(np.log2(values_ms / 1000) * 2**NATIVE_SCHEMA).astype(np.int64)
    found, counts = np.unique(index, return_counts=True)
    buckets = {int(i): int(c) for i, c in zip(found, counts, strict=True)}
    hist = Histogram.from_native(
        buckets, schema=NATIVE_SCHEMA, zero=0, sum_ms=float(values_ms.sum())
    )
    return hist.stats()


def compare(
    truth: dict[str, np.ndarray], mask: np.ndarray, sample: dict[str, Any], *, simulate: bool
) -> dict[str, Any]:
    """One interval's exact figures against a live sample's, per key."""
    row: dict[str, Any] = {"requests_exact": int(mask.sum()), "requests_live": sample["requests"]}
    for key in KEYS:
        sel = mask & truth["ok"] & (True if key == ALL else truth["who"] == ENDPOINTS.index(key))
        values = truth["v"][sel]
        if key == ALL:
            figures = sample["latency_ms"]
        else:
            figures = sample["endpoints"].get(key, {}).get("latency_ms", {})
        simulated = native(values) if simulate else {}
        entry: dict[str, Any] = {"n": int(values.size)}
        for stat, pct in (("p95", 95.0), ("p99", 99.0)):
            want, got, sim = exact(values, pct), figures.get(stat), simulated.get(stat)
            entry[stat] = {"exact": want, "live": got, "native_of_exact": sim}
            entry[f"{stat}_err"] = got / want - 1 if want and got is not None else None
            if simulate:
                entry[f"{stat}_native_err"] = sim / want - 1 if want and sim is not None else None
        row[key] = entry
    return row


def error_stats(rows: list[dict[str, Any]], kind: str = "err") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for stat in ("p95", "p99"):
        name = f"{stat}_{kind}" if kind == "err" else f"{stat}_{kind}_err"
        every = [abs(e) for row in rows for k in KEYS if (e := row[k].get(name)) is not None]
        big = [
            abs(e)
            for row in rows
            for k in KEYS
            if (e := row[k].get(name)) is not None and row[k]["n"] >= MIN_SAMPLES
        ]
        out[stat] = {
            "median_abs": med(big),
            "max_abs": max(big) if big else None,
            "max_abs_incl_small": max(every) if every else None,
            "points": len(big),
            "small_points_left_out": len(every) - len(big),
        }
    return out


async def both_outputs(binary: str, script: str, work: Path) -> dict[str, Any]:
    """One bare k6 with --out json=FILE and the remote-write output into the service's
    receiver, read by the service's RemoteWriteLive as the worker reads it."""
    live = _TaggedLive(list(ENDPOINTS))
    samples: list[dict[str, Any]] = []
    pushes: list[float] = []

    def on_push(series: list[remote_write.Series], request: Any, received: float) -> None:
        stamps = [s.timestamp_ms for s in series]
        if stamps:
            pushes.append(max(stamps) / 1000)
        live.push(series, received)
        samples.extend(i for i in live.drain() if i["type"] == "sample")

    (work / "script.js").write_text(script)
    async with remote_write.receiver(on_push) as rx:
        proc = await asyncio.create_subprocess_exec(
            *k6_argv(binary, "--out", "json=metrics.json", *remote_write.OUTPUT_ARGS),
            cwd=work,
            env={**remote_write.k6_environment(rx.url), **k6_env({})},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        while proc.returncode is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 0.5)
            live.tick()
            samples.extend(i for i in live.drain() if i["type"] == "sample")
        pushes_received = rx.pushes
    live.finish()
    samples.extend(i for i in live.drain() if i["type"] == "sample")
    return {"samples": samples, "pushes": pushes, "pushes_received": pushes_received}


def per_second(binary: str, script: str, label: str, keep: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fidelity-ps-") as tmp:
        work = Path(tmp)
        got = asyncio.run(both_outputs(binary, script, work))
        summary = json.loads((work / SUMMARY_FILE).read_text())["metrics"]
        truth = read_durations(work / "metrics.json")
        json_live = LiveMetrics(list(ENDPOINTS))
        with (work / "metrics.json").open("rb") as fh:
            while chunk := fh.read(1 << 20):
                json_live.feed(chunk)
        json_live.finish()
        json_samples = [i for i in json_live.drain() if i["type"] == "sample"]
        size = (work / "metrics.json").stat().st_size
        if keep:
            kept = Path(tempfile.mkdtemp(prefix=f"fidelity-ps-{label}-"))
            (kept / "metrics.json").write_bytes((work / "metrics.json").read_bytes())
            print(f"  kept {kept / 'metrics.json'}")
    t = truth["t"]
    # Whole run: the file's samples against k6's summary (does the file hold them all?).
    whole = {}
    for key in KEYS:
        sel = truth["ok"] & (True if key == ALL else truth["who"] == ENDPOINTS.index(key))
        own = summary.get(duration_metric(None if key == ALL else key), {}).get("values", {})
        whole[key] = {
            stat: (exact(truth["v"][sel], pct) or 0) / own[f"p({int(pct)})"] - 1
            for stat, pct in (("p95", 95.0), ("p99", 99.0))
            if own.get(f"p({int(pct)})")
        }
    # remote-write: each push covers (previous push's stamp, its stamp]; stamps are whole
    # milliseconds (the newest sample's time, truncated), so a bound is stamp + 1 ms.
    rw_rows = []
    lower = -math.inf
    for sample in got["samples"]:
        upper = sample["upto_s"] + 0.001
        mask = (t > lower) & (t <= upper)
        row = compare(truth, mask, sample["sample"], simulate=True)
        row["interval"] = [None if lower == -math.inf else lower, upper]
        rw_rows.append(row)
        lower = upper
    unassigned = int((t > lower).sum())
    # json: LiveMetrics bins by the wall second of each sample's time stamp.
    json_rows = []
    for sample in json_samples:
        start = dt.datetime.fromisoformat(sample["at"]).timestamp()
        row = compare(truth, (t >= start) & (t < start + 1), sample["sample"], simulate=False)
        row["interval"] = [start, start + 1]
        json_rows.append(row)
    miscounted = [r for r in rw_rows if r["requests_exact"] != r["requests_live"]]
    return {
        "label": label,
        "samples_in_file": int(t.size),
        "failed_in_file": int((~truth["ok"]).sum()),
        "json_file_bytes": size,
        "pushes": len(got["pushes"]),
        "intervals": len(rw_rows),
        "unassigned_after_last_push": unassigned,
        "intervals_with_count_mismatch": len(miscounted),
        "requests_misbinned": sum(abs(r["requests_exact"] - r["requests_live"]) for r in rw_rows),
        "file_vs_summary": whole,
        "remote_write": error_stats(rw_rows),
        "native_of_exact": error_stats(rw_rows, "native"),
        "remote_write_exact_counts": error_stats(
            [r for r in rw_rows if r["requests_exact"] == r["requests_live"]]
        ),
        "json": error_stats(json_rows),
        "remote_write_rows": rw_rows,
        "json_rows": json_rows,
    }


def print_per_second(result: dict[str, Any]) -> None:
    whole = result["file_vs_summary"]
    worst = max((abs(v) for k in KEYS for v in whole[k].values()), default=0.0)
    r = result
    print(
        f"  {r['samples_in_file']:,} samples in the file ({r['json_file_bytes'] / 1e6:.0f} MB, "
        f"{r['failed_in_file']} failed); its exact p95/p99 vs k6's summary: worst {worst:.4%}; "
        f"{r['pushes']} pushes, {r['intervals']} intervals, {r['intervals_with_count_mismatch']} "
        f"with a count different from the file's ({r['requests_misbinned']} requests), "
        f"{r['unassigned_after_last_push']} samples after the last push"
    )
    for path in ("remote_write", "native_of_exact", "remote_write_exact_counts", "json"):
        for stat in ("p95", "p99"):
            e = result[path][stat]
            print(
                f"  {path:<25} {stat}: |error| median {fmt_pct(e['median_abs'])}, max "
                f"{fmt_pct(e['max_abs'])} over {e['points']} endpoint-seconds with >= "
                f"{MIN_SAMPLES} samples ({e['small_points_left_out']} smaller left out; with "
                f"them max {fmt_pct(e['max_abs_incl_small'])})"
            )


def fmt_pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.3%}"


# -- main -------------------------------------------------------------------------------------


def renice(nice: int) -> int | None:
    """Renice this process (k6, nginx and the service inherit it) and the session's autogroup
    (CPU is shared between autogroups first; see sched(7)). Returns the old autogroup nice."""
    old = None
    with contextlib.suppress(OSError, ValueError):
        old = int(Path("/proc/self/autogroup").read_text().split()[-1])
    os.nice(nice)
    with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as fh:
        fh.write(str(nice))
    return old


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--paths",
        default=",".join(PATHS),
        help="live paths, comma-separated; also "
        + "; ".join(f"{k}: {v}" for k, v in K6_ONLY.items()),
    )
    parser.add_argument("--pairs", type=int, default=5, help="closed-loop rounds")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--vus", type=int, default=20)
    parser.add_argument("--open-pairs", type=int, default=3, help="open-loop rounds per rate")
    parser.add_argument("--open-fractions", default="0.3,0.5", help="of the bare saturation")
    parser.add_argument(
        "--saturation-rps", type=float, help="bare saturation (req/s) when --pairs 0"
    )
    parser.add_argument("--clean-cores", type=float, default=0.15)
    parser.add_argument("--retries", type=int, default=2)
    parser.add_argument(
        "--quiet-wait", type=float, default=5.0, help="wait up to this long for an idle machine"
    )
    parser.add_argument("--nice", type=int, default=0, help="renice (negative: root)")
    parser.add_argument(
        "--sandbox", default="off", choices=("off", "auto"), help="the service's k6 sandbox"
    )
    parser.add_argument("--no-per-second", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the per-second JSON files")
    parser.add_argument("--results", type=Path, help="write every figure to this JSON file")
    parser.add_argument("--smoke", action="store_true", help="1 pair of 3 s runs, any target")
    args = parser.parse_args()
    if args.smoke:
        args.pairs, args.seconds, args.open_pairs, args.retries = 1, 3, 1, 0
        args.quiet_wait = 0.0
    args.paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = set(args.paths) - set(PATHS) - set(K6_ONLY)
    if unknown:
        parser.error(f"unknown paths: {', '.join(sorted(unknown))}")
    args.open_fractions = [float(f) for f in args.open_fractions.split(",") if f.strip()]
    if args.pairs == 0 and args.open_pairs and args.saturation_rps is None:
        parser.error("--pairs 0 needs --saturation-rps for the open loop")
    return args


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    old_autogroup = renice(args.nice) if args.nice else None
    try:
        results = bench(args)
    finally:
        if args.nice and old_autogroup is not None:
            with contextlib.suppress(OSError), open("/proc/self/autogroup", "w") as fh:
                fh.write(str(old_autogroup))
    results["elapsed_s"] = time.monotonic() - started
    print(f"\ntook {results['elapsed_s'] / 60:.1f} min")
    if args.results:
        args.results.write_text(json.dumps(results, indent=1, default=str))
        print(f"figures written to {args.results}")


def bench(args: argparse.Namespace) -> dict[str, Any]:
    settings = get_settings()
    results: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "args": {k: v for k, v in vars(args).items() if k != "results"},
        "cpus": os.cpu_count(),
        "load_average_start": os.getloadavg(),
    }
    service = Service(settings, args.sandbox)
    with (
        local_target(allow_python=args.smoke) as target,
        service.running() as live,
        PerfAgentClient(service.url) as client,
    ):
        print(
            f"target {target.kind} {target.base_url}; paths {', '.join(args.paths)}; sandbox "
            f"{args.sandbox}; nice {os.nice(0)}; load average {os.getloadavg()[0]:.2f}; "
            f"k6 {live.k6_binary}",
            flush=True,
        )

        def make_plan(name: str, load: dict[str, Any]) -> tuple[str, str]:
            plan = client.create_plan(plan_document(name, target.base_url, load))
            client.approve(plan["id"])
            return plan["id"], plan["script"]

        def runners(plan_id: str, script: str) -> tuple[Callable[[], Run], Callable[[str], Run]]:
            return (
                lambda: bare(live.k6_binary, script, target, args),
                lambda path: (
                    through_service(client, live, plan_id, path, target, args)
                    if path in PATHS
                    else bare(live.k6_binary, script, target, args, kind=path)
                ),
            )

        closed: list[Pair] = []
        saturation = args.saturation_rps
        closed_script = None
        if args.pairs:
            plan_id, closed_script = make_plan("fidelity-closed", closed_load(args))
            print(f"\nclosed loop: {args.vus} VUs x {args.seconds} s, {args.pairs} rounds")
            closed = chain(args.paths, args.pairs, *runners(plan_id, closed_script), args,
                           open_loop=False)  # fmt: skip
            bares = {id(r): r for p in closed for r in (p.before, p.after)}
            saturation = statistics.median(r.rps for r in bares.values())
            results["closed"] = {
                "summary": [summarise(closed, path) for path in args.paths],
                "pairs": [p.brief() for p in closed],
                "bare_saturation_rps": saturation,
            }
            print_closed(results["closed"]["summary"], saturation)

        scripts: dict[str, str] = {}
        if closed_script is not None:
            scripts["closed"] = closed_script
        results["open"] = []
        if args.open_pairs and saturation:
            for fraction in args.open_fractions:
                rate = max(1, int(saturation * fraction / 2))  # two requests per iteration
                plan_id, script = make_plan(
                    f"fidelity-open-{int(fraction * 100)}", open_load(args, rate)
                )
                scripts[f"open {fraction:.0%}"] = script
                print(
                    f"\nopen loop: {rate:,} iterations/s (~{rate * 2:,} req/s, {fraction:.0%} of "
                    f"the bare {saturation:,.0f} req/s), {args.open_pairs} rounds"
                )
                pairs = chain(args.paths, args.open_pairs, *runners(plan_id, script), args,
                              open_loop=True)  # fmt: skip
                entry = {
                    "fraction": fraction,
                    "rate_it_s": rate,
                    "summary": [summarise(pairs, path) for path in args.paths],
                    "pairs": [p.brief() for p in pairs],
                }
                results["open"].append(entry)
                print_open(entry)

        results["per_second"] = []
        if not args.no_per_second:
            for label, script in scripts.items():
                print(
                    f"\nper-second fidelity ({label}): one bare k6 with --out json=FILE and remote "
                    "write into RemoteWriteLive",
                    flush=True,
                )
                wait_quiet(args.quiet_wait, args.clean_cores)
                result = per_second(live.k6_binary, script, label, args.keep)
                print_per_second(result)
                results["per_second"].append(result)
    results["load_average_end"] = os.getloadavg()
    return results


def print_closed(rows: list[dict[str, Any]], saturation: float) -> None:
    print(f"\nclosed loop (bare saturation {saturation:,.0f} req/s):")
    for row in rows:
        r = row["rps_ratio"]
        print(
            f"  {row['path']:<12} ratio median {r['median']:.3f} ({r['min']:.3f}..{r['max']:.3f}, "
            f"{row['over']}; {row['clean_pairs']}/{row['pairs']} clean)  service "
            f"{fmt_cores(row['service_cores_while_k6'])} cores while k6 ran (idle "
            f"{fmt_cores(row['idle_service_cores_in_bare_runs'])})  k6 "
            f"{fmt_num(row['k6_cpu_us_per_request'])} us/request (bare "
            f"{fmt_num(row['bare_k6_cpu_us_per_request'])}; per pair median x"
            f"{fmt_ratio(row['k6_cpu_ratio'].get('median'))})  stored vs summary max |diff| "
            f"{fmt_ms(row['stored_vs_summary_max_abs_ms'])}"
        )


def print_open(entry: dict[str, Any]) -> None:
    print(f"\nopen loop at {entry['rate_it_s']:,} it/s ({entry['fraction']:.0%}):")
    for row in entry["summary"]:
        rate, p95 = row["rps_ratio"], row["p95_ratio"]
        print(
            f"  {row['path']:<12} achieved rate ratio median {fmt_ratio(rate.get('median'))}  "
            f"p95 ratio median {fmt_ratio(p95.get('median'))} ({fmt_ratio(p95.get('min'))}.."
            f"{fmt_ratio(p95.get('max'))}; {row['over']}, {row['clean_pairs']}/{row['pairs']} "
            f"clean)  p95 bare {fmt_ms(row['bare_p95_ms'])} -> {fmt_ms(row['service_p95_ms'])}"
            f"  stored vs summary max |diff| {fmt_ms(row['stored_vs_summary_max_abs_ms'])}"
        )


def fmt_num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


if __name__ == "__main__":
    main()
