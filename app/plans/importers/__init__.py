"""Importers: public API descriptions (OpenAPI 3, HAR 1.2) → plan documents.

An importer returns a plain dict in the plan language, the same shape a client would POST,
so the usual validation, guardrails and rendering apply to it unchanged. Each importer checks
its result with ``PlanSpec`` before returning it: the caller gets a valid document or an
``ImportProblem`` that says what was wrong with the input.

The submodules are imported by name (``importers.openapi``, ``importers.har``); this module
holds what they share.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, time
from typing import Any
from urllib.parse import urlencode

from pydantic import ValidationError

from app.core.errors import describe_errors
from app.plans.schemas import PlanSpec

__all__ = [
    "DEFAULT_LOAD",
    "MAX_STEPS",
    "ImportProblem",
    "as_dict",
    "as_list",
    "checked",
    "describe",
    "form_body",
    "is_json_media",
    "media_base",
    "plain_json",
    "sanitise_name",
    "unique_name",
]

# A short, gentle first run: an import is a starting point that the user then tunes.
DEFAULT_LOAD: dict[str, Any] = {"profile": "smoke", "vus": 1, "duration": "10s"}
MAX_STEPS = 200  # Scenario.steps' limit in the plan schema
MAX_DESCRIPTION = 5000  # PlanSpec.description's limit
_NAME_MAX = 64


class ImportProblem(ValueError):
    """The input cannot become a plan; the message says precisely why."""


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a mapping, else an empty one: malformed parts read as absent."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def plain_json(value: Any) -> Any:
    """``value`` with what JSON cannot hold made plain: YAML dates and timestamps become ISO
    text, keys become strings. Example values reach the script as JSON literals."""
    if isinstance(value, dict):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [plain_json(v) for v in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def sanitise_name(text: str) -> str:
    """``text`` shaped to the step-name pattern ``^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$``.

    Returns "" when nothing usable is left, so the caller can fall back to another source.
    """
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", text)
    cleaned = re.sub(r"_{2,}", "_", cleaned)
    cleaned = re.sub(r"^[^A-Za-z0-9]+", "", cleaned).rstrip("_")
    return cleaned[:_NAME_MAX].rstrip("_")


def unique_name(base: str, taken: set[str]) -> str:
    """``base`` (already sanitised), suffixed ``_2``, ``_3``… until unused; recorded in taken."""
    name, n = base, 1
    while name in taken:
        n += 1
        suffix = f"_{n}"
        name = base[: _NAME_MAX - len(suffix)] + suffix
    taken.add(name)
    return name


def is_json_media(mime: str) -> bool:
    """application/json and the ``+json`` family (merge-patch, vnd.api, problem…)."""
    base = mime.split(";", 1)[0].strip().lower()
    return base == "application/json" or base.endswith("+json")


def media_base(mime: str) -> str:
    return mime.split(";", 1)[0].strip().lower()


def form_body(mime: str, fields: list[tuple[str, str]]) -> tuple[str, str]:
    """Form fields as a raw body and the Content-Type that goes with it.

    The plan sends a string body as it is, so forms are encoded here. A multipart body needs
    a boundary named in its Content-Type; a fixed one keeps the import reproducible.
    """
    if media_base(mime) == "multipart/form-data":
        boundary = "perf-agent-" + uuid.uuid5(uuid.NAMESPACE_URL, repr(fields)).hex[:16]
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n'
            f"{value}\r\n"
            for name, value in fields
        ]
        return "".join(parts) + f"--{boundary}--\r\n", f"multipart/form-data; boundary={boundary}"
    return urlencode(fields), "application/x-www-form-urlencoded"


def _quoted(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")


def describe(lines: list[str]) -> str:
    """Description text within the schema's length limit."""
    text = "\n".join(line for line in lines if line)
    if len(text) <= MAX_DESCRIPTION:
        return text
    return text[: MAX_DESCRIPTION - 1] + "…"


def checked(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` if it is a valid plan; otherwise an ImportProblem naming the first errors.

    Invalid results come from the caller's options (a base_url that is not http(s), a load
    profile with a typo) or from input the importer could not adapt; either way the caller
    should hear about it here rather than when the plan is submitted.
    """
    try:
        PlanSpec.model_validate(doc)
    except ValidationError as exc:
        summary, _ = describe_errors(
            exc.errors(include_url=False, include_input=False), model=PlanSpec, document=doc
        )
        raise ImportProblem(f"the imported plan is not valid: {summary}") from exc
    return doc
