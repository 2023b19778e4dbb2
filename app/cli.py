"""The ``perf-agent`` command line: serve, worker, demo, demo-target, gate, keys, db."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import httpx
import typer
import uvicorn
import yaml
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text

from app.client import API, PerfAgentClient, script_plan
from app.core import migrate
from app.core.auth import Scope, auth_enabled, dev_mode_refusal
from app.core.db import create_engine, create_sessionmaker, resolve_database_url
from app.core.errors import ProblemError
from app.core.http_protocol import PROTOCOL
from app.core.logging import configure_logging
from app.core.settings import Settings, get_settings
from app.progress import follow

# Plain click help: metavars instead of <str>/<bool>, readable in a CI log at any width.
HELP = {"max_content_width": 100, "help_option_names": ["-h", "--help"]}
app = typer.Typer(
    help="perf-agent: plan, run (k6) and analyse API load tests.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings=HELP,
)
db_app = typer.Typer(
    help="Database schema (Alembic migrations).",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings=HELP,
)
app.add_typer(db_app, name="db")
keys_app = typer.Typer(
    help="API keys: create (shown once), list, revoke. Works on the database directly.",
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings=HELP,
)
app.add_typer(keys_app, name="keys")


def make_console() -> Console:
    """A terminal gets rich output at its width. A CI log has no width to fit: lines are not
    wrapped (a path or URL stays whole, to be copied) and tables get room (COLUMNS, else 200)."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=int(os.environ.get("COLUMNS") or 200), soft_wrap=True)


console = make_console()


@app.callback()
def _per_invocation() -> None:
    global console
    console = make_console()  # stdout may have changed since import (tests, pipes)


def say(message: str, style: str | None = None) -> None:
    """One line as it is: no markup read into it, never wrapped mid-path."""
    console.print(Text(message, style=style or ""), soft_wrap=True)


def fail(message: str, code: int) -> NoReturn:
    say(message, "red")
    raise typer.Exit(code)


DEMO_PLAN = Path(__file__).parent / "demo" / "plan.yaml"


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option(
            metavar="HOST",
            help="Where to listen",
            show_default=f"PERF_AGENT_HOST, else {Settings.model_fields['host'].default}",
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            metavar="PORT",
            help="Where to listen",
            show_default=f"PERF_AGENT_PORT, else {Settings.model_fields['port'].default}",
        ),
    ] = None,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker", show_default=False, help="Run one worker in this process"
        ),
    ] = True,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="API processes sharing the port (uvicorn's): with more than one, no worker "
            "runs in them — run `perf-agent worker` beside them",
        ),
    ] = 1,
) -> None:
    """Run the API (Swagger UI at /docs), migrating the database first."""
    from app.main import create_app

    settings = get_settings()
    host, port = host or settings.host, port or settings.port
    refusal = dev_mode_refusal(settings, host)
    if refusal is not None:
        fail(refusal, 2)
    configure_logging()
    settings = settings.model_copy(update={"embedded_worker": worker, "host": host, "port": port})
    database = "; database at PERF_AGENT_DATABASE_URL" if settings.database_url else ""
    say(f"perf-agent {version('perf-agent')}: data in {settings.data_dir}{database}")
    if not auth_enabled(settings):
        say(
            "authentication is OFF (PERF_AGENT_AUTH=off): every caller is an admin — "
            "local development only",
            "bold yellow",
        )
    if workers > 1:
        # Each process builds its app from the environment: hand it what the options changed.
        migrate.upgrade(resolve_database_url(settings))
        os.environ.update(
            PERF_AGENT_HOST=host,
            PERF_AGENT_PORT=str(port),
            PERF_AGENT_EMBEDDED_WORKER="false",
            PERF_AGENT_MIGRATE_ON_START="false",
        )
        if settings.database_url is None:
            os.environ["PERF_AGENT_DATABASE_URL"] = resolve_database_url(settings)
        say(f"{workers} API processes on http://{host}:{port}; no worker in them", "bold green")
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            http=PROTOCOL,
        )
        return
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host=host, port=port, log_level="warning", http=PROTOCOL
        )
    )

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            url = f"http://{host}:{port}"
            say(
                f"ready on {url} — console {url}/ui, API docs {url}/docs — Ctrl-C stops",
                "bold green",
            )

    threading.Thread(target=announce, daemon=True).start()
    server.run()


@app.command("worker")
def worker_cmd(
    metrics_port: Annotated[
        int | None,
        typer.Option(
            metavar="PORT",
            envvar="PERF_AGENT_WORKER_METRICS_PORT",
            help="Serve this worker's own counters (claims, k6 points, refusals, budget alerts) "
            "for Prometheus on 127.0.0.1:PORT/metrics; the API's /metrics cannot see them",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option(metavar="HOST", help="Where --metrics-port listens")
    ] = "127.0.0.1",
) -> None:
    """Run a standalone worker against the configured database (any number may share it)."""
    from prometheus_client import start_http_server

    from app.runs.worker import Worker

    configure_logging()
    settings = get_settings()
    url = resolve_database_url(settings)
    migrate.upgrade(url)
    if metrics_port is not None:
        start_http_server(metrics_port, addr=metrics_host)
        say(f"worker metrics on http://{metrics_host}:{metrics_port}/metrics")

    async def main() -> None:
        engine = create_engine(url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        worker = Worker(create_sessionmaker(engine), settings)
        console.print(f"worker [bold]{worker.id}[/] polling for runs")
        task = asyncio.create_task(worker.run_forever(stop))
        await stop.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await engine.dispose()

    asyncio.run(main())


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(metavar="REVISION", help="Target revision")] = "head",
) -> None:
    """Apply the migrations up to REVISION."""
    configure_logging()
    url = resolve_database_url(get_settings())
    migrate.upgrade(url, revision)
    console.print(f"database at revision {revision}")


@db_app.command("check")
def db_check() -> None:
    """Fail if the models hold a change that no migration describes."""
    url = resolve_database_url(get_settings())
    migrate.upgrade(url)
    migrate.check(url)
    console.print("models and migrations agree")


T = TypeVar("T")


def in_database(work: Callable[[Any], Awaitable[T]]) -> T:
    """``work(session)`` against the configured database (migrated first), committed."""
    url = resolve_database_url(get_settings())
    migrate.upgrade(url)

    async def main() -> T:
        engine = create_engine(url)
        try:
            async with create_sessionmaker(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except ProblemError as exc:
        fail(exc.detail, 1)


@keys_app.command("create")
def keys_create(
    owner: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            help="Who holds the key: a person's email or a CI pipeline's name; recorded as "
            "the one who did what the key does",
        ),
    ],
    scope: Annotated[
        list[Scope],
        typer.Option(
            metavar="SCOPE",
            help=f"Repeat for several: {', '.join(Scope)} (admin implies all)",
        ),
    ],
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="Print only the key (KEY=$(perf-agent keys create …))"),
    ] = False,
) -> None:
    """Create a key and print it — the only time it is shown (it is stored hashed). The key
    goes to standard output, everything else to standard error."""
    from app.identity import service

    row, key = in_database(
        lambda session: service.create_key(
            session, owner=owner, scopes=scope, actor=service.CLI_ACTOR
        )
    )
    if not quiet:
        typer.echo(
            f"key {row.id} ({row.prefix}…) for {row.owner}, scopes: {', '.join(row.scopes)}",
            err=True,
        )
    typer.echo(key)
    if not quiet:
        typer.echo("store it now: it is shown only this once", err=True)


@keys_app.command("list")
def keys_list() -> None:
    """Every key (never the key itself): id, prefix, owner, scopes, use, revocation."""
    from app.identity import service

    keys = in_database(service.list_keys)
    table = Table(title=f"{len(keys)} API key(s)")
    for column in ("id", "prefix", "owner", "scopes", "created", "last used", "revoked"):
        table.add_column(column, overflow="fold")

    def when(moment: Any) -> str:
        return moment.isoformat(timespec="seconds") if moment else "-"

    for key in keys:
        table.add_row(
            str(key.id),
            f"{key.prefix}…",
            key.owner,
            ", ".join(key.scopes),
            when(key.created_at),
            when(key.last_used_at),
            when(key.revoked_at),
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[uuid.UUID, typer.Argument(metavar="ID", help="The key's id (keys list)")],
) -> None:
    """Revoke a key: its next request is refused (401). The key stays listed."""
    from app.identity import service

    key = in_database(lambda session: service.revoke_key(session, key_id, actor=service.CLI_ACTOR))
    say(f"revoked key {key.id} ({key.prefix}…) of {key.owner}")


@app.command("plan-schema")
def plan_schema_cmd() -> None:
    """Print the plan language's JSON Schema (docs/plan-schema.json is this output)."""
    import json

    from app.plans.schemas import plan_json_schema

    print(json.dumps(plan_json_schema(), indent=2, sort_keys=True))


@app.command("demo-target")
def demo_target(
    port: Annotated[int, typer.Option(metavar="PORT", help="Where to listen")] = 8001,
) -> None:
    """Serve the demo shop (the system under test of `perf-agent demo`) on 127.0.0.1."""
    from app.demo.target import create_target

    console.print(f"demo shop on http://127.0.0.1:{port} (slow on purpose: /api/orders/recent)")
    uvicorn.run(create_target(), host="127.0.0.1", port=port, log_level="warning")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(url: str, *, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {timeout_s}s")


def stop_process(proc: subprocess.Popen[Any], grace_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after the grace period; always reaped."""
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def running_server(argv: list[str], port: int, *, health: str = "/health", **popen: Any) -> Any:
    """A local HTTP server subprocess on 127.0.0.1:port, up (``health`` answers 200) for the
    duration of the block, then stopped."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **popen)
    try:
        wait_http(f"http://127.0.0.1:{port}{health}", timeout_s=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


@contextlib.contextmanager
def running_demo_target(port: int) -> Any:
    with running_server([sys.executable, "-m", "app.demo", "--port", str(port)], port) as url:
        yield url


@contextlib.contextmanager
def running_service(settings: Settings, port: int) -> Any:
    """The service itself, in this process (API + worker), as `serve` runs it, for this
    process's own client: on 127.0.0.1 only and without keys (auth off, which the service
    logs as a warning)."""
    import threading

    from app.main import create_app

    settings = settings.model_copy(update={"auth": "off", "host": "127.0.0.1", "port": port})
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", http=PROTOCOL
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="perf-agent-service", daemon=True)
    thread.start()
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", timeout_s=120)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def demo_plan(base_url: str) -> str:
    plan = yaml.safe_load(DEMO_PLAN.read_text())
    plan["target"]["base_url"] = base_url
    return yaml.safe_dump(plan, sort_keys=False)


def run_demo_flow(
    api: str,
    target: str,
    *,
    out_dir: Path,
    progress_every: float = 10.0,
    api_key: str | None = None,
) -> dict[str, Any]:
    """Plan → execute → analyse through the service's HTTP API, as any client would."""
    with PerfAgentClient(api, api_key=api_key) as client:
        plan = client.create_plan(demo_plan(target))
        say(f"plan    {plan['id']} stored; script: {api}{API}/plans/{plan['id']}/script")
        client.approve(plan["id"], comment="demo plan")
        run = client.execute(plan["id"])
        say(f"run     {run['id']} queued; k6 runs the plan for {run['planned_duration_s']:g} s")
        run = follow(client, run["id"], console, interval_s=progress_every)
        if run["status"] != "succeeded":
            fail(f"run {run['id']} {run['status']}: {run['error']}", GATE_ERROR)
        body = client.analyse(run["id"])
        report = client.report(body["id"])
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"report-{body['id']}.md"
    path.write_text(report)
    return {**body, "report": report, "report_path": str(path.resolve())}


def print_verdict(analysis: dict[str, Any]) -> None:
    if console.is_terminal:
        console.print(Markdown(analysis["report"]))
    else:  # a log: the Markdown as written, whose tables no width can truncate
        say(analysis["report"])
    console.rule()
    table = Table(title=f"verdict: {analysis['verdict'].upper()}")
    for column in ("objective", "scope", "measured", "result"):
        # Narrow terminals fold a cell onto more lines; nothing is cut off with an ellipsis.
        table.add_column(column, overflow="fold", justify="left")
    for res in analysis["slo_results"]:
        measured = res["measured"]
        if measured is None:
            shown = "no data"
        elif res["sli"] == "error_rate":
            shown = f"{measured * 100:.2f}%"
        else:
            shown = f"{measured:.1f} {res['unit']}"
        style = "green" if res["status"] == "pass" else "red"
        table.add_row(
            res["objective"],
            res["endpoint"] or "all",
            shown,
            f"[{style}]{res['status']}[/]",
        )
    console.print(table)
    for finding in analysis["findings"]:
        say(f"• {finding['summary']}")
    say(f"\nreport: {analysis['report_path']}", "bold")


ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        metavar="KEY",
        envvar="PERF_AGENT_API_KEY",
        show_envvar=True,
        help="The API key sent to the service (perf-agent keys create)",
    ),
]
StepSummary = Annotated[
    Path | None,
    typer.Option(
        metavar="FILE",
        envvar="GITHUB_STEP_SUMMARY",
        help="Append the Markdown summary to this file (GitHub Actions sets $GITHUB_STEP_SUMMARY)",
    ),
]


ProgressEvery = Annotated[
    float,
    typer.Option(
        "--progress-every",
        metavar="SECONDS",
        help="Without a terminal (CI), print a progress line this often (at least 1 s) while "
        "the run executes",
    ),
]


@contextlib.contextmanager
def talking_to(api: str) -> Iterator[None]:
    """Whatever goes wrong between us and the service becomes one clear line and exit 2."""
    try:
        yield
    except httpx.HTTPStatusError as exc:
        fail(f"perf-agent at {api} refused: {_problem(exc)}", GATE_ERROR)
    except httpx.HTTPError as exc:
        fail(f"cannot reach perf-agent at {api} ({type(exc).__name__}: {exc})", GATE_ERROR)
    except TimeoutError as exc:
        fail(f"gave up waiting: {exc}", GATE_ERROR)


@app.command()
def demo(
    api: Annotated[
        str | None,
        typer.Option(metavar="URL", help="Use a running service instead of starting one"),
    ] = None,
    api_key: ApiKey = None,
    every: ProgressEvery = 10.0,
) -> None:
    """Start the demo shop, then plan, execute and analyse it through the service's API.

    Without --api, the service runs in this process on 127.0.0.1 without keys (auth off, for
    this command's own client only); with --api, give a key with read, plan, approve and
    execute (--api-key or PERF_AGENT_API_KEY)."""
    configure_logging("WARNING")
    settings = get_settings()
    reports = settings.data_dir / "reports"
    with running_demo_target(free_port()) as target:
        say(f"demo shop on {target}")
        if api:
            with talking_to(api):
                analysis = run_demo_flow(
                    api, target, out_dir=reports, progress_every=every, api_key=api_key
                )
        else:
            with running_service(settings, free_port()) as url, talking_to(url):
                say(f"perf-agent on {url} (Swagger UI: {url}/docs; data in {settings.data_dir})")
                analysis = run_demo_flow(url, target, out_dir=reports, progress_every=every)
    print_verdict(analysis)


GATE_PASS, GATE_FAIL, GATE_ERROR, GATE_INCONCLUSIVE = 0, 1, 2, 3


def _problem(exc: httpx.HTTPStatusError) -> str:
    try:
        body = exc.response.json()
        return f"{exc.response.status_code} {body.get('code')}: {body.get('detail')}"
    except ValueError:
        return f"{exc.response.status_code}: {exc.response.text[:500]}"


@app.command()
def gate(
    plan_file: Annotated[
        Path | None,
        typer.Argument(
            metavar="PLAN_FILE", help="Plan (YAML/JSON) to run; omit to rerun --plan-id"
        ),
    ] = None,
    api: Annotated[
        str, typer.Option(metavar="URL", envvar="PERF_AGENT_API", help="The service's URL")
    ] = "http://127.0.0.1:8000",
    plan_id: Annotated[
        str | None,
        typer.Option(
            metavar="PLAN_ID",
            help="An existing plan: the file becomes its next version (history and "
            "baselines accumulate); without a file, its approved version runs",
        ),
    ] = None,
    api_key: ApiKey = None,
    baseline: Annotated[
        list[str] | None,
        typer.Option(
            metavar="RUN_ID",
            help="A run to compare with; repeat the option for several (default: the "
            "service's choice of baseline)",
        ),
    ] = None,
    allow_warning: Annotated[
        bool, typer.Option("--allow-warning", help="A 'warning' verdict passes too")
    ] = False,
    timeout: Annotated[
        float, typer.Option(metavar="SECONDS", help="How long to wait for the run")
    ] = 3600,
    out: Annotated[
        Path, typer.Option(metavar="DIR", help="Where report.md, report.html and analysis.json go")
    ] = Path("perf-agent-report"),
    every: ProgressEvery = 10.0,
    retries: Annotated[
        int,
        typer.Option(
            min=0,
            max=5,
            help="Runs again this many times while the verdict is 'inconclusive' (the load "
            "generator was saturated or disturbed)",
        ),
    ] = 1,
    step_summary: StepSummary = None,
) -> None:
    """For CI: run a plan through the service, analyse it, write the reports. Exit 0 when the
    verdict passes, 1 when it fails, 2 when the service refused, the run failed or the service
    could not be reached, 3 when it stayed inconclusive (the load generator was short of CPU
    or shared its machine: retry the job on a quieter runner).

    The reports directory gets report.md, report.html, analysis.json and the CI formats:
    junit.xml (test reports), summary.md (appended to $GITHUB_STEP_SUMMARY when that is set)
    and load-performance.json (GitLab's Load Performance report).

    The key needs read, plan and execute, and approve too to run the draft a new plan file
    becomes (auto-approved, with the key's owner as its reviewer)."""
    if plan_file is None and plan_id is None:
        fail("give a plan file, --plan-id, or both", GATE_ERROR)
    try:
        text = plan_file.read_text() if plan_file is not None else None
    except OSError as exc:
        fail(f"cannot read the plan: {exc}", GATE_ERROR)
    with talking_to(api), PerfAgentClient(api, api_key=api_key) as client:
        if text is not None:
            plan = client.create_version(plan_id, text) if plan_id else client.create_plan(text)
        else:
            plan = client.http.get(f"/plans/{plan_id}").raise_for_status().json()
        say(f"plan    {plan['id']} v{plan['version']} ({plan['status']})")
        for attempt in range(retries + 1):
            if attempt:
                plan = client.http.get(f"/plans/{plan['id']}").raise_for_status().json()
            run = _execute_or_archive(client, plan, created=text is not None and not attempt)
            say(f"run     {run['id']} queued; {run['planned_duration_s']:g} s of load")
            run = follow(client, run["id"], console, interval_s=every, timeout_s=timeout)
            if run["status"] == "failed":
                raise typer.Exit(GATE_ERROR)  # no measurement to judge: not a verdict
            analysis = client.analyse(run["id"], baseline_run_ids=baseline)
            if analysis["verdict"] != "inconclusive":
                break
            reasons = "; ".join((analysis.get("load_generator") or {}).get("reasons") or [])
            say(f"verdict INCONCLUSIVE: the load generator was not healthy ({reasons})")
            if attempt < retries:
                say(f"running it again ({attempt + 1} of {retries})")
        write_reports(client, analysis, out, step_summary=step_summary)
    verdict = analysis["verdict"]
    score = analysis.get("score") or {}
    say(
        f"verdict {verdict.upper()} (score {score.get('value', '-')}; compared with "
        f"{len(analysis.get('baseline_run_ids') or [])} baseline run(s))"
    )
    for finding in analysis["findings"]:
        if finding["severity"] != "info":
            say(f"  • {finding['summary']}")
    say(f"reports in {out.resolve()}")
    if verdict == "inconclusive":
        raise typer.Exit(GATE_INCONCLUSIVE)
    passed = verdict == "pass" or (verdict == "warning" and allow_warning)
    raise typer.Exit(GATE_PASS if passed else GATE_FAIL)


def write_reports(
    client: PerfAgentClient, analysis: dict[str, Any], out: Path, *, step_summary: Path | None
) -> None:
    """The analysis' reports and CI formats into ``out``; the summary also onto the step
    summary, when there is one."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(client.report(analysis["id"]))
    (out / "report.html").write_text(client.report(analysis["id"], kind="html"))
    (out / "analysis.json").write_text(json.dumps(analysis, indent=2))
    for name in PerfAgentClient.CI_FILES:
        (out / name).write_text(client.ci_file(analysis["id"], name))
    if step_summary is not None:
        try:
            with step_summary.open("a") as fh:
                fh.write((out / "summary.md").read_text() + "\n")
        except OSError as exc:
            say(f"could not append to the step summary {step_summary}: {exc}")


def _execute_or_archive(
    client: PerfAgentClient, plan: dict[str, Any], *, created: bool
) -> dict[str, Any]:
    """Queue the plan's run. A draft this gate stored and the service then refused to run is
    archived with the reason, not left behind as an orphan draft for somebody to review (when
    the key may archive; else the gate says the draft stays)."""
    try:
        return client.execute(plan["id"], auto_approve=plan["status"] == "draft")
    except httpx.HTTPStatusError as exc:
        if created and plan["status"] == "draft":
            try:
                client.review(
                    plan["id"],
                    "archive",
                    comment=f"stored by a CI gate whose run was refused: {_problem(exc)}",
                )
            except httpx.HTTPStatusError as refused:
                say(f"plan    {plan['id']} stays a draft: {_problem(refused)}")
            except httpx.HTTPError:
                pass
        raise


ApiUrl = Annotated[
    str, typer.Option(metavar="URL", envvar="PERF_AGENT_API", help="The service's URL")
]
REPORT_ROUTES = {
    "md": "report.md",
    "html": "report.html",
    "junit": "junit.xml",
    "summary": "summary.md",
    "gitlab": "load-performance.json",
}


def with_report(client: PerfAgentClient, analysis: dict[str, Any]) -> dict[str, Any]:
    """The analysis with its Markdown report and report path, as ``print_verdict`` shows it."""
    analysis["report"] = client.report(analysis["id"])
    analysis["report_path"] = analysis["links"]["report_html"]
    return analysis


@app.command("plan")
def plan_cmd(
    source: Annotated[
        Path, typer.Argument(metavar="FILE", help="A plan (YAML/JSON) or a k6 script (.js)")
    ],
    api: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
    plan_id: Annotated[
        str | None, typer.Option(metavar="PLAN_ID", help="Store it as this plan's next version")
    ] = None,
    target: Annotated[str | None, typer.Option(metavar="URL", help="A script's target")] = None,
    approve: Annotated[bool, typer.Option("--approve", help="Approve it (approve scope)")] = False,
) -> None:
    """Store a plan (or a k6 script, run as written) as a draft; print its id, version and
    status. With --approve, approve it too, so `perf-agent run` can run it."""
    try:
        text = source.read_text()
    except OSError as exc:
        fail(f"cannot read {source}: {exc}", GATE_ERROR)
    document = plan_document_from_file(source, text, target)
    with talking_to(api), PerfAgentClient(api, api_key=api_key) as client:
        if plan_id:
            body = document if isinstance(document, str) else json.dumps(document)
            plan = client.create_version(plan_id, body)
        else:
            plan = client.create_plan(document)
        if approve:
            client.approve(plan["id"])
            plan = client.http.get(f"/plans/{plan['id']}").raise_for_status().json()
    say(f"plan {plan['id']} v{plan['version']} ({plan['status']}): {plan['name']}")


@app.command("runs")
def runs_cmd(
    api: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
    plan_id: Annotated[str | None, typer.Option(metavar="PLAN_ID")] = None,
    status: Annotated[str | None, typer.Option(help="e.g. running, succeeded, failed")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
) -> None:
    """The newest runs: state, load and key figures."""
    params: dict[str, Any] = {"limit": limit}
    if plan_id:
        params["plan_id"] = plan_id
    if status:
        params["status"] = status
    with talking_to(api), PerfAgentClient(api, api_key=api_key) as client:
        runs = client.http.get("/runs", params=params).raise_for_status().json()["items"]
    table = Table(title=f"{len(runs)} run(s)")
    for column in ("run", "plan", "status", "verdict", "created", "rps", "p95", "errors"):
        table.add_column(column, overflow="fold")
    for run in runs:
        table.add_row(
            run["id"],
            str(run["plan_id"])[:8],
            run["status"],
            run.get("verdict") or "–",
            str(run.get("created_at", ""))[:19],
            f"{run['rps']:.1f}" if run.get("rps") is not None else "–",
            f"{run['p95_ms']:.1f} ms" if run.get("p95_ms") is not None else "–",
            f"{run['error_rate'] * 100:.2f}%" if run.get("error_rate") is not None else "–",
        )
    console.print(table)


@app.command("run")
def run_cmd(
    plan_id: Annotated[str, typer.Argument(metavar="PLAN_ID")],
    api: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
    auto_approve: Annotated[
        bool, typer.Option("--auto-approve", help="Approve a draft on the way")
    ] = False,
    analyse: Annotated[bool, typer.Option("--analyse", help="Analyse it when it ends")] = False,
    every: ProgressEvery = 10.0,
    timeout: Annotated[float, typer.Option(metavar="SECONDS")] = 3600,
) -> None:
    """Run a plan and follow it live; exit 0 when it succeeded (with --analyse: when the
    verdict passes), 1 otherwise."""
    with talking_to(api), PerfAgentClient(api, api_key=api_key) as client:
        run = client.execute(plan_id, auto_approve=auto_approve)
        run = follow(client, run["id"], console, interval_s=every, timeout_s=timeout)
        say(f"run {run['id']} {run['status']}")
        if not analyse:
            raise typer.Exit(0 if run["status"] == "succeeded" else 1)
        if run["status"] == "failed":
            raise typer.Exit(1)
        analysis = with_report(client, client.analyse(run["id"]))
    print_verdict(analysis)
    raise typer.Exit(0 if analysis["verdict"] == "pass" else 1)


@app.command("analyse")
def analyse_cmd(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID")],
    api: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
    baseline: Annotated[
        list[str] | None, typer.Option(metavar="RUN_ID", help="A run to compare with")
    ] = None,
) -> None:
    """Judge a finished run: objectives, regressions against the baseline, findings. Exit 0 on
    pass, 1 otherwise."""
    with talking_to(api), PerfAgentClient(api, api_key=api_key) as client:
        analysis = with_report(client, client.analyse(run_id, baseline_run_ids=baseline))
    say(f"analysis {analysis['id']}")
    print_verdict(analysis)
    raise typer.Exit(0 if analysis["verdict"] == "pass" else 1)


@app.command("report")
def report_cmd(
    analysis_id: Annotated[str, typer.Argument(metavar="ANALYSIS_ID")],
    api: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
    format: Annotated[
        str, typer.Option(help="md, html, junit, summary (CI step summary) or gitlab")
    ] = "md",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", metavar="FILE", help="Default: stdout")
    ] = None,
) -> None:
    """An analysis' report, or one of its CI formats."""
    route = REPORT_ROUTES.get(format)
    if route is None:
        fail(f"--format is one of {', '.join(REPORT_ROUTES)}", GATE_ERROR)
    with talking_to(api), PerfAgentClient(api, api_key=api_key) as client:
        text = client.http.get(f"/analyses/{analysis_id}/{route}").raise_for_status().text
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        output.write_text(text)
        say(f"wrote {output}")


@app.command()
def compare(
    a: Annotated[str, typer.Argument(metavar="RUN_A", help="The reference run")],
    b: Annotated[str, typer.Argument(metavar="RUN_B", help="The run compared with it")],
    api: Annotated[
        str, typer.Option(metavar="URL", envvar="PERF_AGENT_API", help="The service's URL")
    ] = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
    as_json: Annotated[bool, typer.Option("--json", help="The comparison as JSON")] = False,
) -> None:
    """Run B against run A (the same plan): per endpoint and SLI both values, the change, its
    99 % interval, p and verdict, and the load of each — as Markdown, or --json. Exit 1 when
    B regressed."""
    with talking_to(api), PerfAgentClient(api, api_key=api_key) as client:
        params = {"a": a, "b": b, "format": "json" if as_json else "markdown"}
        response = client.http.get("/runs/compare", params=params).raise_for_status()
        if as_json:
            sys.stdout.write(json.dumps(response.json(), indent=2) + "\n")
            regressions = response.json()["regressions"]
        else:
            sys.stdout.write(response.text)
            regressions = int(response.headers.get("perf-agent-regressions", "0"))
    raise typer.Exit(1 if regressions else 0)


@app.command("mcp")
def mcp_cmd(
    api: Annotated[
        str, typer.Option(metavar="URL", envvar="PERF_AGENT_API", help="The service's URL")
    ] = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
    transport: Annotated[
        str,
        typer.Option(
            help="stdio (an agent starts this command) or streamable-http (it connects to "
            "http://HOST:PORT/mcp, each caller sending its own key as a bearer token)"
        ),
    ] = "stdio",
    host: Annotated[str, typer.Option(help="streamable-http: the address to listen on")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="streamable-http: the port")] = 8765,
) -> None:
    """MCP tools for coding agents (plan, dry run, execute, wait, analyse, compare, the budget
    loop), each a call to the service's HTTP API with the key's scopes and guardrails."""
    from app.mcpserver.server import build_server

    if transport not in ("stdio", "streamable-http"):
        fail("--transport is stdio or streamable-http", 2)
    server = build_server(api, api_key)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port)


# -- the API Performance Budget loop ------------------------------------------------------------

BUDGET_MET, BUDGET_NOT_MET, BUDGET_ERROR = 0, 1, 2


def plan_document_from_file(path: Path, text: str, target: str | None) -> str | dict[str, Any]:
    """What to store for ``perf-agent budget|plan FILE``: a plan file as it is, or a k6 script
    wrapped in a plan that runs it as written (its target taken from the script's URLs)."""
    if path.suffix not in (".js", ".mjs", ".ts"):
        return text
    try:
        return script_plan(text, name=path.stem, target=target)
    except ValueError as exc:
        fail(str(exc), BUDGET_ERROR)


def run_between(command: str, timeout_s: float) -> int:
    """The ``--between`` command (an argv, no shell), its output streamed; killed with its
    process group after ``timeout_s``."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        fail(f"--between is not a command line: {exc}", BUDGET_ERROR)
    if not argv:
        return 0
    say(f"between $ {shlex.join(argv)}")
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        fail(f"cannot start the --between command: {exc}", BUDGET_ERROR)

    def pump() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            say("  | " + raw.decode(errors="replace").rstrip())

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        reader.join(5)
        fail(f"the --between command ran longer than {timeout_s:g} s and was stopped", BUDGET_ERROR)
    reader.join(5)
    return code


def iteration_line(budget: dict[str, Any], iteration: dict[str, Any]) -> str:
    scope = budget["endpoint"] or "all requests"
    value = iteration["value_ms"]
    shown = "no data" if value is None else f"{value:,.2f} ms"
    line = (
        f"pass {iteration['number']}/{budget['max_iterations']}  {budget['sli']} of {scope} "
        f"{shown}  target < {budget['target_ms']:g} ms  {'MET' if iteration['met'] else 'not met'}"
    )
    if iteration["change"] is not None:
        line += f"  {iteration['change'] * 100:+.1f}% vs pass {iteration['number'] - 1}"
        compared = iteration.get("comparison") or {}
        if compared:
            p = compared.get("p_value")
            line += f" ({compared['verdict'].replace('_', ' ')}" + (
                f", p {p:.2g})" if p is not None else ")"
            )
    elif iteration["number"] == 1:
        line += "  (first pass)"
    if iteration.get("top_finding"):
        line += f"\n      top finding: {iteration['top_finding']}"
    return line


@app.command()
def budget(
    source: Annotated[
        Path | None,
        typer.Argument(
            metavar="SCRIPT_OR_PLAN",
            help="A k6 script (.js), run as it is, or a plan file (YAML/JSON); omit with --plan-id",
        ),
    ] = None,
    p95: Annotated[
        str | None, typer.Option("--p95", metavar="LATENCY", help="Target p95, e.g. 300ms")
    ] = None,
    p99: Annotated[
        str | None, typer.Option("--p99", metavar="LATENCY", help="Target p99 instead")
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="A step of the plan (default: all requests)"),
    ] = None,
    max_iterations: Annotated[int, typer.Option(min=1, max=50)] = 10,
    between: Annotated[
        str | None,
        typer.Option(
            metavar="CMD",
            help="Run before each pass after the first (e.g. a redeploy); an argv, split like "
            "a shell would but run without one. Omit it while a person or an agent changes "
            "the code between passes",
        ),
    ] = None,
    between_timeout: Annotated[float, typer.Option(metavar="SECONDS")] = 600,
    api: Annotated[
        str, typer.Option(metavar="URL", envvar="PERF_AGENT_API", help="The service's URL")
    ] = "http://127.0.0.1:8000",
    api_key: ApiKey = None,
    plan_id: Annotated[
        str | None, typer.Option(metavar="PLAN_ID", help="Run this stored plan")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(metavar="URL", help="A script's target, when its URLs name no single one"),
    ] = None,
    timeout: Annotated[float, typer.Option(metavar="SECONDS", help="Per run")] = 3600,
    out: Annotated[
        Path, typer.Option(metavar="DIR", help="Where budget.md and the last pass's reports go")
    ] = Path("perf-agent-budget"),
    every: ProgressEvery = 10.0,
    step_summary: StepSummary = None,
) -> None:
    """The API Performance Budget loop: run the test under every guardrail, check the p95
    (or p99) against the target, run --between, and again, at most --max-iterations times.
    One status line per pass: its value, its change from the pass before with the analysis'
    significance, the top finding. Exit 0 as soon as the target is met, 1 when the last pass
    did not meet it, 2 on errors. The key needs read, plan, execute (and approve, for a new
    file's draft)."""
    if (p95 is None) == (p99 is None):
        fail("give the target as --p95 LATENCY or --p99 LATENCY (e.g. --p95 300ms)", BUDGET_ERROR)
    sli, target_text = ("p95", p95) if p95 is not None else ("p99", p99)
    if source is None and plan_id is None:
        fail("give a script, a plan file or --plan-id", BUDGET_ERROR)
    document = None
    if source is not None:
        try:
            text = source.read_text()
        except OSError as exc:
            fail(f"cannot read {source}: {exc}", BUDGET_ERROR)
        document = plan_document_from_file(source, text, target)
    with talking_to(api), PerfAgentClient(api, api_key=api_key) as client:
        if document is not None:
            if plan_id:
                text_of = document if isinstance(document, str) else json.dumps(document)
                plan = client.create_version(plan_id, text_of)
            else:
                plan = client.create_plan(document)
        else:
            plan = client.http.get(f"/plans/{plan_id}").raise_for_status().json()
        say(f"plan    {plan['id']} v{plan['version']} ({plan['status']})")
        body = {
            "plan_id": plan["id"],
            "sli": sli,
            "target_ms": target_text,
            "endpoint": endpoint,
            "max_iterations": max_iterations,
        }
        state = client.http.post("/budgets", json=body).raise_for_status().json()
        say(
            f"budget  {state['id']}: {sli} of {endpoint or 'all requests'} < "
            f"{state['target_ms']:g} ms, at most {max_iterations} passes"
        )
        analysis_id = None
        for number in range(1, max_iterations + 1):
            if number > 1 and between:
                code = run_between(between, between_timeout)
                if code != 0:
                    fail(f"the --between command failed (exit {code})", BUDGET_ERROR)
            current = client.http.get(f"/plans/{plan['id']}").raise_for_status().json()
            run = _execute_or_archive(client, current, created=document is not None)
            run = follow(client, run["id"], console, interval_s=every, timeout_s=timeout)
            if run["status"] == "failed":
                fail(f"run {run['id']} failed: {run.get('error')}", BUDGET_ERROR)
            state = (
                client.http.post(f"/budgets/{state['id']}/iterations", json={"run_id": run["id"]})
                .raise_for_status()
                .json()
            )
            iteration = state["iterations"][-1]
            analysis_id = iteration["analysis_id"]
            say(iteration_line(state, iteration))
            if state["status"] != "running":
                break
        out.mkdir(parents=True, exist_ok=True)
        (out / "budget.md").write_text(client.http.get(f"/budgets/{state['id']}/report.md").text)
        (out / "budget.json").write_text(json.dumps(state, indent=2))
        if analysis_id is not None:
            analysis = client.http.get(f"/analyses/{analysis_id}").raise_for_status().json()
            write_reports(client, analysis, out, step_summary=step_summary)
    met = state["status"] == "met"
    say(
        f"budget {'MET' if met else 'NOT MET'} after {len(state['iterations'])} pass(es); "
        f"reports in {out.resolve()}"
    )
    raise typer.Exit(BUDGET_MET if met else BUDGET_NOT_MET)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
