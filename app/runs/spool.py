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

from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import RunEvent, RunHistogram, RunSample

log = logging.getLogger(__name__)

# The database is away (down, unreachable, connection cut): what the spool waits out.
UNREACHABLE = (OSError, TimeoutError, OperationalError, InterfaceError)


def _rows(run_id: uuid.UUID, record: dict[str, Any]) -> list[RunSample | RunEvent | RunHistogram]:
    at = datetime.fromisoformat(record["at"])
    if record["type"] == "sample":
        sample = record["sample"]
        return [
            RunSample(
                run_id=run_id,
                at=at,
                vus=sample["vus"],
                requests=sample["requests"],
                failures=sample["failures"],
                data=sample,
            )
        ]
    if record["type"] == "histograms":
        return [
            RunHistogram(
                run_id=run_id,
                attempt=record["attempt"],
                at=at,
                start_s=record["start_s"],
                seconds=record["seconds"],
                endpoint=series["endpoint"],
                requests=series["requests"],
                failures=series["failures"],
                count=series["count"],
                sum_ms=series["sum_ms"],
                min_ms=series["min_ms"],
                max_ms=series["max_ms"],
                counts=base64.b64decode(series["counts"]),
            )
            for series in record["series"]
        ]
    return [
        RunEvent(
            run_id=run_id,
            at=at,
            kind=record["kind"],
            message=record["message"],
            data=record["data"],
        )
    ]


def _all_rows(
    run_id: uuid.UUID, records: list[dict[str, Any]]
) -> list[RunSample | RunEvent | RunHistogram]:
    return [row for record in records for row in _rows(run_id, record)]


class Spool:
    def __init__(self, path: Path, run_id: uuid.UUID) -> None:
        self.path = path
        self.run_id = run_id
        self.lock = asyncio.Lock()

    def _pending(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]

    def _append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as spool:
            spool.write(json.dumps(record, default=str) + "\n")

    async def write(
        self, sessionmaker: async_sessionmaker[AsyncSession], record: dict[str, Any]
    ) -> bool:
        """Store ``record`` after anything spooled before it; spool it if that fails."""
        async with self.lock:
            pending = await asyncio.to_thread(self._pending)
            try:
                async with sessionmaker() as session, session.begin():
                    session.add_all(_all_rows(self.run_id, [*pending, record]))
            except UNREACHABLE as exc:
                await asyncio.to_thread(self._append, record)
                log.warning(
                    "run %s: database unreachable (%s); %d records spooled to %s",
                    self.run_id,
                    type(exc).__name__,
                    len(pending) + 1,
                    self.path,
                )
                return False
            except SQLAlchemyError as exc:
                # The database answered and refused this record (bad data): spooling it would
                # block every later write behind it. Drop it, loudly; keep the rest.
                log.error(
                    "run %s: a %s record was refused and dropped: %s",
                    self.run_id,
                    record.get("type"),
                    exc,
                )
                return False
            if pending:
                log.info("run %s: replayed %d spooled records", self.run_id, len(pending))
                await asyncio.to_thread(self.path.unlink, True)
            return True

    async def replay(self, session: AsyncSession) -> int:
        """Add what is spooled to ``session`` (the caller's transaction); the file goes once it
        commits — call ``committed()`` then."""
        pending = await asyncio.to_thread(self._pending)
        session.add_all(_all_rows(self.run_id, pending))
        return len(pending)

    async def committed(self) -> None:
        await asyncio.to_thread(self.path.unlink, True)
