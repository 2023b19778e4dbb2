"""Sampled call stacks ranked into functions and stacks (shared by py-spy and pprof)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from app.profiling.schemas import FunctionShare, StackShare

TOP_FUNCTIONS = 20
TOP_STACKS = 10


@dataclass(frozen=True)
class Frame:
    """One frame of a sampled stack: a function, its file, and the line executing (0 when
    the source gave none)."""

    name: str
    file: str
    line: int = 0

    @property
    def function(self) -> tuple[str, str]:
        return self.name, self.file


Stack = Sequence[Frame]  # root first, leaf last


@dataclass(frozen=True)
class Ranked:
    samples: int
    idle_samples: int
    functions: list[FunctionShare]
    stacks: list[StackShare]


def rank(
    stacks: Iterable[tuple[Stack, int]],
    *,
    is_idle: Callable[[Stack], bool] | None = None,
    top_functions: int = TOP_FUNCTIONS,
    top_stacks: int = TOP_STACKS,
) -> Ranked:
    """Rank ``(stack, samples)`` pairs: stacks ``is_idle`` calls idle are counted apart and
    left out of every share, so what is ranked is the time threads spent working."""
    total = idle = 0
    self_counts: Counter[tuple[str, str]] = Counter()
    total_counts: Counter[tuple[str, str]] = Counter()
    self_lines: defaultdict[tuple[str, str], Counter[int]] = defaultdict(Counter)
    total_lines: defaultdict[tuple[str, str], Counter[int]] = defaultdict(Counter)
    by_stack: Counter[tuple[str, ...]] = Counter()
    for stack, count in stacks:
        if count <= 0 or not stack:
            continue
        if is_idle is not None and is_idle(stack):
            idle += count
            continue
        total += count
        leaf = stack[-1]
        self_counts[leaf.function] += count
        self_lines[leaf.function][leaf.line] += count
        seen: set[tuple[str, str]] = set()
        for frame in stack:
            if frame.function not in seen:  # a recursive function counts once per sample
                seen.add(frame.function)
                total_counts[frame.function] += count
                total_lines[frame.function][frame.line] += count
        by_stack[tuple(frame.name for frame in stack)] += count
    if not total:
        return Ranked(0, idle, [], [])

    def location(function: tuple[str, str]) -> str:
        # The line that was running most often in the function itself; for a function that
        # only calls others, the line it called from most often.
        lines = self_lines.get(function) or total_lines[function]
        line = lines.most_common(1)[0][0]
        return f"{function[1]}:{line}" if line else function[1]

    # The top functions by self share and the top by inclusive share (a framework's entry
    # point is near 100 % inclusive and 0 % self), ordered by self share.
    by_self = sorted(total_counts, key=lambda f: (-self_counts[f], -total_counts[f], f))
    by_total = sorted(total_counts, key=lambda f: (-total_counts[f], -self_counts[f], f))
    chosen = set(by_self[:top_functions]) | set(by_total[:top_functions])
    ordered = [f for f in by_self if f in chosen]
    functions = [
        FunctionShare(
            name=name,
            location=location((name, file)),
            self_share=self_counts[(name, file)] / total,
            total_share=total_counts[(name, file)] / total,
            self_samples=self_counts[(name, file)],
            total_samples=total_counts[(name, file)],
        )
        for name, file in ordered
    ]
    top = [
        StackShare(frames=list(frames), share=count / total, samples=count)
        for frames, count in by_stack.most_common(top_stacks)
    ]
    return Ranked(total, idle, functions, top)
