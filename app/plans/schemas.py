"""The test-plan language (v1): what a client POSTs to ``/plan`` as JSON or YAML.

A plan has a target, test data, scenarios (user workflows of ordered steps, each with a
traffic weight), a load profile preset and SLOs. A v0 plan's flat ``endpoints`` list is still
accepted: it becomes one scenario called ``main``.
"""

from __future__ import annotations

import csv
import io
import math
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
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from app.core import slis
from app.core.errors import GuardrailViolation
from app.guardrails.hosts import normalise_host, unsafe_character
from app.plans import templating
from app.plans.load_profiles import (
    Duration,
    LoadProfile,
    Pause,
    Strict,
    format_duration,
    parse_duration,
)

__all__ = ["Duration", "format_duration", "parse_duration"]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
VAR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
SECRET_PATTERN = r"^[A-Z][A-Z0-9_]{0,63}$"
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
MAX_DATA_ROWS = 50_000
# RFC 9110 field names are tokens; values may not hold control characters (tab aside).
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
HEADER_VALUE_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
PATH_FORBIDDEN = re.compile(r"[\x00-\x20\x7f#]")
# JavaScript numbers are doubles: larger integers would be rounded on the way to the target.
MAX_SAFE_INTEGER = 2**53
# JavaScript regexes: Python-only syntax would pass re.compile yet fail (or never match) in k6.
PYTHON_ONLY_REGEX = re.compile(r"\(\?P[<=]|\\A|\\Z|\(\?[aiLmsux]+[):]")


def check_headers(headers: dict[str, str]) -> dict[str, str]:
    for name, value in headers.items():
        if not HEADER_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid HTTP header name")
        if HEADER_VALUE_FORBIDDEN.search(value):
            raise ValueError(
                f"the value of header {name!r} holds a line break or control character"
            )
    return headers


def check_json_numbers(value: Any, where: str) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: {value} is not a JSON number")
    if isinstance(value, int) and abs(value) > MAX_SAFE_INTEGER:
        raise ValueError(
            f"{where}: {value} is beyond what k6 (JavaScript) sends exactly (±2^53); "
            "send it as a string"
        )
    if isinstance(value, dict):
        for item in value.values():
            check_json_numbers(item, where)
    elif isinstance(value, list):
        for item in value:
            check_json_numbers(item, where)
    return value


class Auth(Strict):
    """Credentials by reference: the worker reads ``PERF_AGENT_SECRET_<secret>`` at run time.

    The value is never stored, returned or written into the script.
    """

    type: Literal["bearer", "basic", "header"]
    secret: str = Field(pattern=SECRET_PATTERN, description="Name of the secret, e.g. API_TOKEN")
    header: str = Field(
        default="Authorization", min_length=1, max_length=100, pattern=HEADER_NAME.pattern
    )

    @property
    def env_var(self) -> str:
        return f"PERF_AGENT_SECRET_{self.secret}"


class Target(Strict):
    base_url: str = Field(description="Scheme, host and optional port (and path prefix).")
    environment: str = Field(default="staging", max_length=100)
    headers: dict[str, str] = Field(default_factory=dict, description="Sent with every request")
    auth: Auth | None = None

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        bad = unsafe_character(value)
        if bad is not None:  # urlsplit would silently drop a CR, LF or tab
            raise ValueError(
                f"base_url must not contain whitespace or control characters (found {bad})"
            )
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url must be an absolute http(s) URL, e.g. http://127.0.0.1:8080")
        if parts.query or parts.fragment:
            raise ValueError("base_url must not carry a query string or fragment")
        try:
            host = normalise_host(parts.hostname)
        except GuardrailViolation as exc:
            raise ValueError(f"base_url: {exc.detail}") from None
        if not parts.hostname.isascii():
            # Stored, rendered and resolved as the IDNA name the guardrails judge.
            userinfo, at, _ = parts.netloc.rpartition("@")
            port = f":{parts.port}" if parts.port is not None else ""
            shown = f"[{host}]" if ":" in host else host
            value = parts._replace(netloc=f"{userinfo}{at}{shown}{port}").geturl()
        return value.rstrip("/")

    @property
    def hostname(self) -> str:
        return urlsplit(self.base_url).hostname or ""

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        return check_headers(value)


class ThinkRange(Strict):
    min: Pause
    max: Pause

    @model_validator(mode="after")
    def _ordered(self) -> ThinkRange:
        if self.max < self.min:
            raise ValueError("think_time.max must be at least think_time.min")
        return self


ThinkTime = Annotated[Pause | ThinkRange, Field(union_mode="left_to_right")]


class Check(Strict):
    """One assertion on a response: its status, a JSON value, or the body text."""

    status: list[int] | None = None
    json_path: str | None = Field(
        default=None,
        alias="json",
        max_length=500,
        description="k6/GJSON path into the JSON body, e.g. 'data.items.0.id'",
    )
    equals: Any = None
    exists: bool | None = None
    body_contains: str | None = None

    model_config = Strict.model_config | {"populate_by_name": True}

    @field_validator("status", mode="before")
    @classmethod
    def _status_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) else value

    @property
    def has_equals(self) -> bool:
        """``equals: null`` is a real expectation; an absent ``equals`` is none."""
        return "equals" in self.model_fields_set

    @model_validator(mode="after")
    def _one_kind(self) -> Check:
        kinds = [
            self.status is not None,
            self.json_path is not None,
            self.body_contains is not None,
        ]
        if sum(kinds) != 1:
            raise ValueError("a check has exactly one of: status, json, body_contains")
        if self.json_path is None and (self.has_equals or self.exists is not None):
            raise ValueError("equals/exists go with a json check")
        if self.has_equals and self.exists is False:
            raise ValueError("a value cannot both equal something and be absent")
        check_json_numbers(self.equals, "equals")
        return self

    @model_serializer(mode="wrap")
    def _omit_absent_equals(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict) and not self.has_equals:
            data.pop("equals", None)
        return data


class Extract(Strict):
    """Where to find a value to keep in ``vars`` for later steps."""

    json_path: str | None = Field(default=None, alias="json", max_length=500)
    header: str | None = Field(default=None, max_length=100)
    regex: str | None = Field(
        default=None, max_length=500, description="Its first capture group is kept"
    )

    model_config = Strict.model_config | {"populate_by_name": True}

    @model_validator(mode="after")
    def _one_source(self) -> Extract:
        if sum(v is not None for v in (self.json_path, self.header, self.regex)) != 1:
            raise ValueError("an extraction has exactly one of: json, header, regex")
        if self.regex is not None:
            # k6 runs JavaScript regexes; the script also compiles each one when it loads, so
            # `k6 inspect` rejects what JavaScript cannot parse before the plan is stored.
            if PYTHON_ONLY_REGEX.search(self.regex):
                raise ValueError(
                    "this is Python regex syntax ((?P<…>), \\A, \\Z or inline flags); k6 uses "
                    "JavaScript regexes, e.g. (?<name>…), ^ and $"
                )
            if "(" not in self.regex.replace("\\(", ""):
                raise ValueError("the regex needs a capture group, e.g. 'id=(\\d+)'")
        return self


def _status_list(value: Any) -> Any:
    return [value] if isinstance(value, int) else value


class Step(Strict):
    """One request of a workflow. Strings may reference ``{{vars.x}}`` and ``{{data.col}}``."""

    name: str = Field(pattern=NAME_PATTERN, description="Tag under which results are reported")
    method: HttpMethod = "GET"
    path: str = Field(min_length=1, max_length=2000)
    query: dict[str, str | int | float | bool] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    body: Any = Field(default=None, description="JSON value (sent as JSON) or a raw string")
    expect_status: Annotated[
        list[int], BeforeValidator(_status_list, json_schema_input_type=list[int] | int)
    ] = Field(default_factory=lambda: [200], min_length=1)
    checks: list[Check] = Field(default_factory=list)
    extract: dict[str, Extract] = Field(default_factory=dict)
    think_time: ThinkTime | None = None
    group: str | None = Field(default=None, max_length=200)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("path must start with '/' (it is appended to target.base_url)")
        if PATH_FORBIDDEN.search(value):
            raise ValueError(
                "path is sent as URL text: no spaces, control characters or '#'; put values "
                "with such characters in query or behind a {{data.…}} reference (encoded)"
            )
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        return check_headers(value)

    @field_validator("body", "query")
    @classmethod
    def _numbers(cls, value: Any) -> Any:
        return check_json_numbers(value, "body/query")

    @field_validator("group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        if value is not None and (not value or "::" in value):
            raise ValueError("a group name is non-empty and has no '::' (k6 uses it to nest)")
        return value

    @field_validator("expect_status")
    @classmethod
    def _status_range(cls, value: list[int]) -> list[int]:
        for status in value:
            if not 100 <= status <= 599:
                raise ValueError(f"{status} is not an HTTP status")
        return value

    @field_validator("extract")
    @classmethod
    def _var_names(cls, value: dict[str, Extract]) -> dict[str, Extract]:
        for name in value:
            if not re.match(VAR_PATTERN, name):
                raise ValueError(f"{name!r} is not a variable name ([A-Za-z_][A-Za-z0-9_]*)")
        return value

    @property
    def needs_body(self) -> bool:
        return bool(self.extract) or any(c.status is None for c in self.checks)

    def strings(self) -> list[str]:
        """Every string of the request that may hold references."""
        found = [self.path, *map(str, self.query.values()), *self.headers.values()]
        found += _strings_in(self.body)
        found += [s for check in self.checks for s in _strings_in(check.equals)]
        return found


def _strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings_in(v)]
    return []


class Scenario(Strict):
    """A user workflow: its steps run in order in one iteration."""

    name: str = Field(pattern=NAME_PATTERN)
    weight: int = Field(default=1, ge=1, le=100, description="Share of iterations")
    data: str | None = Field(default=None, description="Data set whose row each iteration uses")
    steps: list[Step] = Field(min_length=1, max_length=200)


class DataSet(Strict):
    """Test data: CSV text or a list of JSON objects; one row per iteration."""

    format: Literal["csv", "json"] = "json"
    inline: str | list[dict[str, Any]] = Field(
        description="CSV text with a header line, or a list of JSON objects; filled in from "
        "`dataset` when that is given"
    )
    dataset: uuid.UUID | None = Field(
        default=None, description="An uploaded data set (POST …/datasets) to use instead"
    )
    selection: Literal["sequential", "random", "unique"] = Field(
        default="sequential",
        description="sequential: row i for iteration i (cycling); random: seeded; "
        "unique: each row once, the test stops when they run out",
    )

    @model_validator(mode="after")
    def _parse(self) -> DataSet:
        rows = self.rows
        check_json_numbers(rows, "data")
        if not rows:
            raise ValueError("a data set needs at least one row")
        if len(rows) > MAX_DATA_ROWS:
            raise ValueError(f"a data set holds at most {MAX_DATA_ROWS} rows")
        return self

    @property
    def rows(self) -> list[dict[str, Any]]:
        if self.format == "csv":
            if not isinstance(self.inline, str):
                raise ValueError("csv data is given as text with a header line")
            try:
                return [dict(r) for r in csv.DictReader(io.StringIO(self.inline.strip()))]
            except csv.Error as exc:  # e.g. a field longer than csv's limit (131072)
                raise ValueError(f"the CSV data cannot be read: {exc}") from None
        if isinstance(self.inline, str):
            raise ValueError("json data is given as a list of objects")
        return self.inline

    @property
    def columns(self) -> set[str]:
        return {key for row in self.rows for key in row}


LATENCY_SLIS = slis.LATENCY
Op = Literal["<", "<=", ">", ">="]

_SLO_TEXT = re.compile(
    r"^\s*(?P<sli>[a-z_][a-z0-9_]*|p\(\d+(?:\.\d+)?\))\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<sign>[+-])?(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>ms|s|%|/s)?\s*$"
)
# A criterion without its SLI, as in Keptn's SLO files: "<600ms", "<=+10%".
_CRITERION = re.compile(r"^\s*(?P<op><=|>=|<|>)\s*(?P<rest>[+-]?\d.*)$")


class SLO(Strict):
    """One objective, in the spirit of Keptn's SLO files. Latency targets are in milliseconds,
    error rates are fractions.

    It passes when its absolute criterion (``op`` ``target``) and its relative one
    (``relative_op`` ``relative_change``, against the baseline runs' value) both hold; if
    not, it is a warning when its ``warning`` criterion holds, else it fails. Passing earns
    ``weight`` points, a warning half of them; a failed ``key_sli`` fails the whole
    evaluation whatever the score."""

    sli: slis.SliName
    op: Op
    target: float | None = Field(
        default=None, ge=0, description="Absolute pass criterion; null when only relative"
    )
    relative_op: Op | None = None
    relative_change: float | None = Field(
        default=None, description="Relative pass criterion: +0.10 is 'at most 10 % above'"
    )
    warning_op: Op | None = None
    warning_target: float | None = Field(default=None, ge=0)
    weight: int = Field(default=1, ge=1, le=100)
    key_sli: bool = Field(default=False, description="Failing it fails the whole evaluation")
    endpoint: str | None = Field(default=None, description="Step name; omitted: all requests.")

    @model_validator(mode="before")
    @classmethod
    def _step_alias(cls, value: Any) -> Any:
        if isinstance(value, dict) and "step" in value:
            value = {**value, "endpoint": value["step"]}
            del value["step"]
        return value

    @model_validator(mode="after")
    def _has_a_criterion(self) -> SLO:
        if self.target is None and self.relative_change is None:
            raise ValueError(f"the {self.sli} objective needs an absolute or a relative criterion")
        if (self.relative_op is None) != (self.relative_change is None):
            raise ValueError("a relative criterion needs both relative_op and relative_change")
        if (self.warning_op is None) != (self.warning_target is None):
            raise ValueError("a warning criterion needs both warning_op and warning_target")
        return self

    @property
    def unit(self) -> str:
        return slis.BY_NAME[self.sli].unit

    def shown(self, value: float) -> str:
        if self.sli == "error_rate":
            return f"{value * 100:g}%"
        if self.sli == "rps":
            return f"{value:g}/s"
        return f"{value:g}ms"

    @property
    def text(self) -> str:
        parts = []
        if self.target is not None:
            parts.append(f"{self.sli} {self.op} {self.shown(self.target)}")
        if self.relative_change is not None:
            parts.append(f"{self.sli} {self.relative_op} {self.relative_change * 100:+g}%")
        return " and ".join(parts)

    @property
    def warning_text(self) -> str | None:
        if self.warning_target is None:
            return None
        return f"{self.sli} {self.warning_op} {self.shown(self.warning_target)}"

    @property
    def key(self) -> str:
        return f"{self.endpoint or '*'}:{self.text}"


def parse_slo_text(text: str) -> dict[str, Any]:
    """'p95 < 300ms' → absolute; 'p95 <= +10%' → relative to the baseline (a signed %)."""
    match = _SLO_TEXT.match(text.lower())
    if not match:
        raise ValueError(
            f"{text!r} is not an objective like 'p95 < 300ms', 'error_rate < 1%', 'rps > 50' "
            "or, relative to the baseline, 'p95 <= +10%'"
        )
    sli = slis.canonical(match["sli"])
    if sli not in slis.BY_NAME:
        raise ValueError(f"{text!r}: unknown indicator {match['sli']!r}")
    value = float(match["value"])
    unit = match["unit"]
    if match["sign"]:
        if unit != "%":
            raise ValueError(f"{text!r}: a relative criterion is a signed percentage, e.g. +10%")
        change = value / 100 * (-1 if match["sign"] == "-" else 1)
        return {
            "sli": sli,
            "op": match["op"],
            "relative_op": match["op"],
            "relative_change": change,
        }
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


def _criterion(sli: str, text: str, field: str) -> dict[str, Any]:
    if not isinstance(text, str) or not _CRITERION.match(text):
        raise ValueError(f"{field} must be a criterion like '<600ms' or '<=+10%', not {text!r}")
    return parse_slo_text(f"{sli} {text.strip()}")


def _slo_input(value: Any) -> Any:
    """An SLO as text, as {objective, endpoint, …}, or Keptn-style
    {sli, pass: [criteria…], warning: criterion, weight, key_sli}."""
    if isinstance(value, str):
        return parse_slo_text(value)
    if not isinstance(value, dict):
        return value
    rest = {k: v for k, v in value.items() if k not in ("objective", "pass", "warning")}
    parsed: dict[str, Any] = {}
    if "objective" in value:
        if not isinstance(value["objective"], str):
            raise ValueError("objective must be a string like 'p95 < 300ms'")
        parsed = parse_slo_text(value["objective"])
    elif "pass" in value:
        criteria = value["pass"] if isinstance(value["pass"], list) else [value["pass"]]
        raw = str(value.get("sli", ""))
        sli = slis.ALIASES.get(raw.lower(), raw)
        for text in criteria:
            one = _criterion(sli, text, "pass")
            if ("target" in one and "target" in parsed) or (
                "relative_change" in one and ("relative_change" in parsed)
            ):
                raise ValueError("pass takes at most one absolute and one relative criterion")
            if "target" in one:
                parsed.update(one)  # the absolute criterion owns ``op``
            else:
                parsed.setdefault("sli", one["sli"])
                parsed.setdefault("op", one["op"])
                parsed["relative_op"] = one["relative_op"]
                parsed["relative_change"] = one["relative_change"]
        rest.pop("sli", None)
    if "warning" in value:
        sli = parsed.get("sli") or value.get("sli", "")
        warn = _criterion(str(sli), value["warning"], "warning")
        if "target" not in warn:
            raise ValueError("a warning criterion is absolute, like '<600ms'")
        parsed["warning_op"], parsed["warning_target"] = warn["op"], warn["target"]
    return {**parsed, **rest}


# A plan writes an objective as text ('p95 < 300ms'), as {objective, endpoint, warning …}, in
# Keptn's {sli, pass, warning} form or field by field; the schema says so, _slo_input decides.
SLOInput = Annotated[
    SLO, BeforeValidator(_slo_input, json_schema_input_type=str | SLO | dict[str, Any])
]


class Scoring(Strict):
    """Keptn's total score: objectives earn their weight when they pass, half of it on a
    warning. The defaults (100/100) mean every objective must pass."""

    pass_: float = Field(default=100, ge=0, le=100, alias="pass")
    warning: float = Field(default=100, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Scoring:
        if self.warning > self.pass_:
            raise ValueError("scoring.warning cannot be above scoring.pass")
        return self


class SystemMetrics(Strict):
    """PromQL queries about the system under test (CPU, memory, DB connections …), fetched from
    a Prometheus HTTP API over the run's window and set beside its load and latency."""

    prometheus_url: str = Field(description="e.g. http://prometheus.staging.example:9090")
    queries: dict[str, str] = Field(
        min_length=1, max_length=10, description="name → PromQL, e.g. cpu: sum(rate(...[30s]))"
    )
    step: Duration = Field(default=5.0, description="Resolution of the fetched series")

    @field_validator("prometheus_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("prometheus_url must be an absolute http(s) URL")
        return value.rstrip("/")

    @field_validator("queries")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, query in value.items():
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,60}", name):
                raise ValueError(f"query name {name!r}: letters, digits, _ . - only")
            if not query.strip() or len(query) > 2000:
                raise ValueError(f"query {name!r} is empty or longer than 2000 characters")
        return value


class RemoteWrite(Strict):
    """Where this plan's runs also send their k6 series (Prometheus remote write), beside any
    endpoint the deployment forwards to; under the same host rules as the target."""

    url: str = Field(description="e.g. http://prometheus.staging.example:9090/api/v1/write")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        bad = unsafe_character(value)
        parts = urlsplit(value)
        if bad is not None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("remote_write.url must be an absolute http(s) URL")
        if parts.username or parts.password:
            raise ValueError("remote_write.url must not carry credentials")
        return value


class Profiling(Strict):
    """Where the target's time goes, sampled during the steady middle of each run (the seed's
    benchmarker, §5.6): its functions and its queries, cited by the analysis."""

    python: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="py-spy the target's own process when it is on the worker's machine (a "
        "loopback target): auto tries and says why not, on warns when it cannot, off never",
    )
    rate: int = Field(default=20, ge=1, le=200, description="py-spy samples per second")
    pprof_url: str | None = Field(
        default=None,
        description="A Go net/http/pprof CPU profile endpoint, e.g. "
        "http://app.staging.example:6060/debug/pprof/profile (same host rules as the target)",
    )
    postgres_dsn_secret: str | None = Field(
        default=None,
        pattern=SECRET_PATTERN,
        description="Name of the secret holding a read-only PostgreSQL DSN "
        "(PERF_AGENT_SECRET_<name>, read by the worker only): pg_stat_statements deltas",
    )

    @field_validator("pprof_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if (
            unsafe_character(value) is not None
            or parts.scheme not in ("http", "https")
            or not (parts.hostname)
        ):
            raise ValueError("pprof_url must be an absolute http(s) URL")
        if parts.username or parts.password or parts.query:
            raise ValueError("pprof_url must carry no credentials and no query (seconds is set)")
        return value


class Budget(Strict):
    """What one run may spend; the server's own limits (PERF_AGENT_COST_MAX_*) cap it."""

    vu_seconds: float | None = Field(default=None, gt=0, description="VUs × seconds")
    requests: int | None = Field(default=None, gt=0)


class PlanSpec(Strict):
    """A test plan: what to call, how hard, and what counts as good enough."""

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    target: Target
    data: dict[str, DataSet] = Field(default_factory=dict)
    scenarios: list[Scenario] = Field(default_factory=list, max_length=50)
    endpoints: list[Step] | None = Field(
        default=None, description="v0 shorthand: one scenario 'main' with these steps"
    )
    load: LoadProfile | None = Field(
        default=None, description="Required, except with `script` (its options set the load)"
    )
    script: str | None = Field(
        default=None,
        max_length=1_000_000,
        description="A hand-written k6 script to run as it is, instead of scenarios",
    )
    slos: list[SLOInput] = Field(
        default_factory=list,
        description="'p95 < 300ms', 'p95 <= +10%' (against the baseline), {objective, "
        "endpoint, warning, weight, key_sli} or Keptn-style {sli, pass: [criteria], warning}; "
        "none given: platform defaults.",
    )
    scoring: Scoring = Field(
        default_factory=lambda: Scoring(),
        description="Total score (0-100) an evaluation needs to pass, or to be a warning",
    )
    seed: int = Field(default=1, ge=0, le=2**31 - 1, description="Seed for everything random")
    budget: Budget | None = Field(
        default=None, description="Alert at 80 %, graceful stop at 100 % (state: partial)"
    )
    system_metrics: SystemMetrics | None = Field(
        default=None,
        description="Prometheus queries about the target, fetched for the analysis (a target "
        "on the worker's machine is also sampled with psutil, without asking)",
    )
    remote_write: RemoteWrite | None = Field(
        default=None,
        description="Forward the runs' k6 series to this Prometheus remote-write endpoint too",
    )
    profiling: Profiling | None = Field(
        default=None,
        description="Profile the target during the run (unset: py-spy a loopback target's "
        "Python process when possible)",
    )

    @model_validator(mode="after")
    def _normalise_and_check(self) -> PlanSpec:
        if self.script is not None:
            return self._check_raw()
        if self.load is None:
            raise ValueError("a plan needs a load profile (load)")
        if self.endpoints is not None:
            if self.scenarios:
                raise ValueError("give scenarios or endpoints, not both")
            self.scenarios = [Scenario(name="main", steps=self.endpoints)]
            self.endpoints = None
        if not self.scenarios:
            raise ValueError("a plan needs at least one scenario (or endpoints)")
        for kind, names in (
            ("scenario", [s.name for s in self.scenarios]),
            ("step", self.step_names),
        ):
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"{kind} names must be unique; repeated: {', '.join(repeated)}")
        for scenario in self.scenarios:
            self._check_references(scenario)
        for slo in self.slos:
            if slo.endpoint is not None and slo.endpoint not in self.step_names:
                raise ValueError(f"SLO {slo.text!r} names unknown step {slo.endpoint!r}")
        return self

    def _check_raw(self) -> PlanSpec:
        if self.scenarios or self.endpoints:
            raise ValueError("give scenarios (or endpoints) or a script, not both")
        if self.load is not None and self.load.profile != "raw":
            raise ValueError("a script sets its own load in its options; leave out load")
        for slo in self.slos:
            if slo.endpoint is not None:
                raise ValueError(
                    f"SLO {slo.text!r}: a hand-written script's results are judged as a whole"
                )
        return self

    @property
    def is_raw(self) -> bool:
        return self.script is not None

    @property
    def load_profile(self) -> LoadProfile:
        """The load (set for every stored plan: the service fills in a script's)."""
        if self.load is None:
            raise ValueError("this plan's load is not known yet")
        return self.load

    def _check_references(self, scenario: Scenario) -> None:
        columns: set[str] = set()
        if scenario.data is not None:
            if scenario.data not in self.data:
                raise ValueError(
                    f"scenario {scenario.name!r} uses data set {scenario.data!r}, "
                    f"which the plan does not define"
                )
            columns = self.data[scenario.data].columns
        known: set[str] = set()
        for step in scenario.steps:
            for text in step.strings():
                for ref in templating.references(text):
                    if ref.namespace == "data" and ref.name not in columns:
                        raise ValueError(
                            f"step {step.name!r} uses {{{{data.{ref.name}}}}} but scenario "
                            f"{scenario.name!r} has no data column {ref.name!r}"
                        )
                    if ref.namespace == "vars" and ref.name not in known:
                        raise ValueError(
                            f"step {step.name!r} uses {{{{vars.{ref.name}}}}} before any "
                            "earlier step extracts it"
                        )
            known |= set(step.extract)

    @property
    def steps(self) -> list[Step]:
        return [step for scenario in self.scenarios for step in scenario.steps]

    @property
    def step_names(self) -> list[str]:
        return [step.name for step in self.steps]


# Applied when a plan has no SLOs (design spec §8: "use platform defaults; warn engineer").
PLATFORM_DEFAULT_SLOS = ("p95 < 500ms", "error_rate < 1%")


def effective_slos(spec: PlanSpec) -> tuple[list[SLO], bool]:
    """The plan's SLOs, or the platform defaults; the flag says which."""
    if spec.slos:
        return list(spec.slos), False
    return [SLO.model_validate(parse_slo_text(text)) for text in PLATFORM_DEFAULT_SLOS], True


class ReviewIn(Strict):
    action: Literal["approve", "archive"]
    reviewer: str | None = Field(
        default=None,
        max_length=200,
        description="Ignored (accepted for older clients): the reviewer recorded is the API "
        "key's owner",
        json_schema_extra={"deprecated": True},
    )
    comment: str | None = Field(default=None, max_length=5000)


class PlanOut(BaseModel):
    id: uuid.UUID
    family_id: uuid.UUID = Field(description="Shared by every version of this plan")
    name: str
    version: int
    status: Literal["draft", "approved", "archived"]
    reviewed_by: str | None
    review_comment: str | None
    reviewed_at: datetime | None
    created_at: datetime
    spec: PlanSpec
    script_sha256: str
    script: str
    links: dict[str, str]


class PlanSummary(BaseModel):
    """A plan version in a list: no spec, no script (both at ``links.self``)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    family_id: uuid.UUID
    name: str
    version: int
    status: Literal["draft", "approved", "archived"]
    reviewed_by: str | None
    reviewed_at: datetime | None
    created_at: datetime
    script_sha256: str
    links: dict[str, str]


def plan_json_schema() -> dict[str, Any]:
    """The plan language as JSON Schema (2020-12): what a plan may say, shorthands included,
    so an editor validating against it accepts every plan the service accepts."""
    schema = PlanSpec.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "urn:perf-agent:plan:v1"
    schema["title"] = "perf-agent test plan (v1)"
    defs = schema["$defs"]
    # A check's status may be one code (the field validator makes it a list).
    status = defs["Check"]["properties"]["status"]
    status["anyOf"] = [{"type": "integer"}, *status["anyOf"]]
    # A load without `profile` is a constant load (vus + duration) or a ramp (stages), as v0
    # plans wrote it (_infer_profile): the profile's discriminator is for the validated form.
    for implied in ("Load", "Ramp"):
        defs[implied]["required"] = [f for f in defs[implied]["required"] if f != "profile"]
    for variant in schema["properties"]["load"]["anyOf"]:
        if "oneOf" in variant:
            variant.pop("discriminator", None)
            variant["anyOf"] = variant.pop("oneOf")
    # A step's method in any case ('post'): Step._upper makes it upper case.
    method = defs["Step"]["properties"]["method"]
    spelt = "|".join("".join(f"[{c}{c.lower()}]" for c in name) for name in method["enum"])
    method["anyOf"] = [{"enum": method.pop("enum")}, {"pattern": f"^(?:{spelt})$"}]
    # `json_path`, the field's own name, is accepted for `json` (populate_by_name), not both.
    for model in ("Check", "Extract"):
        properties = defs[model]["properties"]
        properties["json_path"] = {**properties["json"], "description": "Another name for json"}
        defs[model]["not"] = {"required": ["json", "json_path"]}
    # A data set naming an uploaded one (`dataset`) needs no `inline`: the service fills it in
    # (datasets.resolve_references) before the plan is validated.
    data_set = defs["DataSet"]
    data_set["required"] = [f for f in data_set["required"] if f != "inline"]
    data_set["anyOf"] = [{"required": ["inline"]}, {"required": ["dataset"]}]
    return schema
