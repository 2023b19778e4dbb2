"""The demo target: products and orders in SQLite, served by FastAPI.

``GET /api/orders/recent`` is slow on purpose, in the classic way: it loads the recent orders,
then runs one query per order for its items (N+1), and ``order_items.order_id`` has no index,
so each of those queries scans the whole table. Every other endpoint uses an index.
"""

from __future__ import annotations

import random
import secrets
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, Field

PRODUCTS = 500
ORDERS = 2_000
ITEMS_PER_ORDER = 50
RECENT_ORDERS = 40
CATEGORIES = ("books", "games", "garden", "kitchen", "music", "tools")
REGRESSION_S = 0.05  # what POST /admin/regress adds to every product page
# The slow endpoint's fix, in the stages ``POST /admin/fix`` deploys one at a time.
FIXES = (
    "an index on order_items.order_id (each of the N+1 queries is now a lookup)",
    "one query for all the orders' items (no more N+1)",
)

SCHEMA = """
CREATE TABLE products (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL, price_cents INTEGER
);
CREATE INDEX ix_products_category ON products (category);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, created_at REAL NOT NULL);
CREATE INDEX ix_orders_created_at ON orders (created_at);
-- No index on order_id: the mistake /api/orders/recent pays for.
CREATE TABLE order_items (
    id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL, product_id INTEGER NOT NULL,
    quantity INTEGER NOT NULL
);
"""


def build_database(path: Path, *, seed: int = 7) -> None:
    rng = random.Random(seed)
    conn = sqlite3.connect(path)
    with conn:
        conn.executescript(SCHEMA)
        conn.executemany(
            "INSERT INTO products (id, name, category, price_cents) VALUES (?, ?, ?, ?)",
            [
                (i, f"product {i}", rng.choice(CATEGORIES), rng.randint(100, 20_000))
                for i in range(1, PRODUCTS + 1)
            ],
        )
        conn.executemany(
            "INSERT INTO orders (id, customer, created_at) VALUES (?, ?, ?)",
            [(i, f"customer {rng.randint(1, 300)}", float(i)) for i in range(1, ORDERS + 1)],
        )
        conn.executemany(
            "INSERT INTO order_items (order_id, product_id, quantity) VALUES (?, ?, ?)",
            [
                (order, rng.randint(1, PRODUCTS), rng.randint(1, 5))
                for order in range(1, ORDERS + 1)
                for _ in range(ITEMS_PER_ORDER)
            ],
        )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()


DEMO_USERS = 20  # user1 … user20, password "pw-<n>"


class Login(BaseModel):
    username: str
    password: str


class OrderLine(BaseModel):
    product_id: int = Field(ge=1)
    quantity: int = Field(ge=1, le=100)


class NewOrder(BaseModel):
    customer: str = Field(min_length=1, max_length=100)
    items: list[OrderLine] = Field(min_length=1, max_length=50)


def create_target(db_path: Path | None = None) -> FastAPI:
    if db_path is None:
        db_path = Path(tempfile.mkdtemp(prefix="perf-agent-demo-")) / "shop.db"
    if not db_path.exists():
        build_database(db_path)
    local = threading.local()

    def db() -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(db_path, timeout=5, check_same_thread=True)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA synchronous=OFF")
            local.conn = conn
        return conn

    app = FastAPI(title="perf-agent demo shop")
    regressed = {"delay_s": 0.0}
    passwords = {f"user{n}": f"pw-{n}" for n in range(1, DEMO_USERS + 1)}
    sessions: dict[str, str] = {}  # token → username
    sessions_lock = threading.Lock()

    def user_for(authorization: str | None) -> str:
        token = (authorization or "").removeprefix("Bearer ").strip()
        with sessions_lock:
            username = sessions.get(token)
        if username is None:
            raise HTTPException(401, "log in first: POST /api/login")
        return username

    @app.post("/api/login")
    def login(body: Login) -> dict[str, str]:
        if passwords.get(body.username) != body.password:
            raise HTTPException(401, "wrong username or password")
        token = secrets.token_urlsafe(16)
        with sessions_lock:
            sessions[token] = body.username
        return {"token": token, "username": body.username}

    @app.get("/api/me/orders")
    def my_orders(authorization: str | None = Header(default=None)) -> dict[str, Any]:
        username = user_for(authorization)
        rows = (
            db()
            .execute(
                "SELECT id, created_at FROM orders WHERE customer = ? ORDER BY created_at DESC "
                "LIMIT 10",
                (username,),
            )
            .fetchall()
        )
        return {"username": username, "orders": [dict(r) for r in rows]}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/products")
    def list_products(category: str = "books", limit: int = 20) -> list[dict[str, Any]]:
        rows = db().execute(
            "SELECT id, name, category, price_cents FROM products WHERE category = ? "
            "ORDER BY id LIMIT ?",
            (category, min(limit, 100)),
        )
        return [dict(r) for r in rows]

    @app.get("/api/products/{product_id}")
    def get_product(product_id: int) -> dict[str, Any]:
        if regressed["delay_s"]:
            time.sleep(regressed["delay_s"])  # the injected regression (POST /admin/regress)
        row = (
            db()
            .execute(
                "SELECT id, name, category, price_cents FROM products WHERE id = ?", (product_id,)
            )
            .fetchone()
        )
        if row is None:
            raise HTTPException(404, "no such product")
        return dict(row)

    @app.post("/api/orders", status_code=201)
    def create_order(order: NewOrder) -> dict[str, Any]:
        conn = db()
        with conn:
            cur = conn.execute(
                "INSERT INTO orders (customer, created_at) VALUES (?, ?)",
                (order.customer, time.time()),
            )
            order_id = cur.lastrowid
            conn.executemany(
                "INSERT INTO order_items (order_id, product_id, quantity) VALUES (?, ?, ?)",
                [(order_id, line.product_id, line.quantity) for line in order.items],
            )
        return {"id": order_id, "customer": order.customer, "items": len(order.items)}

    fixed = {"level": 0}  # how much of the slow endpoint's fix is deployed (FIXES)

    @app.get("/api/orders/recent")
    def recent_orders() -> list[dict[str, Any]]:
        conn = db()
        orders = conn.execute(
            "SELECT id, customer FROM orders ORDER BY created_at DESC LIMIT ?",
            (RECENT_ORDERS,),
        ).fetchall()
        if fixed["level"] >= 2:
            # One query for every order's items, instead of one per order.
            ids = [order["id"] for order in orders]
            marks = ",".join("?" * len(ids))
            rows = conn.execute(
                "SELECT order_id, product_id, quantity FROM order_items "
                f"WHERE order_id IN ({marks})",
                ids,
            ).fetchall()
            by_order: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
            for row in rows:
                by_order[row["order_id"]].append(
                    {"product_id": row["product_id"], "quantity": row["quantity"]}
                )
            return [
                {"id": o["id"], "customer": o["customer"], "items": by_order[o["id"]]}
                for o in orders
            ]
        result = []
        for order in orders:  # N+1: one query per order, each a full scan of order_items
            items = conn.execute(
                "SELECT product_id, quantity FROM order_items WHERE order_id = ?", (order["id"],)
            ).fetchall()
            result.append(
                {
                    "id": order["id"],
                    "customer": order["customer"],
                    "items": [dict(i) for i in items],
                }
            )
        return result

    @app.post("/admin/fix")
    def deploy_next_fix() -> dict[str, Any]:
        """The demo's stand-in for a redeploy between budget iterations: each call deploys
        the next stage of the slow endpoint's fix (FIXES), until all are in."""
        level = min(fixed["level"] + 1, len(FIXES))
        if level == 1:
            db().execute(
                "CREATE INDEX IF NOT EXISTS ix_order_items_order_id ON order_items (order_id)"
            )
            db().commit()
        fixed["level"] = level
        return {"level": level, "deployed": FIXES[:level]}

    @app.get("/admin/fix")
    def fix_level() -> dict[str, Any]:
        return {"level": fixed["level"], "deployed": FIXES[: fixed["level"]]}

    @app.post("/admin/regress")
    def deploy_regression() -> dict[str, Any]:
        """The demo's stand-in for a bad build, for a CI gate to catch: every product page
        now takes REGRESSION_S longer."""
        regressed["delay_s"] = REGRESSION_S
        return {"delay_ms": REGRESSION_S * 1000, "endpoint": "GET /api/products/{id}"}

    return app
