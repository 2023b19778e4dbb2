"""Where the service and its runs may connect: one address policy for every outbound call.

The host patterns (``hosts.check_host``) judge names, in their normalised spelling. Here a name
is resolved and every address checked against the denied networks (production ranges):

- a run's target (:func:`target_addresses`), and k6 is started with ``--blacklist-ip``
  covering every address except the target's checked ones (:func:`k6_network_args`): whatever
  a script does, k6 itself refuses to connect anywhere else;
- every URL the service or a worker calls itself — a plan's Prometheus, the cost-alert
  webhook — through :func:`check_outbound`: http(s) only, no whitespace or control character,
  an IDNA-normalised host, the host patterns (unless the URL is the operator's own, see
  ``host_patterns``), and the resolved addresses. :func:`pinned_client` then connects to those
  checked addresses only (the Host header and TLS SNI keep the name), so a name cannot
  resolve somewhere else between the check and the connection (DNS rebinding), and no proxy
  from the environment stands in between.

An address is denied when it, or the IPv4 address inside it — IPv4-mapped ``::ffff:a.b.c.d``,
NAT64 ``64:ff9b::a.b.c.d``, 6to4 ``2002:AABB:CCDD::``, IPv4-compatible ``::a.b.c.d`` — falls in
a denied network; a denied network of IPv4-mapped addresses (``::ffff:10.0.0.0/104``) denies the
IPv4 addresses it maps too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpcore
import httpx

from app.core.errors import GuardrailViolation
from app.core.settings import Settings
from app.guardrails.hosts import check_host, normalise_host, unsafe_character

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
RESOLVE_TIMEOUT_S = 5.0
MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
DEFAULT_PORTS = {"http": 80, "https": 443}


async def resolve(host: str) -> list[IPAddress]:
    """Every address ``host`` (a name in any spelling, or an IP literal) resolves to, in the
    resolver's order. Raises ``guardrail.unresolvable`` (or ``guardrail.invalid_host``)."""
    name = normalise_host(host)
    try:
        return [ipaddress.ip_address(name)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(name, None, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S
        )
    except (OSError, TimeoutError) as exc:
        raise GuardrailViolation(
            f"{name} does not resolve here ({exc or type(exc).__name__}); a run needs to know "
            "where it sends load",
            code="guardrail.unresolvable",
            host=name,
        ) from exc
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise GuardrailViolation(
            f"{name} resolves to no address", code="guardrail.unresolvable", host=name
        )
    return found


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4, compatible), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address in IPV4_COMPATIBLE and int(address) > 1:  # not :: or ::1
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def unmapped(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address as the IPv4 address it is; any other address unchanged."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def denied_networks(settings: Settings) -> list[IPNetwork]:
    """``PERF_AGENT_DENIED_NETWORKS``; an IPv6 network of IPv4-mapped addresses
    (``::ffff:10.0.0.0/104``) also as the IPv4 network it maps (``10.0.0.0/8``)."""
    networks: list[IPNetwork] = []
    for text in settings.denied_networks:
        network = ipaddress.ip_network(text, strict=False)
        networks.append(network)
        if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(MAPPED):
            base = ipaddress.IPv4Address(int(network.network_address) & 0xFFFFFFFF)
            networks.append(ipaddress.IPv4Network(f"{base}/{network.prefixlen - 96}"))
    return networks


def shown(address: IPAddress) -> str:
    """An address as written: IPv4-mapped ones as ``::ffff:a.b.c.d`` on every Python."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def _forms(address: IPAddress) -> Iterator[IPAddress]:
    yield address
    inner = embedded_ipv4(address)
    if inner is not None:
        yield inner


def check_addresses(host: str, addresses: Iterable[IPAddress], settings: Settings) -> None:
    """Refuse (``guardrail.address_denied``) when any address, or the IPv4 address inside it
    (:func:`embedded_ipv4`), lies in a denied network."""
    denied = denied_networks(settings)
    for address in addresses:
        for form in _forms(address):
            for network in denied:
                if form.version == network.version and form in network:
                    via = "" if form == address else f" (IPv4 {form})"
                    raise GuardrailViolation(
                        f"{host} resolves to {shown(address)}{via}, inside the denied network "
                        f"{network}",
                        code="guardrail.address_denied",
                        host=host,
                        address=shown(address),
                        network=str(network),
                    )


async def _checked(host: str, settings: Settings) -> list[IPAddress]:
    """``host``'s addresses, each checked, IPv4-mapped ones as IPv4, without repeats."""
    addresses = await resolve(host)
    check_addresses(host, addresses, settings)
    checked: list[IPAddress] = []
    for address in map(unmapped, addresses):
        if address not in checked:
            checked.append(address)
    return checked


async def target_addresses(host: str, settings: Settings) -> list[IPAddress]:
    """The addresses a run may send load to: ``host`` (the target's name) passes the host
    patterns and is resolved once; every address passes the denied networks.

    Returns those checked addresses (IPv4-mapped IPv6 as IPv4, no repeats, resolver order) —
    the only ones a run's k6 may connect to. Raises ``GuardrailViolation``
    (``guardrail.invalid_host`` / ``host_denied`` / ``host_not_allowed`` / ``unresolvable`` /
    ``address_denied``)."""
    name = check_host(host, settings)
    return await _checked(name, settings)


def _exclude(networks: list[IPNetwork], keep: IPNetwork) -> list[IPNetwork]:
    result: list[IPNetwork] = []
    for network in networks:
        if network.version == keep.version and keep.subnet_of(network):  # type: ignore[arg-type]
            result.extend(network.address_exclude(keep))  # type: ignore[arg-type]
        else:
            result.append(network)
    return result


def blacklist_except(addresses: Iterable[IPAddress]) -> str:
    """``--blacklist-ip`` CIDRs that cover every IPv4 and IPv6 address but ``addresses``."""
    networks: list[IPNetwork] = [
        ipaddress.ip_network("0.0.0.0/0"),
        ipaddress.ip_network("::/0"),
    ]
    for address in addresses:
        networks = _exclude(networks, ipaddress.ip_network(address))
    return ",".join(str(n) for n in sorted(networks, key=lambda n: (n.version, n)))


async def k6_network_args(host: str, settings: Settings) -> list[str]:
    """Resolve and check the target (:func:`target_addresses`), and the k6 flags that confine
    a run to those addresses."""
    return ["--blacklist-ip", blacklist_except(await target_addresses(host, settings))]


# --- the service's own outbound calls ------------------------------------------------------


@dataclass(frozen=True)
class ResolvedTarget:
    """An outbound URL that passed the policy, and where a connection to it may go."""

    purpose: str
    url: str  # the URL to request: its host in the normalised spelling
    scheme: str
    host: str  # normalised (IDNA A-labels, lower case) or an IP literal
    port: int
    addresses: tuple[IPAddress, ...]  # checked; the only ones a connection may use


@dataclass(frozen=True)
class CheckedURL:
    """A URL whose form, host spelling and host patterns passed; not yet resolved."""

    url: str
    scheme: str
    host: str
    port: int


def _refusal(purpose: str, exc: GuardrailViolation) -> GuardrailViolation:
    return GuardrailViolation(
        f"{purpose}: {exc.detail}", code=exc.code, purpose=purpose, **exc.extra
    )


def check_url(
    url: str, settings: Settings, *, purpose: str, host_patterns: bool = True
) -> CheckedURL:
    """The part of :func:`check_outbound` that needs no resolver: the URL's form, its host's
    spelling and (when ``host_patterns``) the allow and deny patterns."""

    def invalid(reason: str) -> GuardrailViolation:
        return GuardrailViolation(
            f"{purpose}: {reason}", code="guardrail.invalid_url", purpose=purpose
        )

    bad = unsafe_character(url)
    if bad is not None:
        raise invalid(f"the URL contains {bad}; no whitespace or control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise invalid(f"only http and https URLs are called, not {parts.scheme or 'none'!r}")
    if not parts.hostname:
        raise invalid("the URL names no host")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise invalid(f"the URL's port is invalid ({exc})") from exc
    try:
        host = (
            check_host(parts.hostname, settings)
            if host_patterns
            else normalise_host(parts.hostname)
        )
    except GuardrailViolation as exc:
        raise _refusal(purpose, exc) from exc
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc = f"{netloc}:{port}"
    if parts.username is not None or parts.password is not None:
        netloc = f"{parts.netloc.rpartition('@')[0]}@{netloc}"
    rebuilt = urlunsplit((scheme, netloc, parts.path, parts.query, ""))
    return CheckedURL(url=rebuilt, scheme=scheme, host=host, port=port)


async def check_outbound(
    url: str, settings: Settings, *, purpose: str, host_patterns: bool = True
) -> ResolvedTarget:
    """The one policy for a URL the service or a worker calls itself.

    http(s) only, no whitespace or control character, a valid (IDNA/UTS-46 normalised) host
    that — when ``host_patterns`` — matches ``PERF_AGENT_ALLOWED_HOSTS`` and no
    ``PERF_AGENT_DENIED_HOSTS``, resolved once, every address outside
    ``PERF_AGENT_DENIED_NETWORKS``. ``host_patterns=False`` is for a URL the operator
    configured (the cost-alert webhook): the patterns describe test environments, which an
    alerting endpoint is not, but the denied networks still hold.

    Returns the checked addresses; connect with :func:`pinned_client` so they are the ones
    used. Raises ``GuardrailViolation`` naming ``purpose``.
    """
    parsed = check_url(url, settings, purpose=purpose, host_patterns=host_patterns)
    try:
        addresses = await _checked(parsed.host, settings)
    except GuardrailViolation as exc:
        raise _refusal(purpose, exc) from exc
    return ResolvedTarget(
        purpose=purpose,
        url=parsed.url,
        scheme=parsed.scheme,
        host=parsed.host,
        port=parsed.port,
        addresses=tuple(addresses),
    )


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections to a checked target's addresses only, never resolving again."""

    def __init__(self, target: ResolvedTarget) -> None:
        self.target = target
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            asked = normalise_host(host)
        except GuardrailViolation:
            asked = None
        if (asked, port) != (self.target.host, self.target.port):
            raise httpcore.ConnectError(
                f"{host}:{port} is not {self.target.host}:{self.target.port}, the checked "
                f"{self.target.purpose}; not connecting"
            )
        failure: Exception = httpcore.ConnectError(f"{host} has no checked address")
        for address in self.target.addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("outbound calls use TCP to a checked address only")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with every connection going to a :class:`ResolvedTarget`'s checked
    addresses (TLS still verifies the certificate for the name, sent as SNI)."""

    def __init__(self, target: ResolvedTarget, *, verify: ssl.SSLContext | bool = True) -> None:
        super().__init__(verify=verify, trust_env=False)
        # httpx offers no resolver hook: its connection pool gets a backend that connects to
        # the checked addresses (tests/guardrails/test_outbound.py proves it still does).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=10,
            keepalive_expiry=5.0,
            network_backend=_PinnedBackend(target),
        )


def pinned_client(
    target: ResolvedTarget, *, timeout: float, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncClient:
    """A client for ``target`` only: connections to its checked addresses, no redirects, no
    proxy or .netrc from the environment. Request ``target.url`` (or paths under it). TLS
    verifies the certificate for the target's name (``verify``: httpx's, e.g. a CA's
    ``ssl.SSLContext``; SSL_CERT_FILE is honoured)."""
    return httpx.AsyncClient(
        transport=PinnedTransport(target, verify=verify),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )
