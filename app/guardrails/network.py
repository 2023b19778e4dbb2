"""Where a run may send traffic, checked by address and enforced inside k6.

The host allow-list (``service.check_host``) judges names. Here the target's name is resolved
and every address checked against the denied networks (production ranges), and k6 is started
with ``--blacklist-ip`` covering every address except the target's: whatever a script does,
k6 itself refuses to connect anywhere else.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable

from app.core.errors import GuardrailViolation
from app.core.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
RESOLVE_TIMEOUT_S = 5.0


async def resolve(host: str) -> list[IPAddress]:
    host = host.strip("[]")
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S
        )
    except (OSError, TimeoutError) as exc:
        raise GuardrailViolation(
            f"{host} does not resolve here ({exc}); a run needs to know where it sends load",
            code="guardrail.unresolvable",
            host=host,
        ) from exc
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def check_addresses(host: str, addresses: Iterable[IPAddress], settings: Settings) -> None:
    denied = [ipaddress.ip_network(net, strict=False) for net in settings.denied_networks]
    for address in addresses:
        for network in denied:
            if address.version == network.version and address in network:
                raise GuardrailViolation(
                    f"{host} resolves to {address}, inside the denied network {network}",
                    code="guardrail.address_denied",
                    host=host,
                    address=str(address),
                    network=str(network),
                )


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
    """Resolve and check the target, and the k6 flags that confine a run to it."""
    addresses = await resolve(host)
    check_addresses(host, addresses, settings)
    return ["--blacklist-ip", blacklist_except(addresses)]
