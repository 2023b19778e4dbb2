"""Live fan-out: one reader per run per API process, however many clients watch it.

The worker stores a run's samples and events; a trigger on those tables (and on a run's
state) sends ``NOTIFY perf_agent_runs, '<run id>'`` when the worker's transaction commits
(migration 0023), so every API process — whichever worker ran the test — hears of it. Each
process keeps one ``LISTEN`` connection (``Hub``) and, per watched run, one ``Feed``: woken
by a notification (or, as a safety net, every ``LISTENING_POLL_S``; every ``POLL_S`` when
the process could not listen), it reads what is new in one short session and hands the
messages, their JSON encoded once, to each client's queue. Database load and CPU grow with
the runs being watched, not with the watchers.

Every ``sample`` and ``event`` carries an SSE ``id`` — the client's position, ``<last sample
id>.<last event id>`` — so a client that reconnects with ``Last-Event-ID`` resumes where it
left off (its catch-up is read once, for that client alone). A client that cannot keep up
(``MAX_QUEUED`` messages behind) is dropped, and resumes the same way; ``retry:`` tells
browsers how soon to.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.models import Run, RunArchive, RunEvent, RunSample, RunStatus
from app.runs import archive

log = logging.getLogger(__name__)

CHANNEL = "perf_agent_runs"
POLL_S = 1.0
LISTENING_POLL_S = 5.0
KEEPALIVE_S = 15.0
RETRY_MS = 2000
MAX_QUEUED = 600
# A long run's seconds are replayed to a new viewer in batches of this many, each once the
# viewers' queues have room for it (a 30-minute run is 1,800 seconds: read at once, they
# overflowed every queue and cost a reconnect, and the first second waited for the last).
CATCH_UP_BATCH = 250
# The first batch is smaller: a viewer's chart has something to draw while the rest is read.
FIRST_BATCH = 50
DRAIN_WAIT_S = 10.0
DRAIN_POLL_S = 0.02
RELISTEN_S = 5.0


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, default=str, separators=(",", ":"))


@dataclass(frozen=True)
class Position:
    """How far a client has read: the last sample id and the last event id it was sent."""

    sample: int = 0
    event: int = 0

    @property
    def token(self) -> str:
        return f"{self.sample}.{self.event}"

    @classmethod
    def parse(cls, token: str | None) -> Position:
        """A ``Last-Event-ID``; anything unreadable starts from the beginning."""
        if not token:
            return cls()
        try:
            sample, _, event = token.strip().partition(".")
            return cls(max(0, int(sample)), max(0, int(event or 0)))
        except ValueError:
            return cls()


@dataclass(frozen=True)
class Message:
    kind: str  # sample, event, status, end
    data: str  # JSON, encoded once for every client
    sample_id: int | None = None
    event_id: int | None = None


@dataclass
class News:
    status: str | None
    messages: list[Message]
    finished: bool
    more: bool = False  # the read stopped at its limit: what follows needs another


async def read_news(
    maker: async_sessionmaker[AsyncSession],
    run_id: uuid.UUID,
    after: Position,
    *,
    limit: int | None = None,
) -> News:
    """What is new since ``after``: events, then samples, in id order; one session. With
    ``limit``, at most that many samples (``more`` says whether others follow)."""
    async with maker() as session:
        row = (
            await session.execute(select(Run.status, Run.error).where(Run.id == run_id))
        ).one_or_none()
        if row is None:
            return News(status=None, messages=[], finished=True)
        events = await session.scalars(
            select(RunEvent)
            .where(RunEvent.run_id == run_id, RunEvent.id > after.event)
            .order_by(RunEvent.id)
        )
        # The archive before the rows: a pack committing between the reads then shows a
        # second's worth of nothing, never every sample twice.
        packed = await session.get(RunArchive, run_id)
        query = (
            select(RunSample)
            .where(RunSample.run_id == run_id, RunSample.id > after.sample)
            .order_by(RunSample.id)
        )
        if limit is not None:
            query = query.limit(limit + 1)
        samples = await session.scalars(query)
        messages = [
            Message(
                "event",
                _json({"at": e.at, "kind": e.kind, "message": e.message, "data": e.data}),
                event_id=e.id,
            )
            for e in events
        ]
        replayed: list[Any] = list(samples)
        if packed is not None:  # a finished run's seconds, packed (app/runs/archive.py)
            unpacked = await asyncio.to_thread(archive.unpack_samples, packed.samples)
            replayed = sorted(
                [*(s for s in unpacked if s.id > after.sample), *replayed], key=lambda s: s.id
            )
        more = limit is not None and len(replayed) > limit
        if more:
            replayed = replayed[:limit]
        messages += [
            Message("sample", _json({"at": s.at, **s.data}), sample_id=s.id) for s in replayed
        ]
    status, error = row
    finished = RunStatus(status).finished and not more
    if finished:
        messages.append(Message("end", _json({"status": status, "error": error})))
    return News(status=status, messages=messages, finished=finished, more=more)


@dataclass(eq=False)
class Subscriber:
    position: Position
    queue: asyncio.Queue[Message | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=MAX_QUEUED)
    )
    dropped: bool = False

    def offer(self, message: Message | None) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            # Too slow: let it go (it resumes from its Last-Event-ID) rather than buffer
            # without bound for it.
            self.dropped = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(None)


class Feed:
    """One run's reader in this process."""

    def __init__(self, hub: Hub, run_id: uuid.UUID, start: Position) -> None:
        self.hub = hub
        self.run_id = run_id
        self.position = start
        self.status: str | None = None
        self.subscribers: set[Subscriber] = set()
        self.wake = asyncio.Event()
        self.task = asyncio.create_task(self._run(), name=f"feed-{run_id}")

    async def _drained(self) -> None:
        """Until every viewer's queue has room for another batch (a viewer still without room
        after ``DRAIN_WAIT_S`` is dropped by the next offer, and resumes by Last-Event-ID)."""
        room = MAX_QUEUED - CATCH_UP_BATCH - 2
        for _ in range(int(DRAIN_WAIT_S / DRAIN_POLL_S)):
            if all(s.queue.qsize() <= room for s in self.subscribers if not s.dropped):
                return
            await asyncio.sleep(DRAIN_POLL_S)

    async def _run(self) -> None:
        try:
            limit = FIRST_BATCH
            while self.subscribers:
                self.wake.clear()  # before reading: a notification during the read counts
                news = await read_news(self.hub.maker, self.run_id, self.position, limit=limit)
                limit = CATCH_UP_BATCH
                self.hub.reads += 1
                for message in news.messages:
                    self.position = Position(
                        message.sample_id or self.position.sample,
                        message.event_id or self.position.event,
                    )
                if news.status is not None and news.status != self.status:
                    self.status = news.status
                    news.messages.append(Message("status", _json({"status": news.status})))
                for subscriber in list(self.subscribers):
                    for message in news.messages:
                        subscriber.offer(message)
                if news.finished:
                    for subscriber in list(self.subscribers):
                        subscriber.offer(None)
                    return
                if news.more:  # replaying: the next batch once the viewers have room for it
                    await self._drained()
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=self.hub.poll_s)
        except Exception:
            log.exception("live feed of run %s failed", self.run_id)
            for subscriber in list(self.subscribers):
                subscriber.offer(None)
        finally:
            if self.hub.feeds.get(self.run_id) is self:
                del self.hub.feeds[self.run_id]


def _render(message: Message, position: Position) -> str:
    lines = [f"event: {message.kind}"]
    if message.sample_id is not None or message.event_id is not None:
        lines.append(f"id: {position.token}")
    lines.append(f"data: {message.data}")
    return "\n".join(lines) + "\n\n"


class Hub:
    """This process's live fan-out: its LISTEN connection and a Feed per watched run."""

    def __init__(self, maker: async_sessionmaker[AsyncSession]) -> None:
        self.maker = maker
        self.feeds: dict[uuid.UUID, Feed] = {}
        self.listening = False
        self.reads = 0  # database reads by feeds: grows with runs watched, not with clients
        self._listener: asyncio.Task[None] | None = None
        self._dsn = _dsn_of(maker)

    @property
    def poll_s(self) -> float:
        return LISTENING_POLL_S if self.listening else POLL_S

    def _ensure_listening(self) -> None:
        if self._dsn is not None and self._listener is None:
            self._listener = asyncio.create_task(self._listen(self._dsn), name="run-listener")

    async def _listen(self, dsn: str) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening = True
                    for feed in self.feeds.values():  # what happened while not listening
                        feed.wake.set()
                    async for notify in conn.notifies():
                        self._notified(notify.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("live fan-out cannot LISTEN (%s); polling every %s s", exc, POLL_S)
            self.listening = False
            await asyncio.sleep(RELISTEN_S)

    def _notified(self, payload: str) -> None:
        try:
            feed = self.feeds.get(uuid.UUID(payload))
        except ValueError:
            return
        if feed is not None:
            feed.wake.set()

    async def watch(self, run_id: uuid.UUID, after: Position) -> AsyncIterator[str]:
        """One client's stream: its catch-up from ``after``, then the run's shared feed."""
        self._ensure_listening()
        subscriber = Subscriber(position=after)
        feed = self.feeds.get(run_id)
        if feed is None or feed.task.done():
            feed = self.feeds[run_id] = Feed(self, run_id, after)
        feed.subscribers.add(subscriber)
        try:
            yield f"retry: {RETRY_MS}\n\n"
            sent_status: str | None = None
            if feed.position != after or feed.status is not None:
                # The feed is elsewhere (or past its first read): this client catches up
                # alone, before what the feed queued for it since it joined (all later).
                limit = FIRST_BATCH
                while True:
                    catch_up = await read_news(self.maker, run_id, subscriber.position, limit=limit)
                    limit = CATCH_UP_BATCH
                    for message in catch_up.messages:
                        if message.kind == "end":
                            continue
                        text = self._deliver(subscriber, message)
                        if text:
                            yield text
                    if not catch_up.more:
                        break
                if catch_up.status is not None:
                    sent_status = _json({"status": catch_up.status})
                    yield _render(Message("status", sent_status), subscriber.position)
            while True:
                try:
                    async with asyncio.timeout(KEEPALIVE_S):
                        queued = await subscriber.queue.get()
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if queued is None:
                    if subscriber.dropped:
                        return
                    # The feed ended: the run finished (or the feed failed); say how.
                    final = await read_news(self.maker, run_id, subscriber.position)
                    for rest in final.messages:
                        text = self._deliver(subscriber, rest)
                        if text:
                            yield text
                    return
                if queued.kind == "status":
                    if queued.data == sent_status:
                        continue
                    sent_status = queued.data
                text = self._deliver(subscriber, queued)
                if text:
                    yield text
                if queued.kind == "end":
                    return
        finally:
            feed.subscribers.discard(subscriber)
            if not feed.subscribers:
                feed.wake.set()  # let it see it is unwatched and stop

    @staticmethod
    def _deliver(subscriber: Subscriber, message: Message) -> str | None:
        """The message as this client's SSE text, or None when it was sent already."""
        at = subscriber.position
        if message.sample_id is not None:
            if message.sample_id <= at.sample:
                return None
            at = Position(message.sample_id, at.event)
        elif message.event_id is not None:
            if message.event_id <= at.event:
                return None
            at = Position(at.sample, message.event_id)
        subscriber.position = at
        return _render(message, at)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        for feed in list(self.feeds.values()):
            feed.task.cancel()


def hub_of(app: Any) -> Hub:
    """The app's hub, made on first use (its sessions are the app's)."""
    hub: Hub | None = getattr(app.state, "live_hub", None)
    if hub is None:
        hub = app.state.live_hub = Hub(app.state.sessionmaker)
    return hub


def _dsn_of(maker: async_sessionmaker[AsyncSession]) -> str | None:
    """The database to LISTEN on: the engine's. A session bound to one connection (a test's
    transaction, never committed) has nothing to hear: the feeds poll."""
    bind = maker.kw.get("bind")
    if not isinstance(bind, AsyncEngine):
        return None
    url = bind.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)
