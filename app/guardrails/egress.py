"""Where a plan's k6 may connect, as the sandbox enforces it: the target's checked addresses
on the target's port."""

from __future__ import annotations

from urllib.parse import urlsplit

from app.core.settings import Settings
from app.guardrails.network import check_addresses, resolve
from app.k6.sandbox import Egress
from app.plans.schemas import PlanSpec


async def egress_for(spec: PlanSpec, settings: Settings) -> Egress:
    """Resolve and check the target now (a refused address is a GuardrailViolation)."""
    parts = urlsplit(spec.target.base_url)
    host = spec.target.hostname
    addresses = await resolve(host)
    check_addresses(host, addresses, settings)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return Egress(host=host.strip("[]"), addresses=tuple(addresses), port=port)
