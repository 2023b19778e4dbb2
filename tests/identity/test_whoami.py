"""GET /whoami: the calling key as the console shows it (owner, scopes, whether auth is on)."""

from __future__ import annotations

from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.auth import AUTH_OFF_OWNER, Scope
from app.core.settings import Settings
from app.main import create_app
from tests.builders import API
from tests.conftest import Clients


async def test_a_key_learns_its_owner_and_scopes(clients: Clients) -> None:
    reader = await clients.scoped(Scope.read, Scope.approve, owner="ana@example.com")

    response = await reader.get(f"{API}/whoami")

    assert response.status_code == 200
    body = response.json()
    assert body["owner"] == "ana@example.com"
    assert body["scopes"] == ["approve", "read"]
    assert body["auth"] is True
    assert body["key_id"] is not None


async def test_without_a_key_it_is_a_401_problem(clients: Clients) -> None:
    response = await clients.anonymous().get(f"{API}/whoami")

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "auth.missing_key"


async def test_with_auth_off_the_caller_is_the_anonymous_admin(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    app = create_app(settings.model_copy(update={"auth": "off"}))
    app.state.sessionmaker = sessionmaker
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as client:
        body = (await client.get(f"{API}/whoami")).json()

    assert body == {"owner": AUTH_OFF_OWNER, "key_id": None, "scopes": ["admin"], "auth": False}
