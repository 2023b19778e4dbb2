"""The source at a hot line: the statement, its SQL, and whether a loop runs it."""

from __future__ import annotations

from pathlib import Path

from app.profiling.source import hot_spot

HANDLERS = """\
def recent(conn):
    orders = conn.execute("SELECT id FROM orders LIMIT 20").fetchall()
    result = []
    for order in orders:
        items = conn.execute(
            "SELECT * FROM items WHERE order_id = ?", (order[0],)
        ).fetchall()
        result.append(items)
    return [conn.execute("select 1").fetchone() for _ in result]


def compute(n):
    return sum(i * i for i in range(n))
"""


def test_a_query_inside_a_loop_is_found_with_its_sql(tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text(HANDLERS)

    spot = hot_spot("shop.py:6", cwd=str(tmp_path))  # the string line of the inner query

    assert spot is not None
    assert spot.code == "items = conn.execute("
    assert spot.sql == "SELECT * FROM items WHERE order_id = ?"
    assert spot.in_loop


def test_the_query_before_the_loop_is_not_in_it(tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text(HANDLERS)

    spot = hot_spot(f"{tmp_path / 'shop.py'}:2")

    assert spot is not None
    assert (spot.sql, spot.in_loop) == ("SELECT id FROM orders LIMIT 20", False)


def test_a_comprehension_is_a_loop_and_code_without_sql_has_none(tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text(HANDLERS)

    comprehension = hot_spot("shop.py:9", cwd=str(tmp_path))
    computing = hot_spot("shop.py:13", cwd=str(tmp_path))

    assert comprehension is not None
    assert comprehension.in_loop
    assert comprehension.sql == "select 1"
    assert computing is not None
    assert (computing.sql, computing.in_loop) == (None, True)


def test_only_python_files_that_parse_are_read(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("SELECT secret FROM vault\n")
    (tmp_path / "broken.py").write_text("def (:\n")

    assert hot_spot("notes.txt:1", cwd=str(tmp_path)) is None
    assert hot_spot("broken.py:1", cwd=str(tmp_path)) is None
    assert hot_spot("missing.py:1", cwd=str(tmp_path)) is None
    assert hot_spot("relative.py:1") is None  # no working directory to resolve it against
    assert hot_spot("no-line-number") is None
