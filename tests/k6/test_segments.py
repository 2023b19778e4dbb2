"""One test split across three real k6 processes with k6's execution segments: started paused,
resumed together through their REST APIs, setup and teardown in segment 0 only, and their
request counts adding up exactly to the unsplit test's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.cli import free_port
from app.core.settings import Settings
from app.k6 import segments
from app.k6.process import K6Outcome, run_k6

pytestmark = pytest.mark.k6
ITERATIONS = 300


def script(target: str) -> str:
    return f"""
import http from 'k6/http';
export const options = {{
  scenarios: {{ shop: {{ executor: 'shared-iterations', vus: 6, iterations: {ITERATIONS},
                         maxDuration: '30s' }} }},
}};
export function setup() {{ console.log('setup ran'); }}
export default function () {{ http.get('{target}/api/products/1'); }}
export function teardown() {{ console.log('teardown ran'); }}
"""


def requests_of(outcome: K6Outcome) -> int:
    assert outcome.summary is not None
    return int(outcome.summary["metrics"]["http_reqs"]["values"]["count"])


def test_the_segments_cover_the_sequence_and_later_ones_skip_setup() -> None:
    assert segments.sequence(3) == "0,1/3,2/3,1"
    assert [segments.segment(i, 3) for i in range(3)] == ["0:1/3", "1/3:2/3", "2/3:1"]
    assert "--no-setup" not in segments.arguments(0, 3)
    assert segments.arguments(2, 3)[-2:] == ["--no-setup", "--no-teardown"]
    with pytest.raises(ValueError, match="segment 3 of 3 does not exist"):
        segments.segment(3, 3)
    with pytest.raises(ValueError, match="1 to 32 segments"):
        segments.sequence(0)


async def test_three_segments_started_together_add_up_to_the_whole_test(
    tmp_path: Path, settings: Settings, demo_target: str
) -> None:
    path = tmp_path / "script.js"
    path.write_text(script(demo_target))
    whole = await run_k6(
        binary=settings.k6_binary, script=path, workdir=tmp_path / "whole",
        timeout_s=60, grace_s=5,
    )  # fmt: skip

    addresses = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    runs = [
        run_k6(
            binary=settings.k6_binary,
            script=path,
            workdir=tmp_path / f"segment-{i}",
            timeout_s=60,
            grace_s=5,
            address=addresses[i],
            extra_args=segments.arguments(i, 3),
        )
        for i in range(3)
    ]
    *parts, spread = await asyncio.gather(*runs, segments.resume_together(addresses))

    assert whole.exit_code == 0, whole.stderr_tail
    assert requests_of(whole) == ITERATIONS
    assert [p.exit_code for p in parts] == [0, 0, 0], [p.stderr_tail for p in parts]
    assert [requests_of(p) for p in parts] == [100, 100, 100]
    assert sum(requests_of(p) for p in parts) == requests_of(whole)  # exactly
    assert spread < 1.0  # resumed together, not one after another
    logs = [(tmp_path / f"segment-{i}" / "k6.log").read_text() for i in range(3)]
    assert ["setup ran" in log for log in logs] == [True, False, False]
    assert ["teardown ran" in log for log in logs] == [True, False, False]
