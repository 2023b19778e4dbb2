"""``{{vars.token}}`` / ``{{data.username}}`` references inside plan strings.

Only these two namespaces are references; any other text, ``${…}`` and ``{{…}}`` included,
is a literal and reaches the request unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REFERENCE = re.compile(r"\{\{\s*(vars|data)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Ref:
    namespace: str  # "vars" | "data"
    name: str


Part = str | Ref


def parse(text: str) -> list[Part]:
    parts: list[Part] = []
    last = 0
    for match in REFERENCE.finditer(text):
        if match.start() > last:
            parts.append(text[last : match.start()])
        parts.append(Ref(match[1], match[2]))
        last = match.end()
    if last < len(text):
        parts.append(text[last:])
    return parts


def references(text: str) -> list[Ref]:
    return [p for p in parse(text) if isinstance(p, Ref)]
