"""Load-profile presets and the k6 executor configuration each maps to.

Every preset can be tuned by its fields; ``executor()`` is what lands in the script's
``options.scenarios``. The README's table documents the same mapping.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '1m30s'")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"{value!r} is not a duration like '30s', '1m30s' or '2h'")
        return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    raise ValueError("a duration is a number of seconds or a string like '1m30s'")


def parse_duration(value: Any) -> float:
    """k6-style durations ("30s", "1m30s", "2h") or plain seconds → seconds, at least 1s."""
    seconds = _seconds(value)
    if seconds < 1:
        raise ValueError("a duration must be at least 1s")
    return seconds


def parse_pause(value: Any) -> float:
    """Like ``parse_duration`` but for think times, which may be short or zero."""
    seconds = _seconds(value)
    if seconds < 0:
        raise ValueError("a pause cannot be negative")
    return seconds


# What a plan may write, for the served JSON Schema: seconds, or a k6 duration string.
_DURATION_TEXT = Annotated[str, Field(pattern=r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h)\s*)+$")]
Duration = Annotated[
    float, BeforeValidator(parse_duration, json_schema_input_type=float | _DURATION_TEXT)
]
Pause = Annotated[
    float, BeforeValidator(parse_pause, json_schema_input_type=float | _DURATION_TEXT)
]


def format_duration(seconds: float) -> str:
    """Seconds → a k6 duration string."""
    return f"{round(seconds * 1000)}ms" if seconds != int(seconds) else f"{int(seconds)}s"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Stage(Strict):
    duration: Duration
    target: int = Field(ge=0)


def _stages(stages: list[tuple[float, int]]) -> list[dict[str, Any]]:
    return [{"duration": format_duration(round(d)), "target": t} for d, t in stages if d >= 1]


class _Profile(Strict):
    # An iteration-level pause after every scenario iteration (v0 plans used it).
    think_time: Pause | None = Field(default=None, description="Pause after each iteration.")

    @property
    def vus_at_peak(self) -> int:
        raise NotImplementedError

    @property
    def total_duration_s(self) -> float:
        raise NotImplementedError

    def executor(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def abort_on_fail(self) -> bool:
        return False


class _ConstantVUs(_Profile):
    vus: int
    duration: float

    @property
    def vus_at_peak(self) -> int:
        return self.vus

    @property
    def total_duration_s(self) -> float:
        return self.duration

    def executor(self) -> dict[str, Any]:
        return {
            "executor": "constant-vus",
            "vus": self.vus,
            "duration": format_duration(self.duration),
            "gracefulStop": "10s",
        }


class Smoke(_ConstantVUs):
    """A minimal check that the script and target work: 1 VU (at most 5) for 30s."""

    profile: Literal["smoke"]
    vus: int = Field(default=1, ge=1, le=5)
    duration: Duration = 30.0


class Load(_ConstantVUs):
    """Constant virtual users for a duration."""

    profile: Literal["load"]
    vus: int = Field(ge=1)
    duration: Duration


class _Staged(_Profile):
    def stage_list(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    @property
    def vus_at_peak(self) -> int:
        return max(s["target"] for s in self.stage_list())

    @property
    def total_duration_s(self) -> float:
        return sum(parse_duration(s["duration"]) for s in self.stage_list())

    def executor(self) -> dict[str, Any]:
        return {
            "executor": "ramping-vus",
            "startVUs": 0,
            "stages": self.stage_list(),
            "gracefulRampDown": "10s",
            "gracefulStop": "10s",
        }


class Ramp(_Staged):
    """Virtual users following stages (k6 ``ramping-vus``)."""

    profile: Literal["ramp"]
    stages: list[Stage] = Field(min_length=1)

    @model_validator(mode="after")
    def _starts_someone(self) -> Ramp:
        if max(s.target for s in self.stages) < 1:
            raise ValueError("the load profile never starts a VU: some stage needs a target > 0")
        return self

    def stage_list(self) -> list[dict[str, Any]]:
        return [{"duration": format_duration(s.duration), "target": s.target} for s in self.stages]


class Spike(_Staged):
    """A sudden surge from a baseline to a peak and back, then recovery at the baseline."""

    profile: Literal["spike"]
    vus: int = Field(default=1, ge=1, description="Baseline VUs")
    peak_vus: int = Field(ge=1)
    duration: Duration = Field(description="Whole test, split 10/10/5/20/5/40/10 %")

    def stage_list(self) -> list[dict[str, Any]]:
        d, base, peak = self.duration, self.vus, self.peak_vus
        shares = [(0.10, base), (0.10, base), (0.05, peak), (0.20, peak), (0.05, base),
                  (0.40, base), (0.10, 0)]  # fmt: skip
        return _stages([(max(1.0, d * share), target) for share, target in shares])


class Stress(_Staged):
    """Load in equal steps, each held, to see where latency and errors break away."""

    profile: Literal["stress"]
    start_vus: int = Field(default=10, ge=1)
    step_vus: int = Field(default=10, ge=1)
    steps: int = Field(default=5, ge=1, le=50)
    step_duration: Duration = 60.0
    ramp: Duration = Field(default=10.0, description="Time to reach each step's level")

    def stage_list(self) -> list[dict[str, Any]]:
        stages: list[tuple[float, int]] = []
        for i in range(self.steps):
            level = self.start_vus + i * self.step_vus
            stages += [(self.ramp, level), (self.step_duration, level)]
        stages.append((self.ramp, 0))
        return _stages(stages)


class Soak(_Staged):
    """A long steady load (memory leaks, pool exhaustion): ramp up, hold, ramp down."""

    profile: Literal["soak"]
    vus: int = Field(ge=1)
    duration: Duration = Field(description="Time held at full load")

    def stage_list(self) -> list[dict[str, Any]]:
        ramp = max(1.0, min(60.0, self.duration * 0.1))
        return _stages([(ramp, self.vus), (self.duration, self.vus), (ramp, 0)])


class _Arrival(_Profile):
    time_unit: Duration = Field(default=1.0, description="Rates are iterations per time_unit")
    pre_allocated_vus: int = Field(default=10, ge=1)
    max_vus: int | None = Field(default=None, ge=1, description="Default: pre_allocated_vus")

    @model_validator(mode="after")
    def _vus_order(self) -> _Arrival:
        if self.max_vus is not None and self.max_vus < self.pre_allocated_vus:
            raise ValueError("max_vus must be at least pre_allocated_vus")
        return self

    @property
    def vus_at_peak(self) -> int:
        return self.max_vus or self.pre_allocated_vus

    def _vus(self) -> dict[str, Any]:
        return {
            "timeUnit": format_duration(self.time_unit),
            "preAllocatedVUs": self.pre_allocated_vus,
            "maxVUs": self.vus_at_peak,
        }


class ConstantArrival(_Arrival):
    """A fixed rate of iterations, whatever the response times (open model)."""

    profile: Literal["constant-arrival"]
    rate: int = Field(ge=1)
    duration: Duration

    @property
    def total_duration_s(self) -> float:
        return self.duration

    def executor(self) -> dict[str, Any]:
        return {
            "executor": "constant-arrival-rate",
            "rate": self.rate,
            "duration": format_duration(self.duration),
            **self._vus(),
            "gracefulStop": "10s",
        }


class RampingArrival(_Arrival):
    """Iteration rates following stages (targets are rates, not VUs)."""

    profile: Literal["ramping-arrival"]
    start_rate: int = Field(default=0, ge=0)
    stages: list[Stage] = Field(min_length=1)

    @property
    def total_duration_s(self) -> float:
        return sum(s.duration for s in self.stages)

    def executor(self) -> dict[str, Any]:
        return {
            "executor": "ramping-arrival-rate",
            "startRate": self.start_rate,
            "stages": [
                {"duration": format_duration(s.duration), "target": s.target} for s in self.stages
            ],
            **self._vus(),
            "gracefulStop": "10s",
        }


class Breakpoint(_Arrival):
    """Raise the rate steadily until an SLO breaks; SLO thresholds abort the test."""

    profile: Literal["breakpoint"]
    start_rate: int = Field(default=1, ge=0)
    max_rate: int = Field(ge=1)
    duration: Duration

    @property
    def total_duration_s(self) -> float:
        return self.duration

    @property
    def abort_on_fail(self) -> bool:
        return True

    def executor(self) -> dict[str, Any]:
        return {
            "executor": "ramping-arrival-rate",
            "startRate": self.start_rate,
            "stages": [{"duration": format_duration(self.duration), "target": self.max_rate}],
            **self._vus(),
            "gracefulStop": "10s",
        }


class Raw(_Profile):
    """The load a hand-written script sets in its own options, as ``k6 inspect`` reports it.

    The service fills it in; a plan never writes it."""

    profile: Literal["raw"]
    max_vus: int = Field(ge=0)
    duration: float = Field(ge=0, description="k6's totalDuration, graceful stops included")

    @property
    def vus_at_peak(self) -> int:
        return self.max_vus

    @property
    def total_duration_s(self) -> float:
        return self.duration

    def executor(self) -> dict[str, Any]:
        return {"executor": "as the script's options say"}


def raw_load(needs: dict[str, Any]) -> Raw:
    """A hand-written script's load from ``k6 inspect --execution-requirements``."""
    return Raw(
        profile="raw",
        max_vus=int(needs.get("maxVUs") or 0),
        duration=parse_duration(needs.get("totalDuration") or 1),
    )


def _infer_profile(value: Any) -> Any:
    # v0 plans gave vus + duration or stages without naming a preset.
    if isinstance(value, dict) and "profile" not in value:
        return {**value, "profile": "ramp" if "stages" in value else "load"}
    return value


LoadProfile = Annotated[
    Smoke
    | Load
    | Ramp
    | Spike
    | Stress
    | Soak
    | ConstantArrival
    | RampingArrival
    | Breakpoint
    | Raw,
    Field(discriminator="profile"),
    BeforeValidator(_infer_profile),
]
PROFILES = ("smoke", "load", "ramp", "spike", "stress", "soak", "constant-arrival",
            "ramping-arrival", "breakpoint")  # fmt: skip


# Fields that measure load; scaling a profile multiplies each of them.
_LOAD_FIELDS = (
    "vus", "peak_vus", "start_vus", "step_vus", "rate", "start_rate", "max_rate",
    "pre_allocated_vus", "max_vus",
)  # fmt: skip


P = TypeVar("P", bound=_Profile)


def _scale(value: int, factor: float) -> int:
    return 0 if value == 0 else max(1, math.ceil(value * factor))


def scaled(profile: P, factor: float) -> P:
    """The same shape at ``factor`` times the load (VUs, rates and stage targets)."""
    update: dict[str, Any] = {
        name: _scale(value, factor)
        for name in _LOAD_FIELDS
        if isinstance(value := getattr(profile, name, None), int)
    }
    stages = getattr(profile, "stages", None)
    if stages:
        update["stages"] = [
            s.model_copy(update={"target": _scale(s.target, factor)}) for s in stages
        ]
    return profile.model_copy(update=update)
