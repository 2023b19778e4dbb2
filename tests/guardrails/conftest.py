from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.guardrails.listeners import FakeDNS, Listeners, fake_dns, listeners


@pytest.fixture
def listen() -> Iterator[Listeners]:
    yield from listeners()


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    return fake_dns(monkeypatch)
