"""Score the plan corpus: does every plan become a k6 script that k6 accepts and runs?

For each entry — a hand-written plan in ``plans/*.yaml`` or an import listed in
``imports.yaml`` — this builds the plan document, validates it (``PlanSpec`` and the
service's guardrails), renders the k6 script exactly as ``POST /plan`` does, has ``k6 inspect``
parse it, then runs it once (1 VU × 1 iteration, as the product's dry run does) against a
target on 127.0.0.1 that this script starts: the demo shop, or ``catchall.py`` for imports of
APIs that do not exist locally.

    .venv/bin/python eval/plan_corpus/score.py [--only NAME] [--json out.json]

Per entry it reports: validates (``PlanSpec.model_validate``), guardrails (``check_plan``),
inspect ok (``k6 inspect``), run ok (k6 exited 0 or 99 within the timeout and logged no
``level=error`` line other than its "thresholds … have been crossed" notice, i.e. the script
ran without an exception), and — stricter, informational — checks passed (run ok, at least one
request, every request had an expected status and every check held). Exits 1 when fewer than
90 % of the entries run OK (the product KPI), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import fnmatch
import json
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.cli import stop_process
from app.core.errors import GuardrailViolation, ProblemError
from app.core.settings import Settings
from app.guardrails.service import check_plan
from app.k6.process import ScriptRejected, inspect_script, k6_version, run_k6
from app.k6.summary import check_results, failed_thresholds
from app.plans import k6script
from app.plans.importers import ImportProblem
from app.plans.importers.har import plan_from_har
from app.plans.importers.openapi import plan_from_openapi
from app.plans.schemas import PlanSpec, effective_slos
from app.plans.service import parse_document

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PLANS_DIR = HERE / "plans"
MANIFEST = HERE / "imports.yaml"

KPI = 0.90
RUN_TIMEOUT_S = 60.0
INSPECT_TIMEOUT_S = 30.0
STARTUP_TIMEOUT_S = 30.0
DEMO_LOGIN = {"username": "user1", "password": "pw-1"}
# A k6 log line at level error, e.g. `time="…" level=error msg="Uncaught (in promise) …"`.
K6_ERROR = re.compile(r'^time="[^"]*" level=error ')
# …except k6's report that thresholds failed (exit 99): a result of the run, not a script error.
THRESHOLDS_CROSSED = re.compile(r' msg="thresholds on metrics .* have been crossed"$')


# --- the corpus ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str  # "plan" (hand-written) | "openapi" | "har"
    source: str  # a path relative to the repository root, or "live:<path>" on the demo shop
    target: str  # "demo" | "catchall"
    options: dict[str, Any] = field(default_factory=dict)


def _parse(body: bytes, suffix: str) -> Any:
    """A document decoded the way the service decodes request bodies."""
    content_type = "application/json" if suffix in (".json", ".har") else "application/yaml"
    document, _ = parse_document(body, content_type)
    return document


def load_corpus() -> list[Entry]:
    entries = [
        Entry(path.stem, "plan", str(path.relative_to(REPO)), "demo")
        for path in sorted(PLANS_DIR.glob("*.yaml"))
    ]
    manifest = _parse(MANIFEST.read_bytes(), ".yaml")
    for item in manifest["imports"]:
        importer = item["importer"]
        if importer not in ("openapi", "har"):
            raise SystemExit(f"imports.yaml: {item['id']}: unknown importer {importer!r}")
        source = item.get("fixture") or f"live:{item['live']}"
        entries.append(
            Entry(
                name=item["id"],
                kind=importer,
                source=source,
                target=item.get("target", "catchall"),
                options=dict(item.get("options") or {}),
            )
        )
    names = [e.name for e in entries]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SystemExit(f"corpus entry names must be unique; repeated: {', '.join(repeated)}")
    return entries


# --- local targets -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise SystemExit(f"{what} did not answer {url} within {STARTUP_TIMEOUT_S:g}s")


@contextmanager
def local_server(argv: list[str], port: int, probe: str, what: str) -> Iterator[str]:
    """A server subprocess on 127.0.0.1:port; yields its base URL and stops it afterwards."""
    proc = subprocess.Popen(
        argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=sys.stderr
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base_url + probe, proc, what)
        yield base_url
    finally:
        stop_process(proc)


def demo_token(base_url: str) -> str:
    request = urllib.request.Request(
        base_url + "/api/login",
        data=json.dumps(DEMO_LOGIN).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        token: str = json.load(response)["token"]
        return token


def secret_values(token: str) -> dict[str, str]:
    """Values for the secrets hand-written plans name (``PERF_AGENT_SECRET_<NAME>``).

    SHOP_TOKEN is a real demo-shop session (user1), so plans can authenticate by reference
    and still reach ``/api/me/orders``; any other name gets a made-up value.
    """
    return {
        "SHOP_TOKEN": token,
        "SHOP_AUTHORIZATION": f"Bearer {token}",
        "SHOP_BASIC": "user1:pw-1",
    }


# --- scoring one entry ---------------------------------------------------------------------


@dataclass
class Result:
    name: str
    kind: str
    source: str
    target: str
    steps: int = 0
    validates: bool = False
    guardrails_ok: bool = False
    inspect_ok: bool = False
    run_ok: bool = False
    checks_passed: bool = False
    exit_code: int | None = None
    requests: int = 0
    unexpected_statuses: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    failed_thresholds: list[str] = field(default_factory=list)
    script_errors: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def note(self) -> str:
        if self.error:
            return self.error.splitlines()[0][:90]
        if self.script_errors:
            return self.script_errors[0][:90]
        if self.unexpected_statuses:
            return "unexpected status: " + ", ".join(self.unexpected_statuses[:3])
        if self.failed_checks:
            return f"{len(self.failed_checks)} check(s) failed: {self.failed_checks[0]}"[:90]
        return ""


@dataclass
class Context:
    binary: str
    settings: Settings
    targets: dict[str, str]  # "demo" | "catchall" → base URL
    secrets: dict[str, str]
    keep: Path | None


def build_document(entry: Entry, ctx: Context) -> dict[str, Any]:
    base_url = ctx.targets[entry.target]
    if entry.source.startswith("live:"):
        with urllib.request.urlopen(base_url + entry.source[5:], timeout=5) as response:
            raw: bytes = response.read()
        document = _parse(raw, ".json")
    else:
        path = REPO / entry.source
        document = _parse(path.read_bytes(), path.suffix)
    if not isinstance(document, dict):
        raise ImportProblem(f"{entry.source} is not a mapping")
    if entry.kind == "openapi":
        return plan_from_openapi(document, base_url=base_url, **entry.options)
    if entry.kind == "har":
        return plan_from_har(document, base_url=base_url, **entry.options)
    target = document.get("target")
    if isinstance(target, dict):
        document["target"] = {**target, "base_url": base_url}
    return document


def _calls(points_file: Path) -> list[dict[str, Any]]:
    """Each request k6 made: its step name, status and whether the status was expected."""
    calls: list[dict[str, Any]] = []
    if not points_file.exists():
        return calls
    for line in points_file.read_text().splitlines():
        try:
            point = json.loads(line)
        except json.JSONDecodeError:
            continue
        if point.get("type") != "Point" or point.get("metric") != "http_req_duration":
            continue
        tags = point["data"].get("tags", {})
        calls.append(
            {
                "name": str(tags.get("name", "")),
                "status": int(tags.get("status") or 0),
                "expected": tags.get("expected_response") == "true",
            }
        )
    return calls


async def score(entry: Entry, ctx: Context) -> Result:
    result = Result(entry.name, entry.kind, entry.source, entry.target)
    started = time.monotonic()
    try:
        await _score(entry, ctx, result)
    finally:
        result.seconds = round(time.monotonic() - started, 2)
    return result


async def _score(entry: Entry, ctx: Context, result: Result) -> None:
    try:
        document = build_document(entry, ctx)
        spec = PlanSpec.model_validate(document)
    except (ImportProblem, ProblemError, ValidationError, ValueError, OSError) as exc:
        result.error = f"invalid: {exc}"
        return
    result.validates = True
    result.steps = len(spec.steps)
    try:
        check_plan(spec, ctx.settings)
        result.guardrails_ok = True
    except GuardrailViolation as exc:  # reported; the run still goes ahead on 127.0.0.1
        result.error = f"guardrails: {exc}"
    script = k6script.render(spec, slos=effective_slos(spec)[0])
    try:
        await inspect_script(ctx.binary, script, timeout_s=INSPECT_TIMEOUT_S)
    except ScriptRejected as exc:
        result.error = f"k6 inspect: {exc}"
        return
    result.inspect_ok = True
    secrets: dict[str, str] = {}
    if spec.target.auth is not None:
        name = spec.target.auth.secret
        secrets[spec.target.auth.env_var] = ctx.secrets.get(name, f"corpus-secret-{name.lower()}")
    with tempfile.TemporaryDirectory(prefix="plan-corpus-") as tmp:
        workdir = Path(tmp)
        (workdir / "script.js").write_text(script)
        points = workdir / "points.json"
        outcome = await run_k6(
            binary=ctx.binary,
            script=workdir / "script.js",
            workdir=workdir,
            timeout_s=RUN_TIMEOUT_S,
            grace_s=5.0,
            secrets=secrets,
            # CLI execution options replace the plan's load profile: one VU, one iteration.
            extra_args=["--vus", "1", "--iterations", "1", "--out", f"json={points}"],
        )
        log_lines = (workdir / "k6.log").read_text(errors="replace").splitlines()
        calls = _calls(points)
        if ctx.keep is not None:
            kept = ctx.keep / entry.name
            kept.mkdir(parents=True, exist_ok=True)
            for name in ("script.js", "k6.log", "summary.json"):
                if (workdir / name).exists():
                    (kept / name).write_bytes((workdir / name).read_bytes())
    result.exit_code = outcome.exit_code
    result.script_errors = [
        line for line in log_lines if K6_ERROR.match(line) and not THRESHOLDS_CROSSED.search(line)
    ]
    result.run_ok = outcome.completed and not result.script_errors
    if not outcome.completed:
        result.error = outcome.describe() + ("; timed out" if outcome.timed_out else "")
    result.requests = len(calls)
    result.unexpected_statuses = [f"{c['name']}={c['status']}" for c in calls if not c["expected"]]
    result.failed_checks = [c["name"] for c in check_results(outcome.summary) if c["fails"]]
    result.failed_thresholds = failed_thresholds(outcome.summary)
    result.checks_passed = (
        result.run_ok
        and result.requests > 0
        and not result.unexpected_statuses
        and not result.failed_checks
    )


# --- reporting -----------------------------------------------------------------------------


def _mark(ok: bool) -> str:
    return "ok" if ok else "FAIL"


def print_table(results: list[Result]) -> None:
    width = max(len(r.name) for r in results)
    header = (
        f"{'entry':<{width}}  {'kind':<7} {'steps':>5}  {'valid':<5} {'guard':<5} "
        f"{'inspect':<7} {'run':<4} {'checks':<6} {'reqs':>4} {'sec':>5}  note"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.name:<{width}}  {r.kind:<7} {r.steps:>5}  {_mark(r.validates):<5} "
            f"{_mark(r.guardrails_ok):<5} {_mark(r.inspect_ok):<7} {_mark(r.run_ok):<4} "
            f"{_mark(r.checks_passed):<6} {r.requests:>4} {r.seconds:>5.1f}  {r.note}"
        )


def _share(results: list[Result], attr: str) -> dict[str, Any]:
    passed = sum(bool(getattr(r, attr)) for r in results)
    total = len(results)
    return {"passed": passed, "total": total, "share": passed / total if total else 0.0}


def totals(results: list[Result]) -> dict[str, Any]:
    hand = [r for r in results if r.kind == "plan"]
    imported = [r for r in results if r.kind != "plan"]
    figures: dict[str, Any] = {
        "entries": len(results),
        "composition": {
            kind: sum(r.kind == kind for r in results) for kind in ("plan", "openapi", "har")
        },
    }
    for attr in ("validates", "guardrails_ok", "inspect_ok", "run_ok", "checks_passed"):
        figures[attr] = _share(results, attr)
    figures["checks_passed_hand_written"] = _share(hand, "checks_passed")
    figures["checks_passed_imported"] = _share(imported, "checks_passed")
    return figures


def print_totals(figures: dict[str, Any], seconds: float) -> None:
    def line(label: str, key: str) -> None:
        share = figures[key]
        fraction = f"{share['passed']}/{share['total']}"
        print(f"{label:<34} {fraction:>7} {share['share'] * 100:6.1f} %")

    comp = figures["composition"]
    print()
    print(
        f"corpus: {figures['entries']} entries — {comp['plan']} hand-written plans, "
        f"{comp['openapi']} OpenAPI imports, {comp['har']} HAR imports"
    )
    line("validates (PlanSpec)", "validates")
    line("guardrails accept", "guardrails_ok")
    line("k6 inspect ok", "inspect_ok")
    line("run ok (1 VU x 1 iteration)", "run_ok")
    line("checks passed (informational)", "checks_passed")
    line("  of them hand-written plans", "checks_passed_hand_written")
    line("  of them imported plans", "checks_passed_imported")
    print(f"KPI: run ok >= {KPI * 100:.0f} %; scored in {seconds:.1f}s")


# --- main ----------------------------------------------------------------------------------


async def score_all(entries: list[Entry], ctx: Context, jobs: int) -> list[Result]:
    limit = asyncio.Semaphore(jobs)

    async def one(entry: Entry) -> Result:
        async with limit:
            result = await score(entry, ctx)
            print(
                f"  {entry.name}: run {_mark(result.run_ok)}, checks {_mark(result.checks_passed)}"
                f" ({result.seconds:.1f}s)",
                file=sys.stderr,
                flush=True,
            )
            return result

    return list(await asyncio.gather(*(one(e) for e in entries)))


def main() -> int:
    parser = argparse.ArgumentParser(description="Score the plan corpus with the real k6.")
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME",
        help="score only entries whose name matches (exact or a glob); repeatable",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    parser.add_argument("--jobs", type=int, default=2, help="entries scored at once (default 2)")
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="keep each entry's script.js, k6.log, summary"
    )
    args = parser.parse_args()

    entries = load_corpus()
    if args.only:
        entries = [e for e in entries if any(fnmatch.fnmatch(e.name, p) for p in args.only)]
        if not entries:
            print(f"no corpus entry matches {args.only}", file=sys.stderr)
            return 2
    started = time.monotonic()
    settings = Settings()
    binary = settings.k6_binary
    print(f"k6: {k6_version(binary)}; {len(entries)} entries", file=sys.stderr)

    demo_port = free_port()
    catchall_port = free_port()
    while catchall_port == demo_port:
        catchall_port = free_port()
    demo_argv = [sys.executable, "-m", "app.demo", "--port", str(demo_port)]
    catchall_argv = [sys.executable, str(HERE / "catchall.py"), "--port", str(catchall_port)]
    with (
        local_server(demo_argv, demo_port, "/health", "the demo shop") as demo,
        local_server(catchall_argv, catchall_port, "/", "the catch-all target") as catchall,
    ):
        ctx = Context(
            binary=binary,
            settings=settings,
            targets={"demo": demo, "catchall": catchall},
            secrets=secret_values(demo_token(demo)),
            keep=args.keep,
        )
        results = asyncio.run(score_all(entries, ctx, max(1, args.jobs)))
    seconds = time.monotonic() - started

    print_table(results)
    figures = totals(results)
    print_totals(figures, seconds)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "k6": k6_version(binary),
                    "seconds": round(seconds, 1),
                    "totals": figures,
                    "entries": [asdict(r) for r in results],
                },
                indent=2,
            )
            + "\n"
        )
    return 0 if figures["run_ok"]["share"] >= KPI else 1


if __name__ == "__main__":
    sys.exit(main())
