"""Third-party browser assets shipped inside the package (built by ``console/build.mjs`` from
the npm registry, never fetched at run time): uPlot 1.6 (MIT, ``uplot.LICENSE``), for any page
that draws time series — the console and the self-contained HTML report."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def read(name: str) -> str:
    """One asset's text, e.g. ``uplot.iife.min.js``."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
