"""The console's built files (``static/``, written by ``console/build.mjs``) and whether they
are current: the build records a digest of its sources, recomputed here the same way."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from functools import cache
from importlib import resources
from pathlib import Path

STATIC = resources.files("app.console").joinpath("static")
# The sources exist in a checkout, not in an installed wheel.
SOURCES = Path(__file__).resolve().parents[2] / "console"


@cache
def manifest() -> dict[str, object]:
    loaded: dict[str, object] = json.loads(STATIC.joinpath("manifest.json").read_text("utf-8"))
    return loaded


@cache
def version() -> str:
    """A short digest of the built files, for cache-busting query strings."""
    digest = hashlib.sha256()
    for name in ("console.js", "console.css"):
        digest.update(STATIC.joinpath(name).read_bytes())
    return digest.hexdigest()[:12]


@cache
def boot() -> str:
    """The boot script (console/src/boot.js, built), inlined in the page: it sends the page's
    first API requests while console.js loads."""
    return STATIC.joinpath("boot.js").read_text("utf-8").strip()


@cache
def boot_hash() -> str:
    """The boot script's CSP source: the one inline script the page may run."""
    digest = hashlib.sha256(boot().encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


@cache
def preloads() -> tuple[str, ...]:
    """The chunks console.js imports statically: the page preloads them beside it instead of
    the browser finding them only once console.js has arrived."""
    script = STATIC.joinpath("console.js").read_text("utf-8")
    return tuple(dict.fromkeys(re.findall(r'from\s*"\./(chunk-[A-Za-z0-9]+\.js)"', script)))


def sources_digest(root: Path = SOURCES) -> str:
    """What ``digest()`` in console/digest.mjs computes: every file under src/, the lock file
    and the build scripts, in path order, each as ``path NUL bytes NUL``."""
    inputs = [p for p in (root / "src").rglob("*") if p.is_file()]
    inputs += [root / name for name in ("package-lock.json", "build.mjs", "digest.mjs")]
    digest = hashlib.sha256()
    for path in sorted(p.relative_to(root).as_posix() for p in inputs):
        digest.update(path.encode() + b"\0")
        digest.update((root / path).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()
