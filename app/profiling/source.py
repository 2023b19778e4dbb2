"""The source behind a hot function: its line, the SQL it runs, whether it runs in a loop.

A profile says where the time went (``recent_orders`` at ``target.py:191``); the line itself
says why: a ``conn.execute("SELECT … WHERE order_id = ?")`` inside a ``for`` over the rows of
another query is an N+1. For a Python process on this machine the file is here to read: it
is parsed (never run) with :mod:`ast`, and only the statement at the hot line is taken.

Only ``.py`` files of at most ``MAX_BYTES`` are read, and only the hot statement's text, its
SQL literals and the loop around it leave this module.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

MAX_BYTES = 2_000_000
MAX_CODE = 200
MAX_SQL = 400
_SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|REPLACE|UPSERT|MERGE)\b", re.I)
_LOOPS = (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.SetComp, ast.DictComp,
          ast.GeneratorExp)  # fmt: skip


@dataclass(frozen=True)
class HotSpot:
    location: str  # file:line as resolved
    code: str  # the statement at the line, first line, stripped
    sql: str | None  # a SQL literal the statement passes (a query it runs)
    in_loop: bool  # the statement runs inside a loop of its function


def resolve(location: str, cwd: str | None) -> tuple[Path, int] | None:
    """``file:line`` (relative to the process's working directory when not absolute)."""
    name, _, line = location.rpartition(":")
    if not name or not line.isdigit():
        return None
    path = Path(name)
    if not path.is_absolute():
        if cwd is None:
            return None
        path = Path(cwd) / path
    return path, int(line)


def _statement(tree: ast.AST, line: int) -> tuple[ast.stmt | None, list[ast.AST]]:
    """The innermost statement spanning ``line`` and the nodes enclosing it (outermost
    first)."""
    found: ast.stmt | None = None
    chain: list[ast.AST] = []

    def visit(node: ast.AST, parents: list[ast.AST]) -> None:
        nonlocal found, chain
        for child in ast.iter_child_nodes(node):
            start: int | None = getattr(child, "lineno", None)
            if start is not None:
                end: int = getattr(child, "end_lineno", None) or start
                if not start <= line <= end:
                    continue
            if start is not None and isinstance(child, ast.stmt):
                found, chain = child, [*parents, node]
            visit(child, [*parents, node])

    visit(tree, [])
    return found, chain


def _sql(statement: ast.stmt) -> str | None:
    for node in ast.walk(statement):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if _SQL.match(node.value):
                return " ".join(node.value.split())[:MAX_SQL]
    return None


def _in_loop(statement: ast.stmt, chain: list[ast.AST]) -> bool:
    if isinstance(statement, ast.For | ast.AsyncFor | ast.While):
        return False  # the loop's own header line runs once per loop, not per item
    if any(isinstance(node, _LOOPS) for node in ast.walk(statement)):
        return True  # a comprehension in the statement itself
    # Inside the nearest function only: a loop around the function's caller is another story.
    for node in reversed(chain):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return False
        if isinstance(node, _LOOPS):
            return True
    return False


def hot_spot(location: str, cwd: str | None = None) -> HotSpot | None:
    """What is at ``location``; None when the file cannot be read or parsed here."""
    resolved = resolve(location, cwd)
    if resolved is None:
        return None
    path, line = resolved
    if path.suffix != ".py":
        return None
    try:
        if not path.is_file() or path.stat().st_size > MAX_BYTES:
            return None
        text = path.read_text(encoding="utf-8", errors="replace")
        tree = ast.parse(text, filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return None
    statement, chain = _statement(tree, line)
    if statement is None:
        return None
    lines = text.splitlines()
    code = lines[statement.lineno - 1].strip() if statement.lineno <= len(lines) else ""
    return HotSpot(
        location=f"{path}:{line}",
        code=code[:MAX_CODE],
        sql=_sql(statement),
        in_loop=_in_loop(statement, chain),
    )
