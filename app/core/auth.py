"""Who is calling, and what they may do: the scope vocabulary, the principal, the ``requires()``
dependency every route declares, and the development mode without keys.

The keys themselves (storage, lookup, revocation) are a feature, ``app.identity``; it is plugged
in at app creation with :func:`install_auth`, which puts its authenticator on the app's state,
so this module knows no feature and no model.

A route says what it needs with ``Depends(requires(Scope.execute))``; the dependency answers a
401 problem without a key or with a bad or revoked one, a 403 problem when the key lacks the
scope, and returns the :class:`Principal` (``admin`` implies every scope). With
``PERF_AGENT_AUTH=off`` every caller is the admin principal ``anonymous (auth off)``; that mode is
refused on any address but a loopback one (:func:`dev_mode_refusal`).
"""

from __future__ import annotations

import enum
import ipaddress
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.core.errors import ProblemError, problem_response
from app.core.settings import Settings


class Scope(enum.StrEnum):
    """What a key may do. This class and ``SCOPE_DESCRIPTIONS`` are the whole vocabulary:
    adding a scope here is all it takes (keys store scope names; the CLI offers these)."""

    read = "read"
    plan = "plan"
    approve = "approve"
    execute = "execute"
    admin = "admin"


SCOPE_DESCRIPTIONS: dict[Scope, str] = {
    Scope.read: "read plans, runs, analyses, baselines, datasets (every GET)",
    Scope.plan: "store plans, versions, imports, datasets, baselines and history; dry runs; "
    "recommendation feedback",
    Scope.approve: "approve or archive a plan version (the key's owner is the recorded reviewer)",
    Scope.execute: "queue, abort and analyse runs; with approve, auto-approve a draft on execute",
    Scope.admin: "everything above, and the audit trail",
}

# The principal of every request when authentication is off (local development only).
AUTH_OFF_OWNER = "anonymous (auth off)"


def parse_scopes(values: Iterable[str]) -> frozenset[Scope]:
    """Scope names as scopes; a name this version does not know is left out."""
    known = {scope.value for scope in Scope}
    return frozenset(Scope(value) for value in values if value in known)


@dataclass(frozen=True)
class Principal:
    """The caller: a key's id and owner (who is recorded as having done what) and its scopes."""

    key_id: uuid.UUID | None
    owner: str
    scopes: frozenset[Scope]

    def allows(self, scope: Scope) -> bool:
        return Scope.admin in self.scopes or scope in self.scopes

    @property
    def scope_names(self) -> list[str]:
        return sorted(scope.value for scope in self.scopes)


ANONYMOUS = Principal(key_id=None, owner=AUTH_OFF_OWNER, scopes=frozenset({Scope.admin}))

# Looks a presented key up: the principal, or raises InvalidKey (unknown, revoked …).
Authenticator = Callable[[Request, str], Awaitable[Principal]]


class AuthProblem(ProblemError):
    """A problem that carries an RFC 6750 ``WWW-Authenticate`` challenge."""

    status = 401
    title = "Unauthorized"

    def challenge(self) -> str:
        return 'Bearer realm="perf-agent"'


class MissingKey(AuthProblem):
    code = "auth.missing_key"


class InvalidKey(AuthProblem):
    code = "auth.invalid_key"

    def challenge(self) -> str:
        return 'Bearer realm="perf-agent", error="invalid_token"'


class ScopeMissing(AuthProblem):
    status = 403
    code = "auth.scope_missing"
    title = "Forbidden"

    def __init__(
        self, scope: Scope, principal: Principal | None, detail: str | None = None
    ) -> None:
        scopes = principal.scope_names if principal else []
        owner = principal.owner if principal else "nobody"
        super().__init__(
            detail
            or f"this needs the `{scope}` scope; the key of {owner} has: "
            + (", ".join(scopes) or "none"),
            scope=scope.value,
            scopes=scopes,
        )
        self.scope = scope

    def challenge(self) -> str:
        return f'Bearer realm="perf-agent", error="insufficient_scope", scope="{self.scope}"'


_bearer = HTTPBearer(
    auto_error=False,
    description="An API key: `Authorization: Bearer pa_…` (`perf-agent keys create`). Scopes: "
    + "; ".join(f"`{scope}` — {text}" for scope, text in SCOPE_DESCRIPTIONS.items()),
)


def auth_enabled(settings: Settings) -> bool:
    return settings.auth != "off"


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def dev_mode_refusal(settings: Settings, host: str | None = None) -> str | None:
    """Why the service may not start (auth off on a non-loopback address), or None."""
    host = host if host is not None else settings.host
    if auth_enabled(settings) or is_loopback(host):
        return None
    return (
        f"refusing to listen on {host} with PERF_AGENT_AUTH=off: without keys anyone who can "
        "reach it is an admin; use a loopback address (127.0.0.1) or turn auth on"
    )


async def authenticate(request: Request) -> Principal:
    """The principal of a request's ``Authorization: Bearer`` key (auth must be on)."""
    header = request.headers.get("authorization", "").strip()
    if not header:
        raise MissingKey(
            "this needs an API key: send `Authorization: Bearer <key>` "
            "(keys are made with `perf-agent keys create`)"
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidKey("the Authorization header must be `Bearer <key>`")
    authenticator: Authenticator | None = getattr(request.app.state, "authenticator", None)
    if authenticator is None:  # pragma: no cover - create_app always installs one
        raise RuntimeError("no authenticator installed: call install_auth() at app creation")
    principal = await authenticator(request, token.strip())
    return principal


def requires(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """The dependency of a route that needs ``scope``: ``Depends(requires(Scope.plan))``.

    It returns the caller's principal, so a route that records who did something takes it as
    a parameter: ``principal: Annotated[Principal, Depends(requires(Scope.approve))]``."""

    async def dependency(
        request: Request,
        # Documents the scheme (and the scope, as OpenAPI 3.1 allows for any scheme) on the
        # operation; the header itself is read by authenticate().
        _credentials: HTTPAuthorizationCredentials | None = Security(_bearer, scopes=[scope.value]),
    ) -> Principal:
        settings: Settings = request.app.state.settings
        principal = await authenticate(request) if auth_enabled(settings) else ANONYMOUS
        if not principal.allows(scope):
            raise ScopeMissing(scope, principal)
        request.state.principal = principal
        return principal

    dependency.required_scope = scope  # type: ignore[attr-defined]
    dependency.__name__ = f"requires_{scope}"
    return dependency


def _problem_ref(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def required_scope(operation: dict[str, Any]) -> Scope | None:
    """The scope an operation of the OpenAPI document needs (its bearer requirement's role,
    put there by requires()), or None for an open one."""
    for requirement in operation.get("security", []):
        for name in requirement.get(_bearer.scheme_name, []):
            if name in Scope.__members__:
                return Scope(name)
    return None


def _document_scopes(app: FastAPI) -> None:
    """Each secured operation says its scope in its description and ``x-required-scope``,
    and documents its 401 and 403 problems."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()  # FastAPI's, cached until the routes change
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                scope = required_scope(operation)
                if scope is None or "x-required-scope" in operation:
                    continue
                operation["x-required-scope"] = scope.value
                needs = f"**Scope:** `{scope}` (or `admin`)."
                description = operation.get("description")
                operation["description"] = f"{needs}\n\n{description}" if description else needs
                responses = operation.setdefault("responses", {})
                responses.setdefault("401", _problem_ref("No API key, or a bad or revoked one"))
                responses.setdefault("403", _problem_ref(f"The key lacks the `{scope}` scope"))
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_auth(app: FastAPI, authenticator: Authenticator) -> None:
    """Plug the key lookup in, render auth problems with their challenge, document scopes."""
    app.state.authenticator = authenticator

    async def _auth_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AuthProblem)
        response = problem_response(
            request,
            status=exc.status,
            code=exc.code,
            title=exc.title,
            detail=exc.detail,
            **exc.extra,
        )
        response.headers["WWW-Authenticate"] = exc.challenge()
        return response

    app.add_exception_handler(AuthProblem, _auth_problem)
    _document_scopes(app)
