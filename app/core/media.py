from __future__ import annotations

from typing import Any


def media_type(content_type: str | None) -> str:
    """``application/yaml; charset=utf-8`` → ``application/yaml``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json(content_type: str | None) -> bool:
    """``application/json`` or a structured ``application/…+json`` type, as FastAPI reads them."""
    kind = media_type(content_type)
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def nesting_depth(value: Any, *, limit: int) -> int:
    """How deep mappings and lists nest in a decoded body (a scalar: 0), without recursion;
    counting stops a level past ``limit`` (enough to refuse it)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if depth <= limit:
                inner = item.values() if isinstance(item, dict) else item
                stack.extend((child, depth + 1) for child in inner)
    return deepest
