"""Host names as the guardrails compare them: one spelling per name.

A name reaches the service in many spellings — ``perf.ｐｒｏｄ.example.com`` (fullwidth),
``PERF.Prod.example.com.`` (case, the root's trailing dot), ``bücher.perf`` or its A-label
``xn--bcher-kva.perf``, ``１２７.０.０.１`` — and a resolver treats them all as one. The allow
and deny patterns (``PERF_AGENT_ALLOWED_HOSTS`` / ``PERF_AGENT_DENIED_HOSTS``) are matched on
:func:`normalise_host`'s form only: UTS-46 mapping (the PyPI ``idna`` package, non-transitional),
lower case, no trailing dot, non-ASCII labels as their IDNA A-label, IP literals in canonical
form with an IPv4-mapped IPv6 address as its IPv4 address. A name that is not valid IDNA is a
422 ``guardrail.invalid_host``, never compared as it is.

Plain ASCII labels keep the DNS's own rules (letters, digits, ``-`` and ``_``, as container
and service names use), so ``prometheus_1.perf`` stays a name.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any

import idna

from app.core.errors import GuardrailViolation
from app.core.settings import Settings

_ASCII_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_WILDCARD = re.compile(r"[*?\[\]!]")
MAX_NAME = 253


def unsafe_character(text: str) -> str | None:
    """The first whitespace or control/format character of ``text``, described (``U+000D at
    position 22``), or None. Such a character has no place in a URL the service sends to."""
    for index, char in enumerate(text):
        if char.isspace() or unicodedata.category(char)[0] in ("C", "Z"):
            return f"U+{ord(char):04X} at position {index}"
    return None


def _ip_literal(text: str) -> str | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _invalid(host: str, reason: str) -> GuardrailViolation:
    return GuardrailViolation(
        f"{host!r} is not a valid host name ({reason})",
        code="guardrail.invalid_host",
        host=host,
    )


def normalise_host(host: str) -> str:
    """The one spelling of ``host`` the guardrails compare (see the module's docstring).

    Raises ``GuardrailViolation`` (``guardrail.invalid_host``) when ``host`` is no valid name.
    """
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    literal = _ip_literal(text)
    if literal is not None:
        return literal
    bad = unsafe_character(text)
    if bad is not None:
        raise _invalid(host, f"it contains {bad}")
    try:
        # Fullwidth letters and dots, compatibility forms, case: UTS-46 maps them.
        name = idna.uts46_remap(text, std3_rules=False, transitional=False)
    except (idna.IDNAError, UnicodeError, ValueError) as exc:
        raise _invalid(host, str(exc)) from exc
    if name.endswith("."):
        name = name[:-1]  # the root: example.com. is example.com
    literal = _ip_literal(name)
    if literal is not None:
        return literal  # an address spelt in fullwidth digits
    labels: list[str] = []
    for label in name.split("."):
        if not label:
            raise _invalid(host, "an empty label")
        if label.isascii() and not label.startswith("xn--"):
            if not _ASCII_LABEL.fullmatch(label):
                raise _invalid(host, f"label {label!r}: letters, digits, '-' and '_' only")
            labels.append(label)
            continue
        try:
            encoded = idna.encode(label, uts46=True).decode("ascii")
            if label.startswith("xn--") and encoded != label:
                raise idna.IDNAError(f"{label} is not the canonical A-label ({encoded})")
        except (idna.IDNAError, UnicodeError, ValueError) as exc:
            raise _invalid(host, f"IDNA: {exc}") from exc
        labels.append(encoded)
    normalised = ".".join(labels)
    if len(normalised) > MAX_NAME:
        raise _invalid(host, f"longer than {MAX_NAME} characters")
    return normalised


@lru_cache(maxsize=256)
def normalise_pattern(pattern: str) -> str:
    """A host pattern in the same spelling as :func:`normalise_host` (wildcards kept)."""
    text = pattern.strip()
    text = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    literal = _ip_literal(text)
    if literal is not None:
        return literal
    try:
        text = idna.uts46_remap(text, std3_rules=False, transitional=False)
    except (idna.IDNAError, UnicodeError, ValueError):
        text = text.lower()
    if text.endswith("."):
        text = text[:-1]
    labels = []
    for label in text.split("."):
        if not label.isascii() and not _WILDCARD.search(label):
            try:
                label = idna.encode(label, uts46=True).decode("ascii")
            except (idna.IDNAError, UnicodeError, ValueError):
                pass  # matches nothing a valid host normalises to
        labels.append(label)
    return ".".join(labels)


def matches(host: str, patterns: list[str]) -> bool:
    """Whether a normalised ``host`` matches any of the (fnmatch) ``patterns``."""
    return any(fnmatchcase(host, normalise_pattern(pattern)) for pattern in patterns)


def check_host(hostname: str, settings: Settings) -> str:
    """Judge a host name by the allow and deny patterns; the deny-list always wins.

    Both are matched on the normalised name, which is returned."""
    host = normalise_host(hostname)
    written = hostname.strip("[]").lower()
    named = host if written == host else f"{host} (written {hostname!r})"
    extra: dict[str, Any] = (
        {"host": host} if written == host else {"host": host, "written": hostname}
    )
    if matches(host, settings.denied_hosts):
        raise GuardrailViolation(
            f"{named} matches the production deny-list; load tests never target it",
            code="guardrail.host_denied",
            **extra,
        )
    if not matches(host, settings.allowed_hosts):
        raise GuardrailViolation(
            f"{named} is not an allowed test environment (allowed: "
            f"{', '.join(settings.allowed_hosts)})",
            code="guardrail.host_not_allowed",
            **extra,
        )
    return host
