"""The secret a plan references by name (``target.auth.secret``), read when k6 is started."""

from __future__ import annotations

import os

from app.k6.process import SECRET_PLACEHOLDER
from app.plans.schemas import PlanSpec


class MissingSecret(LookupError):
    pass


def plan_secrets(spec: PlanSpec) -> dict[str, str]:
    """The secrets a plan references, read from this process's environment."""
    auth = spec.target.auth
    if auth is None:
        return {}
    value = os.environ.get(auth.env_var)
    if not value:
        raise MissingSecret(
            f"the plan authenticates with secret {auth.secret!r}, but {auth.env_var} is not "
            "set for the worker"
        )
    return {auth.env_var: value}


def secret_placeholders(spec: PlanSpec) -> dict[str, str]:
    """The plan's secret names with stand-in values: k6 sees the same variables when it is
    inspected (where the secrets are not read) as when it runs."""
    auth = spec.target.auth
    return {auth.env_var: SECRET_PLACEHOLDER} if auth is not None else {}
