"""The profiler adapter, free of any feature: during a run's steady part, which functions and
which queries cost the time.

- :mod:`app.profiling.pyspy` samples a local Python process with py-spy;
- :mod:`app.profiling.pprof` fetches and decodes a Go ``net/http/pprof`` CPU profile;
- :mod:`app.profiling.pg` diffs two ``pg_stat_statements`` snapshots.

Each returns a :class:`~app.profiling.schemas.Profile` (``ok``, ``unavailable`` or
``failed`` with a reason) and never raises for what the profiled side does. Like ``app.k6``
it imports ``app.core`` at most (an import-linter contract in pyproject.toml).
"""

from app.profiling.schemas import FunctionShare, Profile, QueryShare, StackShare

__all__ = ["FunctionShare", "Profile", "QueryShare", "StackShare"]
