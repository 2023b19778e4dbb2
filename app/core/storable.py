"""What PostgreSQL cannot store in text or JSONB: a NUL character or a lone UTF-16 surrogate.

JSON can carry both (``"\\u0000"``, ``"\\ud800"``) and Python reads them into ``str``; the
database then refuses the row (or the driver cannot encode it) and the request would fail with
a 500. Readers of documents check with :func:`unstorable_text` and answer a 4xx naming the place;
:func:`is_unstorable_text_error` recognises the database's refusal for everything else.
"""

from __future__ import annotations

import re
from typing import Any

_BAD = re.compile(r"[\x00\ud800-\udfff]")


def _reason(text: str) -> str | None:
    found = _BAD.search(text)
    if found is None:
        return None
    if found[0] == "\x00":
        return "a NUL character (\\u0000)"
    return f"a lone surrogate (\\u{ord(found[0]):04x}), which is no Unicode character"


def _place(path: list[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or "$"


def unstorable_text(document: Any) -> str | None:
    """Where the first string (a key or a value) of a JSON-like document holds a NUL character
    or a lone surrogate, and which; ``None`` when every string can be stored. No recursion."""
    stack: list[tuple[Any, list[str | int]]] = [(document, [])]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            reason = _reason(value)
            if reason:
                return f"{_place(path)} holds {reason}"
        elif isinstance(value, dict):
            for key, item in value.items():
                reason = _reason(key) if isinstance(key, str) else None
                if reason:
                    return f"a key at {_place(path)} holds {reason}"
                stack.append((item, [*path, str(key)]))
        elif isinstance(value, list):
            stack.extend((item, [*path, i]) for i, item in enumerate(value))
    return None


def is_unstorable_text_error(exc: BaseException) -> bool:
    """True for the database's (or its driver's) refusal of a NUL character or a surrogate."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current)
        if isinstance(current, UnicodeEncodeError) and "surrogates not allowed" in text:
            return True
        if "NUL (0x00)" in text or "\\u0000 cannot be converted to text" in text:
            return True  # psycopg's own check (text), PostgreSQL's (jsonb)
        if "surrogate" in text and "invalid input syntax for type json" in text:
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False
