"""A finished run packed into one row: every reader sees the same run as before."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.analysis.repository import AnalysisRepository
from app.models import Plan, Run, RunArchive, RunHistogram, RunSample
from app.runs import archive, retention
from app.runs.fanout import Position, read_news
from app.runs.repository import RunRepository
from app.runs.service import merge_windows
from tests.runs.test_retention import ENDPOINTS, finished_run, live_records

API = "/api/agents/performance-agent"


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
        return (a is None or math.isnan(a)) and (b is None or math.isnan(b))
    return abs(a - b) <= max(abs(b) * 0.0015, 0.0011)  # 0.1 % grid, then 3 decimals


async def rows_of(session: AsyncSession, model: type[RunSample | RunHistogram], run: Run) -> int:
    query = select(func.count()).select_from(model).where(model.run_id == run.id)
    return int(await session.scalar(query) or 0)


async def pack(sessionmaker: async_sessionmaker[AsyncSession]) -> list[object]:
    return list(await retention.archive_finished_runs(sessionmaker, after_s=1, limit=10))


async def test_a_packed_run_reads_as_it_did_from_its_rows(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    run = await finished_run(session, live_records(150))
    await session.commit()
    reads, repo = AnalysisRepository(session), RunRepository(session)
    per_second = (await reads.per_second([run.id]))[run.id]
    seconds = await reads.seconds(run.id)
    windows = {name: await repo.histograms(run.id, name) for name in (*ENDPOINTS, "*")}
    merged = await repo.merged_histograms([run.id])

    assert await pack(sessionmaker) == [run.id]

    assert await rows_of(session, RunSample, run) == 0
    assert await rows_of(session, RunHistogram, run) == 0
    packed_per_second = (await reads.per_second([run.id]))[run.id]
    assert set(packed_per_second) == set(per_second)
    for name, columns in per_second.items():
        again = packed_per_second[name]
        assert list(again[0]) == list(columns[0])  # requests
        assert list(again[1]) == list(columns[1])  # failures
        for old, new in zip(columns[2:], again[2:], strict=True):
            assert all(close(n, o) for o, n in zip(old, new, strict=True))
    packed_seconds = await reads.seconds(run.id)
    assert [s[:4] for s in packed_seconds] == [s[:4] for s in seconds]
    assert all(close(a.p95, b.p95) for a, b in zip(packed_seconds, seconds, strict=True))
    assert [round(s.epoch, 3) for s in packed_seconds] == [round(s.epoch, 3) for s in seconds]
    for name, before in windows.items():
        after = await repo.histograms(run.id, name)
        assert [(w.start_s, w.seconds, w.requests) for w in after] == [
            (w.start_s, w.seconds, w.requests) for w in before
        ]
        assert np.array_equal(merge_windows(after).counts, merge_windows(before).counts)
    for key, histogram in (await repo.merged_histograms([run.id])).items():
        assert np.array_equal(histogram.counts, merged[key].counts)
        assert histogram.total == merged[key].total


async def test_a_packed_run_replays_on_its_stream_with_the_same_sample_ids(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    run = await finished_run(session, live_records(40))
    await session.commit()
    before = await read_news(sessionmaker, run.id, Position())
    await pack(sessionmaker)

    after = await read_news(sessionmaker, run.id, Position())
    resumed = await read_news(
        sessionmaker, run.id, Position(sample=before.messages[-15].sample_id or 0)
    )

    ids = [m.sample_id for m in before.messages if m.kind == "sample"]
    assert [m.sample_id for m in after.messages if m.kind == "sample"] == ids
    first_before = next(json.loads(m.data) for m in before.messages if m.kind == "sample")
    first_after = next(json.loads(m.data) for m in after.messages if m.kind == "sample")
    assert first_after["total_requests"] == first_before["total_requests"]
    assert set(first_after["endpoints"]) == set(first_before["endpoints"])
    assert len([m for m in resumed.messages if m.kind == "sample"]) < len(ids)


async def test_an_analysis_against_a_packed_baseline_is_the_analysis_against_its_rows(
    client: AsyncClient, session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    baseline = await finished_run(session, live_records(120))
    plan = await session.get(Plan, baseline.plan_id)
    candidate = await finished_run(session, live_records(120, seed=4), plan=plan, days_ago=29)
    await session.commit()
    body = {"run_id": str(candidate.id), "baseline_run_ids": [str(baseline.id)]}
    from_rows = (await client.post(f"{API}/analyse", json=body)).json()

    assert set(await pack(sessionmaker)) == {baseline.id, candidate.id}
    packed = await client.post(f"{API}/analyse", json=body)

    assert packed.status_code == 201, packed.text
    verdicts = {(c["endpoint"], c["sli"]): c["verdict"] for c in from_rows["comparisons"]}
    assert {
        (c["endpoint"], c["sli"]): c["verdict"] for c in packed.json()["comparisons"]
    } == verdicts
    assert any(v == "unchanged" for v in verdicts.values())


async def test_a_packed_run_is_rolled_up_inside_its_archive(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    run_id = (await finished_run(session, live_records(150))).id
    await session.commit()
    await pack(sessionmaker)
    repo = RunRepository(session)
    before = {name: merge_windows(await repo.histograms(run_id, name)) for name in ENDPOINTS}
    size = len((await session.get(RunArchive, run_id) or RunArchive(samples=b"")).samples)

    assert await retention.roll_up_finished_runs(sessionmaker, retention_days=14) == [run_id]

    session.expire_all()
    packed = await session.get(RunArchive, run_id)
    assert packed is not None
    minutes = archive.unpack_samples(packed.samples)
    assert [(s.data["elapsed_s"], s.data["span_s"]) for s in minutes] == [
        (0, 60),
        (60, 60),
        (120, 30),
    ]
    assert len(packed.samples) < size / 5
    for name in ENDPOINTS:
        after = merge_windows(await repo.histograms(run_id, name))
        assert np.array_equal(after.counts, before[name].counts)
    assert len(await repo.histograms(run_id, "*")) == 3


async def test_a_run_that_cannot_be_packed_keeps_its_rows_and_does_not_block_the_others(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    broken = await finished_run(session, live_records(30), days_ago=31)
    window = (
        await session.scalars(select(RunHistogram).where(RunHistogram.run_id == broken.id))
    ).first()
    assert window is not None
    window.count += 1  # its buckets no longer add up to its count
    healthy = await finished_run(session, live_records(30), days_ago=30)
    await session.commit()

    packed = await pack(sessionmaker)
    again = await pack(sessionmaker)

    assert healthy.id in packed
    assert broken.id not in packed
    assert again == []
    assert await rows_of(session, RunSample, broken) == 30
    events = await RunRepository(session).events(broken.id)
    assert [e.kind for e in events if e.kind == "archive_failed"] == ["archive_failed"]


async def test_a_sample_stored_after_its_run_was_read_for_packing_stays_a_row(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    run = await finished_run(session, live_records(20))
    await session.commit()
    repo = RunRepository(session)
    rows = await repo.sample_rows(run.id)
    late = RunSample(run_id=run.id, at=rows[-1].at, vus=1, requests=1, failures=0,
                     data={"elapsed_s": 99, "total_requests": 1})  # fmt: skip
    session.add(late)
    await session.flush()

    await repo.store_archive(
        run.id, samples=archive.pack_samples(rows), windows=archive.pack_windows([]),
        sample_ids=[r.id for r in rows], window_ids=[],
    )  # fmt: skip

    assert [r.id for r in await repo.sample_rows(run.id)] == [late.id]


def test_integer_readings_come_back_as_integers() -> None:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    data = {"elapsed_s": 0, "total_requests": 5, "vus": 1, "requests": 5, "failures": 0,
            "system": {"cores": 2, "cpu_percent": 41.5}}  # fmt: skip
    blob = archive.pack_samples([archive.SampleRow(1, at, 1, 5, 0, data)])

    (second,) = archive.overall_seconds(blob)

    assert second[7] == {"cores": 2, "cpu_percent": 41.5}
    assert isinstance(second[7]["cores"], int)


def test_samples_of_any_shape_round_trip() -> None:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    samples = [
        archive.SampleRow(3, at, 2, 10, 1, {"vus": 2, "note": "warm-up", "ok": True,
                                            "latency_ms": {"p95": 12.345, "p99": None}}),
        archive.SampleRow(7, at, 3, 12, 0, {"vus": 3, "latency_ms": {"p95": 600000.0},
                                            "extra": {"list": [1, 2]}, "ratio": 0.25}),
    ]  # fmt: skip

    back = archive.unpack_samples(archive.pack_samples(samples))

    assert [s.id for s in back] == [3, 7]
    assert back[0].data["note"] == "warm-up"
    assert back[0].data["ok"] is True
    assert back[0].data["latency_ms"]["p99"] is None
    assert abs(back[0].data["latency_ms"]["p95"] / 12.345 - 1) < 0.0015
    assert "note" not in back[1].data
    assert back[1].data["extra"] == {"list": [1, 2]}
    assert back[1].data["ratio"] == 0.25


@pytest.mark.parametrize("blob", [b"", b"\x09\x00\x00\x00\x00", b"\x01\x05\x00\x00\x00not deflate"])
def test_a_damaged_archive_is_refused(blob: bytes) -> None:
    with pytest.raises(ValueError, match="archive"):
        archive.unpack_samples(blob)
