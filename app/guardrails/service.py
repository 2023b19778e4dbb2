"""Guardrails every plan and run must pass, whatever the request says (design spec §5).

The limits come from settings only; a request can ask for less, never for more.
"""

from __future__ import annotations

from app.core.errors import GuardrailViolation
from app.core.settings import Settings
from app.guardrails.hosts import check_host
from app.guardrails.network import check_outbound, check_url, target_addresses
from app.k6 import sandbox
from app.plans.schemas import PlanSpec

__all__ = ["check_host", "check_plan", "check_plan_addresses", "sandboxed"]


def sandboxed(spec: PlanSpec, settings: Settings) -> bool:
    """Whether this plan's k6 runs in the kernel sandbox here. A required sandbox that is
    missing is a 503 ``sandbox.unavailable``; a hand-written script without one is refused
    (``guardrail.unsandboxed_script``) unless an administrator allowed unsandboxed scripts."""
    try:
        inside = sandbox.enabled(settings)
    except sandbox.SandboxUnavailable as exc:
        raise GuardrailViolation(
            str(exc), code="sandbox.unavailable", status=503, title="No sandbox"
        ) from exc
    if spec.is_raw and not inside and not settings.allow_unsandboxed_scripts:
        raise GuardrailViolation(
            "hand-written k6 scripts run only inside the sandbox, and there is none here "
            f"({sandbox.status(settings).reason}); generated plans still run. An administrator "
            "may allow them unsandboxed (PERF_AGENT_ALLOW_UNSANDBOXED_SCRIPTS=true)",
            code="guardrail.unsandboxed_script",
        )
    return inside


PROMETHEUS = "system_metrics.prometheus_url"
REMOTE_WRITE = "remote_write.url"
PPROF = "profiling.pprof_url"


def _outbound_urls(spec: PlanSpec) -> list[tuple[str, str]]:
    """The URLs of a plan the service itself calls, each with what it is for."""
    urls = []
    if spec.system_metrics is not None:
        urls.append((spec.system_metrics.prometheus_url, PROMETHEUS))
    if spec.remote_write is not None:
        urls.append((spec.remote_write.url, REMOTE_WRITE))
    if spec.profiling is not None and spec.profiling.pprof_url is not None:
        urls.append((spec.profiling.pprof_url, PPROF))
    return urls


def check_plan(spec: PlanSpec, settings: Settings) -> None:
    check_host(spec.target.hostname, settings)
    for url, purpose in _outbound_urls(spec):
        # The service itself calls these URLs: the same host rules as the target.
        check_url(url, settings, purpose=purpose)
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


async def check_plan_addresses(spec: PlanSpec, settings: Settings) -> None:
    """Where a plan's names resolve, judged when it is stored (the run judges again when a
    worker claims it, the dry run before it starts k6): the target's and the Prometheus URL's
    addresses must be outside ``PERF_AGENT_DENIED_NETWORKS`` (``guardrail.address_denied``).

    A name that does not resolve yet (an environment still to be created) is let through
    here; the run refuses it (``guardrail.unresolvable``) if it still does not."""
    try:
        await target_addresses(spec.target.hostname, settings)
    except GuardrailViolation as exc:
        if exc.code != "guardrail.unresolvable":
            raise
    for url, purpose in _outbound_urls(spec):
        try:
            await check_outbound(url, settings, purpose=purpose)
        except GuardrailViolation as exc:
            if exc.code != "guardrail.unresolvable":
                raise
