"""API keys and the audit trail.

A key is ``pa_`` + 32 random bytes (URL-safe base64); only its SHA-256 is stored — a fast hash
is enough for a key that cannot be guessed — with its first characters as a prefix to recognise
it by. It is shown once, to whoever creates it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.auth import InvalidKey, Principal, Scope, parse_scopes
from app.core.errors import Conflict, InvalidInput, NotFound
from app.identity.repository import AuditRepository, KeyRepository
from app.models import ApiKey, AuditEvent
from app.models.base import utcnow

KEY_PREFIX = "pa_"
SHOWN_PREFIX_CHARS = len(KEY_PREFIX) + 8  # 48 of the 256 bits: a name for it, not a secret
LAST_USED_RESOLUTION = timedelta(minutes=1)

# Who created or revoked a key from the command line (someone with access to the database).
CLI_ACTOR = Principal(key_id=None, owner="cli (local)", scopes=frozenset({Scope.admin}))


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_row(key: str, *, owner: str, scopes: Iterable[Scope]) -> ApiKey:
    """The row that stores ``key`` (hashed)."""
    names = sorted({Scope(scope).value for scope in scopes})
    return ApiKey(
        id=uuid.uuid4(),
        owner=owner,
        prefix=key[:SHOWN_PREFIX_CHARS],
        key_hash=hash_key(key),
        scopes=names,
    )


def principal_of(key: ApiKey) -> Principal:
    return Principal(key_id=key.id, owner=key.owner, scopes=parse_scopes(key.scopes))


async def record(
    session: AsyncSession,
    actor: Principal,
    action: str,
    object_type: str,
    object_id: uuid.UUID | str | None,
    **detail: Any,
) -> AuditEvent:
    """An audit event, in the caller's transaction: it commits with the change it records."""
    event = AuditEvent(
        at=utcnow(),
        actor_key_id=actor.key_id,
        actor=actor.owner,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        detail=jsonable_encoder(detail),
    )
    return await AuditRepository(session).add(event)


async def audit_page(
    session: AsyncSession, *, limit: int, before: int | None
) -> Sequence[AuditEvent]:
    return await AuditRepository(session).page(limit=limit, before=before)


async def create_key(
    session: AsyncSession, *, owner: str, scopes: Iterable[Scope], actor: Principal
) -> tuple[ApiKey, str]:
    """A new key for ``owner``: (its row, the key itself — the only time it exists in clear)."""
    owner = owner.strip()
    if not owner or len(owner) > 200:
        raise InvalidInput("a key needs an owner of 1 to 200 characters", code="key.owner")
    chosen = set(scopes)
    if not chosen:
        raise InvalidInput(
            f"a key needs at least one scope: {', '.join(Scope)}", code="key.no_scope"
        )
    key = new_key()
    row = await KeyRepository(session).add(key_row(key, owner=owner, scopes=chosen))
    await record(
        session,
        actor,
        "key.created",
        "api_key",
        row.id,
        owner=owner,
        scopes=row.scopes,
        prefix=row.prefix,
    )
    return row, key


async def list_keys(session: AsyncSession) -> Sequence[ApiKey]:
    return await KeyRepository(session).list_all()


async def revoke_key(session: AsyncSession, key_id: uuid.UUID, *, actor: Principal) -> ApiKey:
    """From now on the key is refused (a 401 on its next request); the row stays."""
    key = await KeyRepository(session).get(key_id, for_update=True)
    if key is None:
        raise NotFound(f"no key {key_id}", code="key.not_found")
    if key.revoked_at is not None:
        raise Conflict(
            f"key {key_id} ({key.prefix}…, {key.owner}) was already revoked at "
            f"{key.revoked_at.isoformat(timespec='seconds')}",
            code="key.revoked",
        )
    key.revoked_at = utcnow()
    await session.flush()
    forget_keys()
    await record(
        session, actor, "key.revoked", "api_key", key.id, owner=key.owner, prefix=key.prefix
    )
    return key


# A key found valid is believed for this long without asking the database again: a poller
# making 500 requests a second costs one lookup a second. A key revoked in this process is
# refused at once (revoke_key forgets it); revoked elsewhere (the CLI, another API process),
# within this much.
KEY_CACHE_S = 1.0
KEY_CACHE_MAX = 1024
_believed: dict[str, tuple[float, Principal]] = {}
_clock = time.monotonic


def forget_keys() -> None:
    _believed.clear()


async def authenticate(request: Request, token: str) -> Principal:
    """The app's authenticator (see app.core.auth.install_auth): the key's principal.

    It uses a short session of its own, so a use is recorded (and its row lock released) at
    once, whatever the request then does."""
    if not token.startswith(KEY_PREFIX):
        raise InvalidKey(f"not a perf-agent API key (they start with {KEY_PREFIX})")
    digest = hash_key(token)
    now_s = _clock()
    cached = _believed.get(digest)
    if cached is not None and now_s - cached[0] < KEY_CACHE_S:
        return cached[1]
    principal = await _look_up(request, token)
    if len(_believed) >= KEY_CACHE_MAX:
        _believed.clear()
    _believed[digest] = (now_s, principal)
    return principal


async def _look_up(request: Request, token: str) -> Principal:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        repo = KeyRepository(session)
        key = await repo.by_hash(hash_key(token))
        if key is None:
            raise InvalidKey("unknown API key")
        if key.revoked_at is not None:
            raise InvalidKey(
                f"API key {key.prefix}… of {key.owner} was revoked at "
                f"{key.revoked_at.isoformat(timespec='seconds')}"
            )
        now = utcnow()
        if key.last_used_at is None or key.last_used_at < now - LAST_USED_RESOLUTION:
            await repo.touch(key.id, now, now - LAST_USED_RESOLUTION)
            await session.commit()
        return principal_of(key)
