"""Bodies are bounded while they stream in: declared or chunked, over the limit is a 413."""

from __future__ import annotations

from collections.abc import AsyncIterator

from httpx import AsyncClient

from app.core.body_limit import DEFAULT_LIMIT, MB
from tests.builders import API


async def test_a_declared_length_over_the_limit_is_refused_before_it_is_read(
    client: AsyncClient,
) -> None:
    response = await client.post(
        f"{API}/execute",
        content=b"x" * (DEFAULT_LIMIT + 1),
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "payload_too_large"
    assert response.json()["limit_bytes"] == DEFAULT_LIMIT


async def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(client: AsyncClient) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(40):  # 40 MB if it were all read
            sent += MB
            yield b" " * MB

    response = await client.post(
        f"{API}/plan", content=chunks(), headers={"Content-Type": "application/yaml"}
    )

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert sent <= 3 * MB


async def test_a_plan_just_over_its_own_limit_keeps_its_precise_error(client: AsyncClient) -> None:
    body = b"name: big\n" + b"#" * (MB + 1000) + b"\n"

    response = await client.post(
        f"{API}/plan", content=body, headers={"Content-Type": "application/yaml"}
    )

    assert response.status_code == 413
    assert response.json()["code"] == "plan.too_large"
