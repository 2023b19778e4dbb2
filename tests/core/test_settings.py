"""Settings as a deployment gives them: environment variables, some passed through empty."""

from __future__ import annotations

import pytest

from app.core.settings import Settings


def test_an_llm_key_passed_through_empty_is_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERF_AGENT_OPENAI_API_KEY", "")
    monkeypatch.setenv("PERF_AGENT_ANTHROPIC_API_KEY", "")

    settings = Settings()

    assert settings.openai_api_key is None
    assert settings.anthropic_api_key is None


def test_an_llm_key_with_a_value_is_kept_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERF_AGENT_OPENAI_API_KEY", "sk-test")

    settings = Settings()

    assert settings.openai_api_key is not None
    assert settings.openai_api_key.get_secret_value() == "sk-test"
    assert "sk-test" not in repr(settings)


def test_the_per_target_limit_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PERF_AGENT_MAX_RUNS_PER_TARGET", "3")

    assert Settings().max_runs_per_target == 3
    monkeypatch.setenv("PERF_AGENT_MAX_RUNS_PER_TARGET", "0")
    with pytest.raises(ValueError, match="max_runs_per_target"):
        Settings()
