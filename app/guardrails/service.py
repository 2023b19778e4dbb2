"""Guardrails every plan and run must pass, whatever the request says (design spec §5).

The limits come from settings only; a request can ask for less, never for more.
"""

from __future__ import annotations

from fnmatch import fnmatch
from urllib.parse import urlsplit

from app.core.errors import GuardrailViolation
from app.core.settings import Settings
from app.plans.schemas import PlanSpec


def check_host(hostname: str, settings: Settings) -> None:
    host = hostname.lower().strip("[]")
    if any(fnmatch(host, pattern) for pattern in settings.denied_hosts):
        raise GuardrailViolation(
            f"{host} matches the production deny-list; load tests never target it",
            code="guardrail.host_denied",
            host=host,
        )
    if not any(fnmatch(host, pattern) for pattern in settings.allowed_hosts):
        raise GuardrailViolation(
            f"{host} is not an allowed test environment (allowed: "
            f"{', '.join(settings.allowed_hosts)})",
            code="guardrail.host_not_allowed",
            host=host,
        )


def check_plan(spec: PlanSpec, settings: Settings) -> None:
    check_host(spec.target.hostname, settings)
    if spec.system_metrics is not None:
        # The service itself calls this URL: the same host rules as the target.
        check_host(urlsplit(spec.system_metrics.prometheus_url).hostname or "", settings)
    peak = spec.load_profile.vus_at_peak
    if peak > settings.max_vus:
        raise GuardrailViolation(
            f"the load profile asks for {peak} VUs; the ceiling is {settings.max_vus}",
            code="guardrail.vu_ceiling",
            requested=peak,
            ceiling=settings.max_vus,
        )
    duration = spec.load_profile.total_duration_s
    if duration > settings.max_duration_s:
        raise GuardrailViolation(
            f"the load profile lasts {duration:g}s; the limit is {settings.max_duration_s}s",
            code="guardrail.max_duration",
            requested_s=duration,
            limit_s=settings.max_duration_s,
        )
