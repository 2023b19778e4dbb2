"""The ``perf-agent`` command line: serve, worker, demo, demo-target, db upgrade."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import uvicorn
import yaml
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from app.client import API, PerfAgentClient
from app.core import migrate
from app.core.db import create_engine, create_sessionmaker, resolve_database_url
from app.core.logging import configure_logging
from app.core.settings import Settings, get_settings

app = typer.Typer(
    help="perf-agent: plan, run (k6) and analyse API load tests.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()

DEMO_PLAN = Path(__file__).parent / "demo" / "plan.yaml"


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default: PERF_AGENT_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="Default: PERF_AGENT_PORT")] = None,
    worker: Annotated[bool, typer.Option(help="Run one worker in this process.")] = True,
) -> None:
    """Run the API (Swagger UI at /docs), migrating the database first."""
    from app.main import create_app

    configure_logging()
    settings = get_settings().model_copy(update={"embedded_worker": worker})
    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port)


@app.command("worker")
def worker_cmd() -> None:
    """Run a standalone worker against the configured database (any number may share it)."""
    from app.runs.worker import Worker

    configure_logging()
    settings = get_settings()
    url = resolve_database_url(settings)
    migrate.upgrade(url)

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
def db_upgrade(revision: str = "head") -> None:
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


@app.command("plan-schema")
def plan_schema_cmd() -> None:
    """Print the plan language's JSON Schema (docs/plan-schema.json is this output)."""
    import json

    from app.plans.schemas import plan_json_schema

    print(json.dumps(plan_json_schema(), indent=2, sort_keys=True))


@app.command("demo-target")
def demo_target(port: int = 8001) -> None:
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
    """The service itself, in this process (API + worker), as `serve` runs it."""
    import threading

    from app.main import create_app

    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
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


def run_demo_flow(api: str, target: str, *, out_dir: Path) -> dict[str, Any]:
    """Plan → execute → analyse through the service's HTTP API, as any client would."""
    with PerfAgentClient(api) as client:
        plan = client.create_plan(demo_plan(target))
        console.print(f"plan    {plan['id']} stored; script: {api}{API}/plans/{plan['id']}/script")
        client.approve(plan["id"], reviewer="perf-agent demo", comment="demo plan")
        run = client.execute(plan["id"])
        console.print(f"run     {run['id']} queued; k6 is running the plan …")
        run = client.wait(run["id"])
        if run["status"] != "succeeded":
            raise RuntimeError(f"run {run['id']} {run['status']}: {run['error']}")
        body = client.analyse(run["id"])
        report = client.report(body["id"])
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"report-{body['id']}.md"
    path.write_text(report)
    return {**body, "report": report, "report_path": str(path.resolve())}


def print_verdict(analysis: dict[str, Any]) -> None:
    console.print(Markdown(analysis["report"]))
    console.rule()
    table = Table(title=f"verdict: {analysis['verdict'].upper()}")
    for column in ("objective", "scope", "measured", "result"):
        table.add_column(column)
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
        console.print(f"• {finding['summary']}")
    console.print(f"\nreport: [bold]{analysis['report_path']}[/]")


@app.command()
def demo(
    api: Annotated[
        str | None, typer.Option(help="Use a running service instead of starting one.")
    ] = None,
) -> None:
    """Start the demo shop, then plan, execute and analyse it through the service's API."""
    configure_logging("WARNING")
    settings = get_settings()
    with running_demo_target(free_port()) as target:
        console.print(f"demo shop on {target}")
        if api:
            analysis = run_demo_flow(api, target, out_dir=settings.data_dir / "reports")
        else:
            with running_service(settings, free_port()) as service_url:
                console.print(f"perf-agent on {service_url} (Swagger: {service_url}/docs)")
                analysis = run_demo_flow(service_url, target, out_dir=settings.data_dir / "reports")
    print_verdict(analysis)


GATE_PASS, GATE_FAIL, GATE_ERROR = 0, 1, 2


def _problem(exc: httpx.HTTPStatusError) -> str:
    try:
        body = exc.response.json()
        return f"{exc.response.status_code} {body.get('code')}: {body.get('detail')}"
    except ValueError:
        return f"{exc.response.status_code}: {exc.response.text[:500]}"


@app.command()
def gate(
    plan_file: Annotated[
        Path | None, typer.Argument(help="Plan (YAML/JSON) to run; omit to rerun --plan-id")
    ] = None,
    api: Annotated[str, typer.Option(envvar="PERF_AGENT_API", help="The service's URL")] = (
        "http://127.0.0.1:8000"
    ),
    plan_id: Annotated[
        str | None,
        typer.Option(
            help="An existing plan: the file becomes its next version (history and "
            "baselines accumulate); without a file, its approved version runs"
        ),
    ] = None,
    ci_token: Annotated[
        str | None, typer.Option(envvar="PERF_AGENT_CI_TOKEN", help="Auto-approves the draft")
    ] = None,
    baseline: Annotated[
        list[str] | None, typer.Option(help="Run ids to compare with (default: the service's)")
    ] = None,
    allow_warning: Annotated[bool, typer.Option(help="A 'warning' verdict passes")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the run")] = 3600,
    out: Annotated[Path, typer.Option(help="Where report.md/.html and analysis.json go")] = Path(
        "perf-agent-report"
    ),
) -> None:
    """For CI: run a plan through the service, analyse it, write the reports, and exit 0 when
    the verdict passes, 1 when it fails, 2 when something went wrong on the way."""
    if plan_file is None and plan_id is None:
        console.print("[red]give a plan file, --plan-id, or both[/]")
        raise typer.Exit(GATE_ERROR)
    try:
        with PerfAgentClient(api) as client:
            if plan_file is not None:
                text = plan_file.read_text()
                plan = client.create_version(plan_id, text) if plan_id else client.create_plan(text)
            else:
                assert plan_id is not None
                plan = client.http.get(f"/plans/{plan_id}").raise_for_status().json()
            console.print(f"plan    {plan['id']} v{plan['version']} ({plan['status']})")
            run = client.execute(
                plan["id"], auto_approve=plan["status"] == "draft", ci_token=ci_token
            )
            console.print(f"run     {run['id']} queued")
            run = client.wait(run["id"], timeout_s=timeout)
            console.print(
                f"run     {run['status']}" + (f": {run['error']}" if run["error"] else "")
            )
            if run["status"] == "failed":
                raise typer.Exit(GATE_FAIL)
            analysis = client.analyse(run["id"], baseline_run_ids=baseline)
            out.mkdir(parents=True, exist_ok=True)
            (out / "report.md").write_text(client.report(analysis["id"]))
            (out / "report.html").write_text(client.report(analysis["id"], kind="html"))
            (out / "analysis.json").write_text(json.dumps(analysis, indent=2))
    except httpx.HTTPStatusError as exc:
        console.print(f"[red]perf-agent refused: {_problem(exc)}[/]")
        raise typer.Exit(GATE_ERROR) from exc
    except (httpx.HTTPError, OSError, TimeoutError) as exc:
        console.print(f"[red]{type(exc).__name__}: {exc}[/]")
        raise typer.Exit(GATE_ERROR) from exc
    verdict = analysis["verdict"]
    score = analysis.get("score") or {}
    console.print(
        f"verdict {verdict.upper()} (score {score.get('value', '-')}; compared with "
        f"{len(analysis.get('baseline_run_ids') or [])} baseline run(s))"
    )
    for finding in analysis["findings"]:
        if finding["severity"] != "info":
            console.print(f"  • {finding['summary']}")
    console.print(f"reports in {out.resolve()}")
    passed = verdict == "pass" or (verdict == "warning" and allow_warning)
    raise typer.Exit(GATE_PASS if passed else GATE_FAIL)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
