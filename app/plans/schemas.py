"""The test-plan language (v0): what a client POSTs to ``/plan`` as JSON or YAML."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """k6-style durations ("30s", "1m30s", "2h") or plain seconds → seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '1m30s'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"{value!r} is not a duration like '30s', '1m30s' or '2h'")
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    else:
        raise ValueError("a duration is a number of seconds or a string like '1m30s'")
    if seconds < 1:
        raise ValueError("a duration must be at least 1s")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


def format_duration(seconds: float) -> str:
    """Seconds → a k6 duration string."""
    return f"{round(seconds * 1000)}ms" if seconds != int(seconds) else f"{int(seconds)}s"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Target(Strict):
    base_url: str = Field(description="Scheme, host and optional port (and path prefix).")
    environment: str = Field(default="staging", max_length=100)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url must be an absolute http(s) URL, e.g. http://127.0.0.1:8080")
        if parts.query or parts.fragment:
            raise ValueError("base_url must not carry a query string or fragment")
        return value.rstrip("/")

    @property
    def hostname(self) -> str:
        return urlsplit(self.base_url).hostname or ""


class Endpoint(Strict):
    name: str = Field(pattern=NAME_PATTERN, description="Tag used for per-endpoint results.")
    method: HttpMethod = "GET"
    path: str = Field(min_length=1, max_length=2000)
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = Field(default=None, description="JSON value (sent as JSON) or a raw string.")
    expect_status: list[int] = Field(default_factory=lambda: [200], min_length=1)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("path must start with '/' (it is appended to target.base_url)")
        return value

    @field_validator("expect_status", mode="before")
    @classmethod
    def _status_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) else value

    @field_validator("expect_status")
    @classmethod
    def _status_range(cls, value: list[int]) -> list[int]:
        for status in value:
            if not 100 <= status <= 599:
                raise ValueError(f"{status} is not an HTTP status")
        return value


class Stage(Strict):
    duration: Duration
    target: int = Field(ge=0)


class LoadProfile(Strict):
    vus: int | None = Field(default=None, ge=1)
    duration: Duration | None = None
    stages: list[Stage] | None = Field(default=None, min_length=1)
    think_time: Duration | None = Field(default=None, description="Pause after each iteration.")

    @model_validator(mode="after")
    def _one_shape(self) -> LoadProfile:
        constant = self.vus is not None or self.duration is not None
        if self.stages and constant:
            raise ValueError("give either vus + duration or stages, not both")
        if not self.stages and (self.vus is None or self.duration is None):
            raise ValueError("give vus and duration (constant load) or stages (ramping load)")
        if self.peak_vus < 1:
            raise ValueError("the load profile never starts a VU: some stage needs a target > 0")
        return self

    @property
    def total_duration_s(self) -> float:
        if self.stages:
            return sum(stage.duration for stage in self.stages)
        return self.duration or 0.0

    @property
    def peak_vus(self) -> int:
        if self.stages:
            return max(stage.target for stage in self.stages)
        return self.vus or 0


LATENCY_SLIS = ("avg", "min", "med", "p50", "p90", "p95", "p99", "max")
SLI = Literal["avg", "min", "med", "p50", "p90", "p95", "p99", "max", "error_rate", "rps"]
Op = Literal["<", "<=", ">", ">="]

_SLO_TEXT = re.compile(
    r"^\s*(?P<sli>[a-z_][a-z0-9_]*|p\(\d+(?:\.\d+)?\))\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|%|/s)?\s*$"
)
_SLI_ALIASES = {
    "p(50)": "p50",
    "p(90)": "p90",
    "p(95)": "p95",
    "p(99)": "p99",
    "median": "med",
    "errors": "error_rate",
    "error": "error_rate",
    "rate": "error_rate",
    "throughput": "rps",
}


class SLO(Strict):
    """One objective. Latency targets are in milliseconds, error rates are fractions."""

    sli: SLI
    op: Op
    target: float = Field(ge=0)
    endpoint: str | None = Field(default=None, description="Endpoint name; omitted: all requests.")

    @property
    def unit(self) -> str:
        if self.sli in LATENCY_SLIS:
            return "ms"
        return "%" if self.sli == "error_rate" else "/s"

    @property
    def text(self) -> str:
        if self.sli == "error_rate":
            shown = f"{self.target * 100:g}%"
        elif self.sli == "rps":
            shown = f"{self.target:g}/s"
        else:
            shown = f"{self.target:g}ms"
        return f"{self.sli} {self.op} {shown}"

    @property
    def key(self) -> str:
        return f"{self.endpoint or '*'}:{self.text}"


def parse_slo_text(text: str) -> dict[str, Any]:
    match = _SLO_TEXT.match(text.lower())
    if not match:
        raise ValueError(
            f"{text!r} is not an objective like 'p95 < 300ms', 'error_rate < 1%' or 'rps > 50'"
        )
    sli = _SLI_ALIASES.get(match["sli"], match["sli"])
    value = float(match["value"])
    unit = match["unit"]
    if sli in LATENCY_SLIS:
        if unit not in (None, "ms", "s"):
            raise ValueError(f"{text!r}: latency is measured in ms or s")
        value = value * 1000 if unit == "s" else value
    elif sli == "error_rate":
        if unit == "%":
            value /= 100
        elif unit is not None:
            raise ValueError(f"{text!r}: an error rate is a percentage or a fraction")
        if value > 1:
            raise ValueError(f"{text!r}: an error rate above 100% never fails; write e.g. '1%'")
    elif sli == "rps" and unit not in (None, "/s"):
        raise ValueError(f"{text!r}: throughput is in requests per second")
    return {"sli": sli, "op": match["op"], "target": value}


def _slo_input(value: Any) -> Any:
    if isinstance(value, str):
        return parse_slo_text(value)
    if isinstance(value, dict) and "objective" in value:
        rest = {k: v for k, v in value.items() if k != "objective"}
        if not isinstance(value["objective"], str):
            raise ValueError("objective must be a string like 'p95 < 300ms'")
        return {**parse_slo_text(value["objective"]), **rest}
    return value


SLOInput = Annotated[SLO, BeforeValidator(_slo_input)]


class PlanSpec(Strict):
    """A test plan: what to call, how hard, and what counts as good enough."""

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    target: Target
    endpoints: list[Endpoint] = Field(min_length=1, max_length=200)
    load: LoadProfile
    slos: list[SLOInput] = Field(
        default_factory=list,
        description="'p95 < 300ms' or {objective, endpoint}; none given: platform defaults.",
    )

    @model_validator(mode="after")
    def _references(self) -> PlanSpec:
        names = [e.name for e in self.endpoints]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"endpoint names must be unique; repeated: {', '.join(duplicates)}")
        for slo in self.slos:
            if slo.endpoint is not None and slo.endpoint not in names:
                raise ValueError(f"SLO {slo.text!r} names unknown endpoint {slo.endpoint!r}")
        return self


# Applied when a plan has no SLOs (design spec §8: "use platform defaults; warn engineer").
PLATFORM_DEFAULT_SLOS = ("p95 < 500ms", "error_rate < 1%")


def effective_slos(spec: PlanSpec) -> tuple[list[SLO], bool]:
    """The plan's SLOs, or the platform defaults; the flag says which."""
    if spec.slos:
        return list(spec.slos), False
    return [SLO.model_validate(parse_slo_text(text)) for text in PLATFORM_DEFAULT_SLOS], True


class PlanOut(BaseModel):
    id: uuid.UUID
    name: str
    version: int
    created_at: datetime
    spec: PlanSpec
    script_sha256: str
    script: str
    links: dict[str, str]
