"""A Python HTTP target with a known hot function, for the profiler's tests and bench.

``GET /orders`` loads recent orders, then runs one query per order for its items (N+1) over
a table without an index on ``order_id``: ``orders_n_plus_one`` is where the time goes.
``GET /health`` does nothing. Started as ``python -m tests.profiling.target``; prints its
port on the first line of stdout.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ORDERS = 200
ITEMS_PER_ORDER = 100
RECENT = 20


def build(path: Path) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT)")
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, order_id INTEGER, qty INTEGER)")
        conn.executemany("INSERT INTO orders VALUES (?, ?)", [(i, f"c{i}") for i in range(ORDERS)])
        conn.executemany(
            "INSERT INTO items (order_id, qty) VALUES (?, ?)",
            [(o, q) for o in range(ORDERS) for q in range(ITEMS_PER_ORDER)],
        )
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    db = Path(tempfile.mkdtemp(prefix="perf-agent-profiling-target-")) / "shop.db"
    build(db)
    local = threading.local()

    def connection() -> sqlite3.Connection:
        if not hasattr(local, "conn"):
            local.conn = sqlite3.connect(db)
        conn: sqlite3.Connection = local.conn
        return conn

    def orders_n_plus_one() -> list[dict[str, object]]:
        conn = connection()
        orders = conn.execute(
            "SELECT id, customer FROM orders ORDER BY id DESC LIMIT ?", (RECENT,)
        ).fetchall()
        result = []
        for order_id, customer in orders:  # one full scan of items per order
            items = conn.execute("SELECT qty FROM items WHERE order_id = ?", (order_id,)).fetchall()
            result.append({"id": order_id, "customer": customer, "items": len(items)})
        return result

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = json.dumps(orders_n_plus_one() if self.path == "/orders" else {}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    sys.stdout.write(f"{server.server_address[1]}\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
