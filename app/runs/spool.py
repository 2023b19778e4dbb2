"""Rows a run could not write while the database was unreachable, kept in a local file.

Design spec §8 ("metrics pipeline down: buffer locally; replay when restored"): every live
sample, window of histograms and event goes through the spool. When a write fails the record
is appended to a JSON lines file; the next write that succeeds first replays the file, in
order, in the same transaction. Nothing is lost as long as the worker lives.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import RunEvent, RunHistogram, RunSample

log = logging.getLogger(__name__)

# The database is away (down, unreachable, connection cut): what the spool waits out.
UNREACHABLE = (OSError, TimeoutError, OperationalError, InterfaceError)


Rows = dict[type[RunSample | RunEvent | RunHistogram], list[dict[str, Any]]]


def _rows(run_id: uuid.UUID, records: list[dict[str, Any]]) -> Rows:
    """Column values by table: one multi-row INSERT each, without the ORM's unit of work (a
    live second is written while k6 shares the machine; every millisecond here is k6's)."""
    rows: Rows = {RunSample: [], RunHistogram: [], RunEvent: []}
    for record in records:
        at = datetime.fromisoformat(record["at"])
        if record["type"] == "sample":
            sample = record["sample"]
            rows[RunSample].append(
                {
                    "run_id": run_id,
                    "at": at,
                    "vus": sample["vus"],
                    "requests": sample["requests"],
                    "failures": sample["failures"],
                    "data": sample,
                }
            )
        elif record["type"] == "histograms":
            rows[RunHistogram].extend(
                {
                    "run_id": run_id,
                    "attempt": record["attempt"],
                    "at": at,
                    "start_s": record["start_s"],
                    "seconds": record["seconds"],
                    "endpoint": series["endpoint"],
                    "requests": series["requests"],
                    "failures": series["failures"],
                    "count": series["count"],
                    "sum_ms": series["sum_ms"],
                    "min_ms": series["min_ms"],
                    "max_ms": series["max_ms"],
                    "counts": base64.b64decode(series["counts"]),
                }
                for series in record["series"]
            )
        else:
            rows[RunEvent].append(
                {
                    "run_id": run_id,
                    "at": at,
                    "kind": record["kind"],
                    "message": record["message"],
                    "data": record["data"],
                }
            )
    return rows


async def _insert(session: AsyncSession, run_id: uuid.UUID, records: list[dict[str, Any]]) -> None:
    for model, values in _rows(run_id, records).items():
        if values:
            await session.execute(insert(model), values)


class Spool:
    def __init__(self, path: Path, run_id: uuid.UUID) -> None:
        self.path = path
        self.run_id = run_id
        self.lock = asyncio.Lock()
        # Looked up once, then kept: a write need not touch the disk while nothing waits.
        self.spooled = path.exists()

    def _pending(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]

    def _append(self, records: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as spool:
            spool.writelines(json.dumps(record, default=str) + "\n" for record in records)

    async def _forget(self) -> None:
        await asyncio.to_thread(self.path.unlink, True)
        self.spooled = False

    async def write(
        self, sessionmaker: async_sessionmaker[AsyncSession], *records: dict[str, Any]
    ) -> bool:
        """Store ``records`` (one transaction) after anything spooled before them; spool them
        if the database is away. True when all of them are stored."""
        async with self.lock:
            pending = await asyncio.to_thread(self._pending) if self.spooled else []
            try:
                async with sessionmaker() as session, session.begin():
                    await _insert(session, self.run_id, [*pending, *records])
            except UNREACHABLE as exc:
                await asyncio.to_thread(self._append, list(records))
                self.spooled = True
                log.warning(
                    "run %s: database unreachable (%s); %d records spooled to %s",
                    self.run_id,
                    type(exc).__name__,
                    len(pending) + len(records),
                    self.path,
                )
                return False
            except SQLAlchemyError as exc:
                if len(records) > 1 or pending:
                    # One record is bad: find it by writing one at a time, keep the rest.
                    return await self._one_by_one(sessionmaker, [*pending, *records])
                # The database answered and refused this record (bad data): spooling it would
                # block every later write behind it. Drop it, loudly; keep the rest.
                log.error(
                    "run %s: a %s record was refused and dropped: %s",
                    self.run_id,
                    records[0].get("type") if records else None,
                    exc,
                )
                return False
            if pending:
                log.info("run %s: replayed %d spooled records", self.run_id, len(pending))
                await self._forget()
            return True

    async def _one_by_one(
        self, sessionmaker: async_sessionmaker[AsyncSession], records: list[dict[str, Any]]
    ) -> bool:
        if self.spooled:
            await self._forget()  # they are all in ``records`` now, in order
        stored = True
        for number, record in enumerate(records):
            try:
                async with sessionmaker() as session, session.begin():
                    await _insert(session, self.run_id, [record])
            except UNREACHABLE:
                # Gone meanwhile: this record and the rest wait, in order, for the next write.
                await asyncio.to_thread(self._append, records[number:])
                self.spooled = True
                return False
            except SQLAlchemyError as exc:
                log.error(
                    "run %s: a %s record was refused and dropped: %s",
                    self.run_id,
                    record.get("type"),
                    exc,
                )
                stored = False
        return stored

    async def replay(self, session: AsyncSession) -> int:
        """Add what is spooled to ``session`` (the caller's transaction); the file goes once it
        commits — call ``committed()`` then."""
        pending = await asyncio.to_thread(self._pending) if self.spooled else []
        await _insert(session, self.run_id, pending)
        return len(pending)

    async def committed(self) -> None:
        await self._forget()
