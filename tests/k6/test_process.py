"""The k6 subprocess: what it prints is stored and shown, so secrets never are."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.settings import Settings
from app.k6.process import (
    ScriptRejected,
    go_runtime_env,
    inspect_script,
    memory_bytes,
    redactor,
    run_k6,
)

pytestmark = pytest.mark.k6
SECRET = "s3cr3t-token-value"


def test_the_redactor_replaces_every_secret_value_longest_first() -> None:
    redact = redactor({"A": "abcd", "B": "abcdef-long"})

    assert redact(b"x abcdef-long y abcd z") == b"x [redacted] y [redacted] z"
    assert redactor(None)(b"abc") == b"abc"


async def test_a_script_that_logs_its_secret_leaves_no_trace_of_it(
    tmp_path: Path, settings: Settings
) -> None:
    script = tmp_path / "script.js"
    script.write_text(
        "export const options = { vus: 1, iterations: 1 };\n"
        "export default function () { console.log('token=' + __ENV.PERF_AGENT_SECRET_API); }\n"
    )

    outcome = await run_k6(
        binary=settings.k6_binary,
        script=script,
        workdir=tmp_path / "w",
        timeout_s=30,
        grace_s=5,
        secrets={"PERF_AGENT_SECRET_API": SECRET},
    )

    assert outcome.exit_code == 0
    assert "token=[redacted]" in outcome.stderr_tail
    assert SECRET not in outcome.stderr_tail
    assert SECRET not in (tmp_path / "w" / "k6.log").read_text()


async def test_an_init_error_quoting_a_secret_is_redacted(settings: Settings) -> None:
    with pytest.raises(ScriptRejected) as raised:
        await inspect_script(
            settings.k6_binary,
            "throw new Error('leaked ' + __ENV.PERF_AGENT_SECRET_API);\n",
            settings=settings,
            secrets={"PERF_AGENT_SECRET_API": SECRET},
        )

    assert SECRET not in str(raised.value)
    assert "leaked [redacted]" in str(raised.value)


async def test_inspect_reads_options_from_the_same_environment_as_a_run(
    settings: Settings,
) -> None:
    # k6 inspect leaves the environment out of __ENV unless asked; k6 run puts it in.
    script = (
        "export const options = { vus: __ENV.PERF_AGENT_SECRET_API ? 8 : 1, duration: '5s' };\n"
        "export default function () {}\n"
    )

    needs = await inspect_script(
        settings.k6_binary,
        script,
        requirements=True,
        settings=settings,
        secrets={"PERF_AGENT_SECRET_API": "(set when the run starts)"},
    )

    assert needs["maxVUs"] == 8


async def test_k6_s_warnings_are_counted_by_message(tmp_path: Path, settings: Settings) -> None:
    # One VU cannot keep 20 iterations/s of 200 ms each: k6 warns that it ran out of VUs.
    script = tmp_path / "script.js"
    script.write_text(
        "import { sleep } from 'k6';\n"
        "export const options = { scenarios: { s: { executor: 'constant-arrival-rate',\n"
        "  rate: 20, timeUnit: '1s', duration: '2s', preAllocatedVUs: 1, maxVUs: 1 } } };\n"
        "export default function () { sleep(0.2); }\n"
    )

    outcome = await run_k6(
        binary=settings.k6_binary, script=script, workdir=tmp_path / "w", timeout_s=30, grace_s=5
    )

    assert outcome.exit_code == 0
    assert any("Insufficient VUs" in message for message in outcome.warnings), outcome.warnings
    assert all(count >= 1 for count in outcome.warnings.values())
    assert outcome.script_errors == 0


def test_k6_runs_with_a_gc_that_trades_heap_for_cpu_within_a_memory_limit() -> None:
    memory = memory_bytes()
    env = go_runtime_env(200, 0.25)

    assert env["GOGC"] == "200"
    assert memory is not None
    assert memory > 0
    assert int(env["GOMEMLIMIT"]) == max(int(memory * 0.25), 64 << 20)
    # Never a limit so small that the GC would run without pause.
    assert int(go_runtime_env(100, 1e-9)["GOMEMLIMIT"]) == 64 << 20


async def test_a_run_hands_k6_the_gc_settings(tmp_path: Path, settings: Settings) -> None:
    script = tmp_path / "script.js"
    script.write_text(
        "export const options = { vus: 1, iterations: 1 };\n"
        "export default function () { console.log('GOGC=' + __ENV.GOGC); }\n"
    )

    outcome = await run_k6(
        binary=settings.k6_binary,
        script=script,
        workdir=tmp_path / "w",
        timeout_s=30,
        grace_s=5,
        env=go_runtime_env(settings.k6_gogc, settings.k6_memory_limit_fraction),
    )

    assert outcome.exit_code == 0
    assert f"GOGC={settings.k6_gogc}" in outcome.stderr_tail
