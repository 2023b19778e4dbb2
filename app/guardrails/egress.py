"""Where a plan's k6 may connect: the target's checked addresses on the target's port, as the
sandbox's rules enforce them and as k6's own ``--blacklist-ip`` repeats them."""

from __future__ import annotations

from urllib.parse import urlsplit

from app.core.settings import Settings
from app.guardrails.network import blacklist_except, target_addresses
from app.k6.sandbox import Egress
from app.plans.schemas import PlanSpec


async def egress_for(spec: PlanSpec, settings: Settings) -> Egress:
    """Resolve and check the target once, now (a refused one is a GuardrailViolation)."""
    parts = urlsplit(spec.target.base_url)
    host = spec.target.hostname
    addresses = await target_addresses(host, settings)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return Egress(host=host.strip("[]"), addresses=tuple(addresses), port=port)


def k6_args(egress: Egress) -> list[str]:
    """k6's own confinement to the same addresses (defence in depth, and the only one when
    no sandbox is available)."""
    return ["--blacklist-ip", blacklist_except(egress.addresses)]
