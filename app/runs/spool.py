"""Rows a run could not write while the database was unreachable, kept in a local file.

Design spec §8 ("metrics pipeline down: buffer locally; replay when restored"): every live
sample and event goes through the spool. When a write fails the record is appended to a JSON
lines file; the next write that succeeds first replays the file, in order, in the same
transaction. Nothing is lost as long as the worker lives.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import RunEvent, RunSample

log = logging.getLogger(__name__)


def _row(run_id: uuid.UUID, record: dict[str, Any]) -> RunSample | RunEvent:
    at = datetime.fromisoformat(record["at"])
    if record["type"] == "sample":
        sample = record["sample"]
        return RunSample(
            run_id=run_id,
            at=at,
            vus=sample["vus"],
            requests=sample["requests"],
            failures=sample["failures"],
            data=sample,
        )
    return RunEvent(
        run_id=run_id, at=at, kind=record["kind"], message=record["message"], data=record["data"]
    )


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
                    session.add_all([_row(self.run_id, r) for r in [*pending, record]])
            except Exception as exc:
                await asyncio.to_thread(self._append, record)
                log.warning(
                    "run %s: database unreachable (%s); %d records spooled to %s",
                    self.run_id,
                    type(exc).__name__,
                    len(pending) + 1,
                    self.path,
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
        session.add_all([_row(self.run_id, r) for r in pending])
        return len(pending)

    async def committed(self) -> None:
        await asyncio.to_thread(self.path.unlink, True)
