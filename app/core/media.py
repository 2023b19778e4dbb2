from __future__ import annotations


def media_type(content_type: str | None) -> str:
    """``application/yaml; charset=utf-8`` → ``application/yaml``."""
    return (content_type or "").split(";", 1)[0].strip().lower()
