"""API keys: made, listed and revoked with the CLI, stored hashed, refused once revoked."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.auth import Scope
from app.core.errors import InvalidInput
from app.identity import service
from app.models import ApiKey, AuditEvent
from app.models.base import utcnow
from tests.builders import API
from tests.conftest import Clients


def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "keys", *args],
        env={**os.environ, "PERF_AGENT_DATABASE_URL": database_url, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_a_key_is_stored_hashed_with_a_prefix_to_recognise_it(session: AsyncSession) -> None:
    row, key = await service.create_key(
        session, owner="ci-checkout", scopes=[Scope.plan, Scope.execute], actor=service.CLI_ACTOR
    )
    stored = await session.execute(text("SELECT * FROM api_keys WHERE id = :id"), {"id": row.id})
    values = [str(v) for v in stored.mappings().one().values()]

    assert key.startswith("pa_")
    assert len(key) >= 40
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert row.prefix == key[:11]
    assert row.scopes == ["execute", "plan"]
    assert not [v for v in values if key in v]  # the key itself is nowhere
    [event] = (
        (await session.execute(select(AuditEvent).where(AuditEvent.object_id == str(row.id))))
        .scalars()
        .all()
    )
    assert (event.action, event.actor, event.actor_key_id) == ("key.created", "cli (local)", None)
    assert event.detail == {
        "owner": "ci-checkout",
        "scopes": ["execute", "plan"],
        "prefix": key[:11],
    }


async def test_the_cli_creates_lists_and_revokes_keys(
    database_url: str,
    committed: async_sessionmaker[AsyncSession],
    clients: Clients,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The CLI revokes from another process, which this one hears of when its belief in the
    # key expires (KEY_CACHE_S; test_a_key_is_believed_for_a_second_then_asked_about_again):
    # here at once.
    monkeypatch.setattr(service, "KEY_CACHE_S", 0.0)
    created = cli(database_url, "create", "--owner", "ci-checkout", "--scope", "read", "--quiet")
    chatty = cli(database_url, "create", "--owner", "ana@example.com", "--scope", "admin")
    key = created.stdout.strip()

    assert created.returncode == 0, created.stderr
    assert created.stdout.count("\n") == 1
    assert key.startswith("pa_")
    assert created.stderr == ""
    assert chatty.stdout.strip().startswith("pa_")  # the key alone on stdout, the rest on stderr
    assert "ana@example.com" in chatty.stderr
    assert "shown only this once" in chatty.stderr

    async with committed() as session:
        row = (
            await session.execute(select(ApiKey).where(ApiKey.key_hash == service.hash_key(key)))
        ).scalar_one()
    listed = cli(database_url, "list")
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if str(row.id) in line)
    assert "ci-checkout" in line
    assert key[:11] in line
    assert "read" in line
    assert key not in listed.stdout

    committed_clients = Clients(clients.app.state.settings, committed)
    with_key = committed_clients.using(key)
    before = await with_key.get(f"{API}/plans")
    revoked = cli(database_url, "revoke", str(row.id))
    after = await with_key.get(f"{API}/plans")
    again = cli(database_url, "revoke", str(row.id))
    unknown = cli(database_url, "revoke", str(uuid.uuid4()))
    await with_key.aclose()

    assert before.status_code == 200
    assert revoked.returncode == 0, revoked.stderr
    assert f"revoked key {row.id}" in revoked.stdout
    assert after.status_code == 401
    assert after.json()["code"] == "auth.invalid_key"
    assert "revoked" in after.json()["detail"]
    assert again.returncode == 1
    assert "already revoked" in again.stdout
    assert unknown.returncode == 1
    assert "no key" in unknown.stdout
    async with committed() as session:
        actions = (
            await session.execute(
                select(AuditEvent.action, AuditEvent.actor).where(
                    AuditEvent.object_id == str(row.id)
                )
            )
        ).all()
    assert sorted(actions) == [("key.created", "cli (local)"), ("key.revoked", "cli (local)")]


async def test_an_unknown_scope_is_refused_by_the_cli(database_url: str) -> None:
    done = cli(database_url, "create", "--owner", "x", "--scope", "superuser")

    assert done.returncode == 2
    assert "superuser" in done.stderr
    assert done.stdout == ""


async def test_a_revoked_key_is_a_401(clients: Clients, session: AsyncSession) -> None:
    row, key = await service.create_key(
        session, owner="gone@example.com", scopes=[Scope.read], actor=service.CLI_ACTOR
    )
    await session.commit()
    client = clients.using(key)
    ok = await client.get(f"{API}/plans")

    await service.revoke_key(session, row.id, actor=service.CLI_ACTOR)
    await session.commit()
    refused = await client.get(f"{API}/plans")

    assert ok.status_code == 200
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    problem = refused.json()
    assert problem["code"] == "auth.invalid_key"
    assert "gone@example.com" in problem["detail"]
    assert "revoked" in problem["detail"]


async def test_a_use_is_recorded_at_most_once_a_minute(
    clients: Clients, session: AsyncSession
) -> None:
    row, key = await service.create_key(
        session, owner="ana@example.com", scopes=[Scope.read], actor=service.CLI_ACTOR
    )
    await session.commit()
    client = clients.using(key)

    await client.get(f"{API}/plans")
    await session.refresh(row)
    first = row.last_used_at
    await client.get(f"{API}/plans")
    await session.refresh(row)

    assert first is not None
    assert row.last_used_at == first


async def test_a_key_needs_an_owner_and_a_scope(session: AsyncSession) -> None:
    with pytest.raises(InvalidInput, match="owner"):
        await service.create_key(session, owner="  ", scopes=[Scope.read], actor=service.CLI_ACTOR)
    with pytest.raises(InvalidInput, match="at least one scope"):
        await service.create_key(session, owner="ana", scopes=[], actor=service.CLI_ACTOR)


async def test_a_key_is_believed_for_a_second_then_asked_about_again(
    clients: Clients, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    row, key = await service.create_key(
        session, owner="poller", scopes=[Scope.read], actor=service.CLI_ACTOR
    )
    await session.commit()
    client = clients.using(key)
    clock = [1000.0]
    monkeypatch.setattr(service, "_clock", lambda: clock[0])
    assert (await client.get(f"{API}/plans")).status_code == 200
    # Revoked behind this process's back (as the CLI does, from another process).
    await session.execute(update(ApiKey).where(ApiKey.id == row.id).values(revoked_at=utcnow()))
    await session.commit()

    clock[0] += service.KEY_CACHE_S / 2
    believed = await client.get(f"{API}/plans")
    clock[0] += service.KEY_CACHE_S
    refused = await client.get(f"{API}/plans")

    assert believed.status_code == 200
    assert refused.status_code == 401
