"""Keyset (cursor) pagination for every list route.

A page is the newest ``limit`` rows after a position in one fixed order (``created_at``
descending, then ``id``: unique, so no row is skipped or repeated when rows are added between
pages). The position travels as an opaque cursor — the last row's sort key, base64url JSON —
and the query seeks to it through an index (``(created_at, id) < (:at, :id)``), so page 500
costs what page 1 costs, unlike ``OFFSET``. The answer names the next page as a link
(``next`` in the body and a ``Link: <…>; rel="next"`` header) that repeats the filters.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

from fastapi import Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, tuple_

from app.core.errors import InvalidInput

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    next: str | None = Field(
        description="The next page (same filters, older rows); null on the last page"
    )
    limit: int


def encode(at: datetime, row_id: uuid.UUID) -> str:
    raw = json.dumps([at.isoformat(), str(row_id)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, row_id = json.loads(raw)
        return datetime.fromisoformat(at), uuid.UUID(row_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidInput(
            "the cursor is not one this service gave out: follow a page's `next` link as it "
            "is, or leave `cursor` out for the first page",
            code="pagination.bad_cursor",
        ) from exc


def seek(at_column: Any, id_column: Any, cursor: str | None) -> ColumnElement[bool] | None:
    """The condition for rows after ``cursor`` in (at desc, id desc) order, or None."""
    if cursor is None:
        return None
    at, row_id = decode(cursor)
    return tuple_(at_column, id_column) < tuple_(at, row_id)


def page(
    request: Request,
    response: Response,
    rows: Sequence[R],
    *,
    limit: int,
    key: Callable[[R], tuple[datetime, uuid.UUID]],
    out: Callable[[R], T],
) -> Page[T]:
    """``rows`` fetched with ``limit + 1``: a row beyond the limit means there is a next page,
    which starts after the sort ``key`` of this page's last row."""
    link = None
    if len(rows) > limit:
        rows = rows[:limit]
        url = request.url.remove_query_params("cursor").include_query_params(
            cursor=encode(*key(rows[-1])), limit=limit
        )
        link = f"{url.path}?{url.query}"
        response.headers["Link"] = f'<{link}>; rel="next"'
    return Page[T](items=[out(row) for row in rows], next=link, limit=limit)
