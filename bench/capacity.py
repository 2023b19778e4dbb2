"""What one run costs a deployment, measured: the figures behind deploy/CAPACITY.md.

On a database of its own (``perf_agent_bench_capacity``, dropped and re-created), with the
processes a deployment runs (``perf-agent serve --no-worker`` and ``perf-agent worker``, auth
off, loopback only) and the demo shop as the target:

1. **Idle**: for ``--idle`` seconds, nothing queued — the transactions the API and one polling
   worker make on their own, per second.
2. **One run** of the demo plan (4 endpoints, ``--vus`` VUs, ``--seconds`` long), then its
   analysis, then the worker packing it (``PERF_AGENT_ARCHIVE_AFTER_S``=5): the database's
   transactions, rows inserted/updated/deleted, WAL written and bytes kept per table; the
   worker's own CPU beside k6's (its reaped children); the requests k6 made.

    .venv/bin/python bench/capacity.py [--seconds 60] [--vus 5] [--idle 20]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import psycopg
import yaml

from app.cli import DEMO_PLAN, free_port, running_demo_target, stop_process, wait_http
from app.client import PerfAgentClient
from app.core.migrate import upgrade

sys.path.insert(0, str(Path(__file__).resolve().parent))
from self_load import admin_url
from storage import TABLES, stored_rows

DATABASE = "perf_agent_bench_capacity"
ROOT = Path(__file__).resolve().parent.parent


def url() -> str:
    return admin_url().rsplit("/", 1)[0] + f"/{DATABASE}"


def fresh_database() -> None:
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DATABASE}")
    upgrade(url().replace("postgresql://", "postgresql+psycopg://", 1))


def counters() -> dict[str, float]:
    """This database's cumulative counters and the server's WAL position."""
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        row = conn.execute(
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, "
            "tup_fetched, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0'), "
            "pg_database_size(datname) FROM pg_stat_database WHERE datname = %s",
            (DATABASE,),
        ).fetchone()
    assert row is not None
    keys = ("commits", "rollbacks", "inserted", "updated", "deleted", "fetched", "wal", "size")
    return {k: float(v) for k, v in zip(keys, row, strict=True)}


def settle() -> dict[str, float]:
    time.sleep(1.5)  # backends flush their statistics at most once a second
    return counters()


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in after}


# The rows one run leaves, table by table (how each table names the run).
RUN_ROWS = {**TABLES, "analyses": "run_id = %(run)s"}


def at_scale() -> str | None:
    """Bytes per run, indexes included, in bench/console.py's database (1,000 packed runs)
    when it exists."""
    other = admin_url().rsplit("/", 1)[0] + "/perf_agent_bench_console"
    try:
        with psycopg.connect(other) as conn:
            runs = int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])  # type: ignore[index]
            total = int(
                conn.execute(
                    "SELECT sum(pg_total_relation_size(t)) FROM unnest(%s::text[]) t",
                    (list(RUN_ROWS),),
                ).fetchone()[0]  # type: ignore[index]
            )
    except psycopg.OperationalError:
        return None
    return f"{total / runs:,.0f} bytes a run over {runs:,} runs (tables and their indexes)"


def own_cpu(proc: psutil.Process) -> tuple[float, float]:
    """(the process's own CPU seconds, its reaped children's)."""
    t = proc.cpu_times()
    return t.user + t.system, t.children_user + t.children_system


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[Any]:
    return subprocess.Popen(
        argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--vus", type=int, default=5)
    parser.add_argument("--idle", type=float, default=20.0)
    args = parser.parse_args()
    fresh_database()
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "perf-agent-bench-capacity"
    work.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PERF_AGENT_DATABASE_URL": url(),
        "PERF_AGENT_AUTH": "off",
        "PERF_AGENT_DATA_DIR": str(work / "data"),
        "PERF_AGENT_ARCHIVE_AFTER_S": "5",
        "PERF_AGENT_REAPER_INTERVAL_S": "2",
    }
    binary = str(Path(sys.executable).with_name("perf-agent"))
    port = free_port()
    with running_demo_target(free_port()) as target:
        api = start([binary, "serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)],
                    env, work / "api.log")  # fmt: skip
        worker = start([binary, "worker"], env, work / "worker.log")
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/readyz", timeout_s=60)
            time.sleep(3)
            before = settle()
            time.sleep(args.idle)
            idle = delta(settle(), before)

            plan = yaml.safe_load(DEMO_PLAN.read_text())
            plan["name"] = "capacity"
            plan["target"]["base_url"] = target
            plan["load"] = {"vus": args.vus, "duration": f"{args.seconds}s"}
            process = psutil.Process(worker.pid)
            cpu0, k60 = own_cpu(process)
            before = settle()
            started = time.monotonic()
            with PerfAgentClient(base) as client:
                _, run = client.run_approved(plan, reviewer="bench")
                ran_s = time.monotonic() - started
                cpu1, k61 = own_cpu(process)
                after_run = settle()
                client.analyse(run["id"])
                after_analysis = settle()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with psycopg.connect(url()) as conn:
                    if conn.execute("SELECT 1 FROM run_archives").fetchone():
                        break
                time.sleep(0.5)
            packed = settle()
            kept = stored_rows(url(), run["id"], RUN_ROWS)
        finally:
            stop_process(worker)
            stop_process(api)

    requests = next(r["requests"] for r in run["results"] if r["endpoint"] == "*")
    print(f"run {run['id']}: {run['status']}, {requests:,} requests in {args.seconds} s "
          f"({requests / args.seconds:,.0f}/s), {len(run['results']) - 1} endpoints, "
          f"{args.vus} VUs; {ran_s:.1f} s from POST /plan to finished")  # fmt: skip
    print(f"\nidle ({args.idle:.0f} s, API + one polling worker): "
          f"{idle['commits'] / args.idle:.1f} commits/s, "
          f"{idle['fetched'] / args.idle:,.0f} rows fetched/s, "
          f"{idle['wal'] / args.idle:,.0f} WAL bytes/s")  # fmt: skip
    phases = {
        "the run (queue → finished)": delta(after_run, before),
        "its analysis": delta(after_analysis, after_run),
        "packing it": delta(packed, after_analysis),
        "all": delta(packed, before),
    }
    print(f"\n{'database':<28} {'commits':>8} {'inserted':>9} {'updated':>8} {'deleted':>8} "
          f"{'WAL bytes':>11}")  # fmt: skip
    for name, d in phases.items():
        print(f"{name:<28} {d['commits']:>8,.0f} {d['inserted']:>9,.0f} {d['updated']:>8,.0f} "
              f"{d['deleted']:>8,.0f} {d['wal']:>11,.0f}")  # fmt: skip
    print("\nwhat the run and its analysis keep, packed (rows, bytes as stored, no indexes):")
    for table, (rows, size) in kept.items():
        print(f"  {table:<16} {rows:>6,} rows {size:>10,} B")
    print(f"  {'all':<16} {sum(r for r, _ in kept.values()):>6,} rows "
          f"{sum(b for _, b in kept.values()):>10,} B")  # fmt: skip
    print(f"  database size grew {phases['all']['size']:,.0f} B (whole pages, from empty)")
    scale = at_scale()
    if scale:
        print(f"  at scale: {scale}")
    files = [f for f in (work / "data" / "runs" / run["id"]).rglob("*") if f.is_file()]
    size = sum(f.stat().st_size for f in files)
    print(f"  the worker's files for it ({work / 'data'}): {len(files)} files, {size:,} B "
          "(script, k6's log and summaries)")  # fmt: skip
    own, k6 = cpu1 - cpu0, k61 - k60
    print(f"\nworker CPU during the run: its own {own:.2f} s ({own / ran_s:.3f} cores), "
          f"k6's {k6:.2f} s ({k6 / ran_s:.3f} cores), over {ran_s:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
