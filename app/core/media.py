from __future__ import annotations


def media_type(content_type: str | None) -> str:
    """``application/yaml; charset=utf-8`` → ``application/yaml``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json(content_type: str | None) -> bool:
    """``application/json`` or a structured ``application/…+json`` type, as FastAPI reads them."""
    kind = media_type(content_type)
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )
