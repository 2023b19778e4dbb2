"""``analyse`` holds no database transaction while a model writes the narrative: it reads in
one transaction, calls out with none open, and stores in another."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.analysis import service
from app.core.db import Transactions
from app.core.settings import Settings
from app.models import Analysis
from tests.analysis.test_narrative import good_story, regressed_run, use_openai
from tests.llm.fake_llm import FakeLLM, Reply


class Watched:
    """The request's transactions, counting how many are open at any moment."""

    def __init__(self, maker: async_sessionmaker[AsyncSession]) -> None:
        self.transactions = Transactions(maker)
        self.open = 0
        self.opened = 0

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[AsyncSession]:
        async with self.transactions() as session:
            self.open += 1
            self.opened += 1
            try:
                yield session
            finally:
                self.open -= 1


async def test_no_transaction_is_open_while_the_model_answers(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    fake_llm: FakeLLM,
) -> None:
    ids = await regressed_run(session)
    await session.commit()
    use_openai(settings, fake_llm, timeout_s=5.0)
    fake_llm.enqueue(Reply(json=good_story(), delay_s=0.5))
    watched = Watched(sessionmaker)

    analysing = asyncio.create_task(
        service.analyse(
            watched,
            run_id=uuid.UUID(ids["run_id"]),
            baseline_run_ids=[uuid.UUID(b) for b in ids["baseline_run_ids"]],
            settings=settings,
            sessionmaker=sessionmaker,
        )
    )
    await asyncio.to_thread(fake_llm.wait_for_requests, 1)
    open_while_asking = watched.open
    analysis = await analysing

    assert open_while_asking == 0
    assert watched.opened == 2  # one to read, one to store
    assert analysis.narrative is not None
    async with sessionmaker() as fresh:
        stored = await fresh.get(Analysis, analysis.id)
    assert stored is not None
    assert stored.verdict == analysis.verdict == "fail"
