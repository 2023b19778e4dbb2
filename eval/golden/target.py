"""A small shop API on 127.0.0.1 with faults that can be switched on: the system under test
of the golden evaluation set.

Four endpoints, each a few milliseconds of real work:

- ``/catalog``  products of a category from SQLite (indexed) + a simulated 1 ms downstream call
- ``/orders``   a customer's orders from SQLite (indexed) joined with products
- ``/search``   a substring search over 3 000 product names in Python (CPU)
- ``/profile``  a key lookup + a simulated 1.5 ms downstream call

Every request also holds one "connection" from a pool (a semaphore, 64 by default) for its
whole handling, and sleeps a background jitter of 0..N ms (the noise level).

Faults (the ``fault`` dict, set at start with ``--fault JSON`` or at run time with
``POST /_admin/config``):

- ``{"kind": "latency", "endpoint": "orders", "ms": 15}``    +15 ms on one endpoint
- ``{"kind": "slow_query", "endpoint": "orders", "rows": N}`` the orders query is made to scan
  the table without its index (``NOT INDEXED``), over the first N orders
- ``{"kind": "pool", "size": 2}``                             a pool of 2 connections, shared
- ``{"kind": "errors", "endpoint": "search", "rate": 0.05, "ramp": false}``  5 % answered 500
  (``ramp``: the rate rises linearly from 0 to 2 × rate over ``ramp_s`` seconds from the
  moment the fault was set, i.e. averages ``rate`` over the run)
- ``{"kind": "stalls", "endpoint": "search", "every_s": 1.0, "ms": [50, 150]}`` about once
  every ``every_s`` (0.8-1.2 x) one request to the endpoint stalls ``ms`` (tail only: the
  median and p95 stay flat)
- ``{"kind": "downstream", "endpoint": "catalog", "ms": 8}`` the endpoint's downstream call
  (1 ms for catalog, 1.5 ms for profile) takes ``ms`` x uniform(0.5, 1.5) instead
- ``{"kind": "churn", "setup_ms": 2}`` every response says ``Connection: close`` (k6
  reconnects for every request), and a new connection costs ``setup_ms`` of server work before
  its first request is read (a TLS/session hand-shake stand-in; paid once per connection)
- ``{"kind": "lock", "endpoints": ["orders", "profile"], "ms": 4}`` both endpoints take one
  shared lock and hold it ``ms`` (a row lock held across a write): they queue on each other
- ``{"kind": "leak", "endpoint": "orders", "kb": 64}`` each request to the endpoint keeps
  ``kb`` KiB for ever and then scans everything kept so far (a cache that is never evicted,
  walked on every request): memory and the endpoint's latency grow over the run
- ``{"kind": "slowdown", "endpoint": "profile", "factor": 0.2}`` the endpoint's whole
  handling time (jitter included, plus the ~0.7 ms of HTTP overhead the client also sees) is
  made ``factor`` longer: a small, real slowdown as the client measures it
- ``{"kind": "none"}``

Noise (the ``noise`` dict): ``{"jitter_ms": 5, "stall_p": 0.01, "stall_ms": [30, 80]}`` —
a uniform 0..jitter_ms sleep on every request, and with probability stall_p a stall of
stall_ms (a GC pause, a noisy neighbour).

    .venv/bin/python eval/golden/target.py --port 8123 [--fault '{"kind": "latency", ...}']

``GET /_admin/config`` shows the current fault and noise; ``GET /health`` is always fast.
Binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import tempfile
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ENDPOINTS = ("catalog", "orders", "search", "profile")
PRODUCTS = 3_000
CUSTOMERS = 2_000
ORDERS = 200_000
CATEGORIES = ("books", "games", "garden", "kitchen", "music", "tools", "toys", "sports")
DEFAULT_POOL = 64
KINDS = (
    "none",
    "latency",
    "slow_query",
    "pool",
    "errors",
    "stalls",
    "downstream",
    "churn",
    "lock",
    "leak",
    "slowdown",
)
DOWNSTREAM_MS = {"catalog": 1.0, "profile": 1.5}
CLIENT_OVERHEAD_S = 0.0007  # k6's p50 minus the handler's time, measured at 40 it/s

SCHEMA = """
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, category TEXT, price_cents INTEGER);
CREATE INDEX ix_products_category ON products (category);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY, customer_id INTEGER, product_id INTEGER, quantity INTEGER
);
CREATE INDEX ix_orders_customer ON orders (customer_id);
CREATE TABLE profiles (id INTEGER PRIMARY KEY, name TEXT, tier TEXT);
"""


def build_database(path: Path, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    conn = sqlite3.connect(path)
    with conn:
        conn.executescript(SCHEMA)
        names = [
            f"{rng.choice(('red', 'blue', 'big', 'small', 'old', 'new'))} "
            f"{rng.choice(CATEGORIES)} item {i}"
            for i in range(1, PRODUCTS + 1)
        ]
        conn.executemany(
            "INSERT INTO products VALUES (?, ?, ?, ?)",
            [
                (i, names[i - 1], rng.choice(CATEGORIES), rng.randint(100, 20_000))
                for i in range(1, PRODUCTS + 1)
            ],
        )
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?)",
            (
                (i, rng.randint(1, CUSTOMERS), rng.randint(1, PRODUCTS), rng.randint(1, 5))
                for i in range(1, ORDERS + 1)
            ),
        )
        conn.executemany(
            "INSERT INTO profiles VALUES (?, ?, ?)",
            [(i, f"user {i}", rng.choice(("free", "pro"))) for i in range(1, CUSTOMERS + 1)],
        )
    conn.close()
    return names


class Shop:
    """The state behind the handlers: database, pool, fault, noise."""

    def __init__(
        self, fault: dict[str, Any] | None = None, noise: dict[str, Any] | None = None
    ) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="golden-target-")
        self.db_path = Path(self._dir.name) / "shop.db"
        self.names = build_database(self.db_path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self.configure(fault or {"kind": "none"}, noise or {"jitter_ms": 0})

    def configure(self, fault: dict[str, Any], noise: dict[str, Any]) -> None:
        kind = fault.get("kind", "none")
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            self.fault = dict(fault)
            self.noise = dict(noise)
            self.fault_set_at = time.monotonic()
            size = int(fault["size"]) if kind == "pool" else DEFAULT_POOL
            self.pool = threading.BoundedSemaphore(size)
            self.shared_lock = threading.Lock()  # the "lock" fault's row lock
            self.leaked: list[bytes] = []  # the "leak" fault's never-evicted cache
            every = float(fault.get("every_s", 1.0))
            self.next_stall = self.fault_set_at + every * random.uniform(0.3, 1.0)

    def downstream(self, endpoint: str, rng: random.Random) -> None:
        """The endpoint's call to another service (a sleep), slower under "downstream"."""
        fault = self.fault
        if fault.get("kind") == "downstream" and fault.get("endpoint") == endpoint:
            time.sleep(float(fault["ms"]) * rng.uniform(0.5, 1.5) / 1000)
        else:
            time.sleep(DOWNSTREAM_MS[endpoint] / 1000)

    def stall_now(self, endpoint: str) -> bool:
        fault = self.fault
        if fault.get("kind") != "stalls" or fault.get("endpoint") != endpoint:
            return False
        now = time.monotonic()
        with self._lock:
            if now < self.next_stall:
                return False
            every = float(fault.get("every_s", 1.0))
            self.next_stall = now + every * random.uniform(0.8, 1.2)
        return True

    def leak(self, endpoint: str) -> None:
        fault = self.fault
        if fault.get("kind") != "leak" or fault.get("endpoint") != endpoint:
            return
        self.leaked.append(random.randbytes(int(fault.get("kb", 64)) * 1024))
        crc = 0
        for chunk in list(self.leaked):  # walk everything kept so far
            crc = zlib.crc32(chunk, crc)

    def config(self) -> dict[str, Any]:
        return {"fault": self.fault, "noise": self.noise}

    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
            self._local.conn = conn
        return conn

    # --- handlers -------------------------------------------------------------------------

    def catalog(self, rng: random.Random) -> Any:
        rows = (
            self.conn()
            .execute(
                "SELECT id, name, price_cents FROM products WHERE category = ? "
                "ORDER BY price_cents LIMIT 20",
                (rng.choice(CATEGORIES),),
            )
            .fetchall()
        )
        self.downstream("catalog", rng)  # a downstream call (prices service), ~1 ms
        return [{"id": r[0], "name": r[1], "price": r[2] / 100} for r in rows]

    def orders(self, rng: random.Random) -> Any:
        customer = rng.randint(1, CUSTOMERS)
        conn = self.conn()
        if self.fault.get("kind") == "slow_query" and self.fault.get("endpoint") == "orders":
            # The index is lost: the customer's orders are found by scanning the first N rows.
            hint, bound = "NOT INDEXED", int(self.fault.get("rows", ORDERS))
        else:
            hint, bound = "", ORDERS
        rows = conn.execute(
            f"SELECT o.id, p.name, o.quantity FROM orders o {hint} "
            "JOIN products p ON p.id = o.product_id "
            "WHERE o.customer_id = ? AND o.id <= ? ORDER BY o.id DESC LIMIT 20",
            (customer, bound),
        ).fetchall()
        count, units = conn.execute(
            f"SELECT count(*), sum(quantity) FROM orders {hint} WHERE customer_id = ? AND id <= ?",
            (customer, bound),
        ).fetchone()
        return {
            "orders": [{"id": r[0], "product": r[1], "quantity": r[2]} for r in rows],
            "count": count,
            "units": units,
        }

    def search(self, rng: random.Random, query: str) -> Any:
        needle = query or rng.choice(CATEGORIES)
        hits = [n for n in self.names if needle in n and rng.random() < 0.9]
        hits.sort(key=len)
        return {"query": needle, "count": len(hits), "top": hits[:10]}

    def profile(self, rng: random.Random) -> Any:
        row = (
            self.conn()
            .execute("SELECT id, name, tier FROM profiles WHERE id = ?", (rng.randint(1, 2000),))
            .fetchone()
        )
        self.downstream("profile", rng)  # a downstream call (sessions service), ~1.5 ms
        return {"id": row[0], "name": row[1], "tier": row[2]}

    def error_now(self, endpoint: str, rng: random.Random) -> bool:
        fault = self.fault
        if fault.get("kind") != "errors" or fault.get("endpoint") != endpoint:
            return False
        rate = float(fault.get("rate", 0.05))
        if fault.get("ramp"):
            elapsed = time.monotonic() - self.fault_set_at
            rate = 2 * rate * min(1.0, elapsed / float(fault.get("ramp_s", 6)))
        return rng.random() < rate

    def handle(self, endpoint: str, query: str) -> tuple[int, Any]:
        rng = random.Random()
        fault, noise = self.fault, self.noise
        with self.pool:
            begun = time.perf_counter()
            jitter = float(noise.get("jitter_ms", 0))
            if jitter:
                time.sleep(rng.uniform(0, jitter) / 1000)
            if rng.random() < float(noise.get("stall_p", 0)):
                low, high = noise.get("stall_ms", (30, 80))
                time.sleep(rng.uniform(low, high) / 1000)
            if fault.get("kind") == "latency" and fault.get("endpoint") == endpoint:
                time.sleep(float(fault["ms"]) / 1000)
            if self.stall_now(endpoint):
                low, high = fault.get("ms", (50, 150))
                time.sleep(rng.uniform(low, high) / 1000)
            if fault.get("kind") == "lock" and endpoint in fault.get("endpoints", ()):
                with self.shared_lock:
                    time.sleep(float(fault.get("ms", 4)) / 1000)
            self.leak(endpoint)
            if endpoint == "catalog":
                body = self.catalog(rng)
            elif endpoint == "orders":
                body = self.orders(rng)
            elif endpoint == "search":
                body = self.search(rng, query)
            else:
                body = self.profile(rng)
            if fault.get("kind") == "slowdown" and fault.get("endpoint") == endpoint:
                # factor x (this request's handling + the ~0.7 ms a client also sees: parsing,
                # sending, loopback), so the client-side latency rises by about the factor
                handled = time.perf_counter() - begun + CLIENT_OVERHEAD_S
                time.sleep(handled * float(fault["factor"]))
            if self.error_now(endpoint, rng):
                return 500, {"error": "internal error (injected)"}
        return 200, body


def make_handler(shop: Shop) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real API server
        disable_nagle_algorithm = True  # else headers and body wait on delayed ACKs (40 ms)

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            fault = shop.fault
            if fault.get("kind") == "churn":
                # A new connection's set-up (a TLS/session hand-shake stand-in): CPU work.
                until = time.perf_counter() + float(fault.get("setup_ms", 2)) / 1000
                while time.perf_counter() < until:
                    pass

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if shop.fault.get("kind") == "churn" and self.path != "/_admin/config":
                self.send_header("Connection", "close")  # sets close_connection too
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            name = url.path.strip("/")
            if name == "health":
                self._send(200, {"status": "ok"})
            elif name == "_admin/config":
                self._send(200, shop.config())
            elif name in ENDPOINTS:
                query = parse_qs(url.query).get("q", [""])[0]
                self._send(*shop.handle(name, query))
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            if urlsplit(self.path).path != "/_admin/config":
                self._send(404, {"error": "not found"})
                return
            try:
                body = json.loads(raw)
                shop.configure(body.get("fault") or {"kind": "none"}, body.get("noise") or {})
            except (ValueError, KeyError, TypeError) as exc:
                self._send(422, {"error": str(exc)})
                return
            self._send(200, shop.config())

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def serve(port: int, fault: dict[str, Any] | None, noise: dict[str, Any] | None) -> None:
    shop = Shop(fault, noise)
    server = Server(("127.0.0.1", port), make_handler(shop))
    print(f"golden target on http://127.0.0.1:{port}", flush=True)
    server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--fault", type=json.loads, default=None, help="JSON, e.g. see above")
    parser.add_argument("--noise", type=json.loads, default=None, help='e.g. {"jitter_ms": 5}')
    args = parser.parse_args()
    serve(args.port, args.fault, args.noise)


if __name__ == "__main__":
    main()
