"""The command line as a newcomer meets it: its help, and what `serve` prints on the way up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from app.cli import app
from app.core.settings import Settings
from tests.conftest import free_port

COMMANDS = ["serve", "worker", "demo", "demo-target", "plan-schema", "gate", "db upgrade"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_names_values_not_python_types(command: str) -> None:
    result = CliRunner().invoke(app, [*command.split(), "--help"])

    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "<list[" not in result.output
    options = [line for line in result.output.splitlines() if line.lstrip().startswith("-")]
    assert options
    assert not [line for line in options if re.search(r"<\w+>", line)]


def test_serve_help_shows_its_defaults_and_gate_says_baseline_repeats() -> None:
    serve = CliRunner().invoke(app, ["serve", "--help"]).output
    gate = CliRunner().invoke(app, ["gate", "--help"]).output

    assert "127.0.0.1" in serve
    assert "8000" in serve
    assert "repeat" in gate.split("--baseline", 1)[1].split("--", 1)[0]


def test_a_relative_data_dir_is_resolved_once_where_the_process_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    settings = Settings(data_dir=Path(".perf-agent"))

    assert settings.data_dir == tmp_path / ".perf-agent"


def test_serve_on_an_embedded_database_says_where_the_data_is_and_when_it_is_ready(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PERF_AGENT_DATABASE_URL")
    }
    env.pop("XDG_RUNTIME_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--no-worker"],
        cwd=tmp_path,  # the default data dir, .perf-agent, is relative to where it starts
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("ready on") or time.monotonic() > deadline:
                break
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(30)
    text = "\n".join(lines)

    assert lines[-1] == (
        f"ready on http://127.0.0.1:{port} — console http://127.0.0.1:{port}/ui, "
        f"API docs http://127.0.0.1:{port}/docs — Ctrl-C stops"
    ), text
    assert f"data in {tmp_path / '.perf-agent'}" in lines[0], text
    assert len(lines) <= 6, text
    for noise in ("initdb", "XDG_RUNTIME_DIR", "Running upgrade", "Success. You can now"):
        assert noise not in text
