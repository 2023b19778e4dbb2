"""docker-compose.yml as Compose reads it (Debian's docker-compose, `.ci/run` installs it; no
Docker engine is needed to check a file), and what the stack must hold together."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPOSITORY

COMPOSE = REPOSITORY / "docker-compose.yml"
ENV_EXAMPLE = REPOSITORY / ".env.example"


def compose(*args: str, cwd: Path = REPOSITORY) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    assert binary is not None, "docker-compose is not installed (.ci/run installs it)"
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def resolved() -> dict[str, Any]:
    done = compose("--env-file", str(ENV_EXAMPLE), "config")
    assert done.returncode == 0, done.stderr
    loaded: dict[str, Any] = yaml.safe_load(done.stdout)
    return loaded


def test_compose_accepts_the_file_with_the_example_environment() -> None:
    done = compose("--env-file", str(ENV_EXAMPLE), "config", "--quiet")

    assert done.returncode == 0, done.stderr


def test_compose_refuses_to_start_without_the_passwords_being_set(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")

    done = compose("--env-file", str(empty), "config", "--quiet")

    assert done.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in done.stderr


def test_compose_rejects_a_file_it_does_not_understand(tmp_path: Path) -> None:
    """The check above checks something: a misspelt key fails it."""
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["api"]["comand"] = broken["services"]["api"].pop("command")
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(broken))

    done = compose("--env-file", str(ENV_EXAMPLE), "config", "--quiet", cwd=tmp_path)

    assert done.returncode != 0
    assert "comand" in done.stderr


def test_the_stack_has_the_api_workers_database_prometheus_and_grafana() -> None:
    services = resolved()["services"]

    assert set(services) == {"postgres", "migrate", "api", "worker", "prometheus", "grafana"}
    assert services["api"]["command"] == ["perf-agent", "serve", "--no-worker"]
    assert services["worker"]["command"][:2] == ["perf-agent", "worker"]
    assert services["worker"]["deploy"]["replicas"] == 2
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
        env = services[name]["environment"]
        assert env["PERF_AGENT_DATABASE_URL"].startswith("postgresql://perf:change-me@postgres")
        assert env["PERF_AGENT_REMOTE_WRITE_URL"] == "http://prometheus:9090/api/v1/write"
    assert services["migrate"]["command"] == ["perf-agent", "db", "upgrade"]
    # Everything published is published on loopback only.
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert published
    assert all(str(p).startswith("127.0.0.1:") for p in published)


def test_prometheus_receives_k6_series_and_scrapes_the_api_and_every_worker() -> None:
    prometheus = resolved()["services"]["prometheus"]
    config = yaml.safe_load((REPOSITORY / "deploy/compose/prometheus.yml").read_text())

    assert "--web.enable-remote-write-receiver" in prometheus["command"]
    assert "--enable-feature=native-histograms" in prometheus["command"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["perf-agent"]["static_configs"] == [{"targets": ["api:8000"]}]
    assert jobs["perf-agent-worker"]["dns_sd_configs"][0]["names"] == ["worker"]
    assert jobs["perf-agent-worker"]["dns_sd_configs"][0]["port"] == 9101


def test_grafana_is_provisioned_with_the_shipped_dashboards_and_prometheus() -> None:
    grafana = resolved()["services"]["grafana"]
    mounts = {v.split(":")[1]: Path(v.split(":")[0]) for v in grafana["volumes"] if "/" in v}
    provider = yaml.safe_load(
        (REPOSITORY / "deploy/compose/grafana/provisioning/dashboards/perf-agent.yml").read_text()
    )
    source = yaml.safe_load(
        (REPOSITORY / "deploy/compose/grafana/provisioning/datasources/prometheus.yml").read_text()
    )

    dashboards = mounts[provider["providers"][0]["options"]["path"]]
    assert dashboards == REPOSITORY / "deploy/grafana"
    assert sorted(p.name for p in dashboards.glob("*.json")) == [
        "k6-native-histograms.json",
        "perf-agent-service.json",
    ]
    assert mounts["/etc/grafana/provisioning"] == REPOSITORY / "deploy/compose/grafana/provisioning"
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
    assert source["datasources"][0]["isDefault"] is True
