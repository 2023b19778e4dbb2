"""Executing a claimed run: guardrails again, attempts (retry once, then a reduced load), a
heartbeat that also carries aborts, and the final state with k6's figures.

Failure fallbacks follow the design spec (§8): a k6 execution failure is retried once; if it
fails again the run falls back to half the load, and says so in its events.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core import metrics
from app.core.errors import GuardrailViolation
from app.core.settings import Settings
from app.guardrails.egress import egress_for, k6_args
from app.guardrails.service import check_plan, sandboxed
from app.k6 import remote_write, sandbox
from app.k6.process import (
    K6Outcome,
    ScriptRejected,
    go_runtime_env,
    inspect_script,
    k6_version,
    run_k6,
)
from app.k6.remote_write import Series
from app.k6.sandbox import Egress
from app.k6.summary import test_duration_s
from app.models import Plan, Run, RunResult, RunStatus
from app.models.base import utcnow
from app.plans import k6script
from app.plans.load_profiles import raw_load, scaled
from app.plans.schemas import PlanSpec, effective_slos
from app.plans.secrets import MissingSecret, plan_secrets
from app.runs import forward
from app.runs import summary as k6summary
from app.runs.budget import BudgetWatch, Limits
from app.runs.live import ALL, LiveMetrics, RemoteWriteLive
from app.runs.profile import profile_run
from app.runs.repository import RunRepository
from app.runs.spool import Spool
from app.runs.system import GeneratorSampler, ProcessSampler, is_loopback

log = logging.getLogger(__name__)

FALLBACK_FACTOR = 0.5
ATTEMPTS_PER_CLAIM = 3  # the first try, the retry of a crash, the reduced-load fallback
TICK_S = 0.5


def vu_ceiling(spec: PlanSpec, settings: Settings) -> int:
    """The most VUs a run may have at any second: its reviewed peak, within the guardrail."""
    return min(settings.max_vus, max(1, spec.load_profile.vus_at_peak))


def _every_request_failed(outcome: K6Outcome) -> bool:
    metrics = (outcome.summary or {}).get("metrics", {})
    reqs = metrics.get("http_reqs", {}).get("values", {}).get("count", 0)
    failed = metrics.get("http_req_failed", {}).get("values", {}).get("passes", 0)
    return bool(reqs) and failed >= reqs


def run_timeout_s(spec: PlanSpec, settings: Settings) -> float:
    return (
        min(spec.load_profile.total_duration_s, float(settings.max_duration_s))
        + settings.run_slack_s
    )


@dataclass
class Control:
    """Shared between the heartbeat and the k6 attempt: why (and whether) to stop early."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str | None = None  # "abort" | "lost" | "budget"

    def request_stop(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
        self.stop.set()


class Job:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        run_id: uuid.UUID,
        settings: Settings,
        worker_id: str,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.run_id = run_id
        self.settings = settings
        self.worker_id = worker_id
        self.attempt_base = 0
        self.control = Control()
        self.network_args: list[str] = []
        self.egress: Egress | None = None  # set at claim: the sandbox's allowed destinations
        self.sandboxed = False
        self.blocked = 0  # connection attempts the sandbox refused, over all attempts
        self.spool = Spool(settings.data_dir.resolve() / "spool" / f"{run_id}.jsonl", run_id)
        self.live: LiveMetrics | None = None  # the latest attempt's
        self.notes: list[tuple[str, str, dict[str, Any]]] = []  # events for the final write
        self.sampler: ProcessSampler | None = None
        self.generator: GeneratorSampler | None = None
        self.forwarder: forward.Forwarder | None = None  # the run's series to a Prometheus

    async def event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        record = {
            "type": "event",
            "at": utcnow().isoformat(),
            "kind": kind,
            "message": message,
            "data": data,
        }
        await self.spool.write(self.sessionmaker, record)

    async def heartbeat(self) -> None:
        while True:
            try:
                async with self.sessionmaker() as session, session.begin():
                    run = await RunRepository(session).heartbeat(
                        self.run_id, worker_id=self.worker_id, now=utcnow()
                    )
                if run is None:
                    # The reaper gave this run away (we looked dead): stop, record nothing.
                    self.control.request_stop("lost")
                    return
                if run.abort_requested and self.control.reason is None:
                    self.control.request_stop("abort")
            except (OSError, SQLAlchemyError) as exc:
                # The database may be away for a while; samples wait in the spool meanwhile.
                log.warning("run %s: heartbeat failed (%s)", self.run_id, type(exc).__name__)
            await asyncio.sleep(self.settings.heartbeat_interval_s)

    async def attempt(self, spec: PlanSpec, script: str, number: int) -> K6Outcome:
        workdir = (self.settings.runs_dir / str(self.run_id) / f"attempt-{number}").resolve()
        await asyncio.to_thread(_write, workdir / "script.js", script)
        address = f"127.0.0.1:{free_port()}"  # a clash exits 106: a crash, retried

        def exhausted() -> None:
            self.control.reason = self.control.reason or "budget"
            # The REST stop is graceful; should k6 not be gone after the grace period, signal.
            asyncio.get_running_loop().call_later(self.settings.stop_grace_s, self.control.stop.set)

        watch = BudgetWatch(
            address=address,
            limits=Limits.of(spec.budget, self.settings),
            settings=self.settings,
            event=self.event,
            run_id=str(self.run_id),
            on_exhausted=exhausted,
        )
        remote = self.settings.live_path == "remote-write"
        kind = RemoteWriteLive if remote else LiveMetrics
        live = self.live = kind(spec.step_names, window_s=self.settings.histogram_window_s)
        # Reading k6's stream never waits for the database, and the budget never waits for
        # either: each has its own queue.
        outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        seconds: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        served = [0]  # requests k6 reported so far: the profiler's window counts them

        def post() -> None:
            for item in live.drain():
                if item["type"] == "sample":
                    served[0] += int(item["sample"].get("requests") or 0)
                    item["sample"]["attempt"] = number
                    if self.sampler is not None and self.sampler.latest is not None:
                        item["sample"]["system"] = self.sampler.latest
                    if self.generator is not None and self.generator.latest is not None:
                        item["sample"]["generator"] = self.generator.latest
                    seconds.put_nowait(item["sample"])
                else:
                    item["attempt"] = number
                outbox.put_nowait(item)

        ceiling = vu_ceiling(spec, self.settings)
        ceiling_events: list[asyncio.Task[None]] = []

        def taken(feed: Callable[[], None]) -> None:
            if live.broken:
                return
            try:
                feed()
            except Exception:
                # Results will come from k6's summary instead (see results()).
                live.broken = True
                log.exception("run %s: k6's metrics could not be read", self.run_id)
            if live.reported_vus > ceiling and self.control.reason is None:
                # The plan was reviewed (and measured by k6 inspect) at its peak; a script that
                # runs more VUs than that is stopped the moment k6 reports them.
                vus = int(live.reported_vus)
                self.control.request_stop("vu_ceiling")
                data = {"code": "guardrail.vu_ceiling", "vus": vus, "ceiling": ceiling}
                message = f"{vus} VUs running, above the ceiling of {ceiling}: stopping k6"
                ceiling_events.append(asyncio.create_task(self.event("guardrail", message, data)))
            post()

        def on_metrics(chunk: bytes) -> None:
            taken(lambda: live.feed(chunk))

        def on_push(series: list[Series], request: Any, received: float) -> None:
            assert isinstance(live, RemoteWriteLive)
            metrics.REMOTE_WRITE_PUSHES.inc()
            taken(lambda: live.push(series, received))
            if self.forwarder is not None:
                self.forwarder.send(request)

        async def tick() -> None:
            while True:
                await asyncio.sleep(TICK_S)
                if not live.broken:
                    live.tick()
                    post()

        async def store() -> None:
            while True:
                # Whatever has queued meanwhile goes in the same transaction.
                items = [await outbox.get()]
                while not outbox.empty():
                    items.append(outbox.get_nowait())
                try:
                    await self.spool.write(self.sessionmaker, *items)
                except Exception:
                    log.exception("run %s: live records were not stored", self.run_id)
                finally:
                    for _ in items:
                        outbox.task_done()

        async def judge() -> None:
            while True:
                sample = await seconds.get()
                try:
                    await watch.observe(sample)
                except Exception:
                    log.exception("run %s: the budget check failed", self.run_id)

        async def profiled(data: dict[str, Any]) -> None:
            parts = []
            for found in data["profiles"]:
                top = (found.get("functions") or found.get("queries") or [{}])[0]
                lead = top.get("name") or (top.get("query") or "")[:60]
                share = top.get("self_share", top.get("share"))
                parts.append(
                    f"{found['source']}: {found['status']}"
                    + (f" (top {lead} {share:.0%})" if found["status"] == "ok" and lead else "")
                    + (f" — {found['reason']}" if found["status"] != "ok" else "")
                )
            window = data["window"]
            await self.event(
                "profile",
                f"profiled {window['seconds']:g} s from {window['start_s']:g} s: "
                + "; ".join(parts),
                data,
            )

        async def started(pid: int) -> None:
            self.generator = GeneratorSampler(pid, self.sampler)
            helpers.append(asyncio.create_task(self.generator.run()))
            helpers.append(
                asyncio.create_task(
                    profile_run(spec, self.settings, self.sampler, lambda: served[0], profiled)
                )
            )
            await self.event(
                "k6_started", f"attempt {number}: k6 started", {"pid": pid, "address": address}
            )

        helpers = [asyncio.create_task(task()) for task in (tick, store, judge)]
        if is_loopback(spec.target.base_url):
            self.sampler = ProcessSampler(spec.target.base_url)
            helpers.append(asyncio.create_task(self.sampler.run()))
        try:
            async with contextlib.AsyncExitStack() as stack:
                box = None
                egress = self.egress
                args = list(self.network_args)
                env = go_runtime_env(
                    self.settings.k6_gogc,
                    self.settings.k6_memory_limit_fraction / self.settings.worker_concurrency,
                )
                if remote:
                    receiver = await stack.enter_async_context(remote_write.receiver(on_push))
                    args += remote_write.OUTPUT_ARGS
                    env |= remote_write.k6_environment(receiver.url)
                    if egress is not None:
                        collector = (ipaddress.ip_address(receiver.host), receiver.port)
                        egress = replace(egress, collectors=(collector,))
                if self.sandboxed:
                    box = await stack.enter_async_context(
                        sandbox.confined(self.settings, self.settings.k6_binary, egress)
                    )
                outcome = await run_k6(
                    binary=self.settings.k6_binary,
                    script=workdir / "script.js",
                    workdir=workdir,
                    timeout_s=run_timeout_s(spec, self.settings),
                    grace_s=self.settings.stop_grace_s,
                    secrets=plan_secrets(spec),
                    extra_args=args,
                    stop=self.control.stop,
                    on_start=started,
                    address=address,
                    on_metrics=None if remote else on_metrics,
                    box=box,
                    env=env,
                )
            refused = (box.blocked if box is not None else 0) + outcome.blacklisted
            if refused:
                self.blocked += refused
                metrics.EGRESS_BLOCKED.inc(refused)
                await self.event(
                    "guardrail",
                    f"{refused} connection attempts to addresses other than the target's were "
                    "refused (by k6's address blacklist and the sandbox's rules)",
                    {
                        "code": "guardrail.egress_blocked",
                        "attempts": refused,
                        "by_k6": outcome.blacklisted,
                        "by_sandbox": box.blocked if box is not None else 0,
                    },
                )
            if not live.broken:
                try:
                    live.finish()
                except Exception:
                    live.broken = True
                    log.exception("run %s: k6's metric stream could not be read", self.run_id)
            post()
            await asyncio.gather(*ceiling_events)
            await outbox.join()
            return outcome
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def attempts(self, spec: PlanSpec, script: str) -> tuple[K6Outcome, float]:
        """Run k6; retry a crash once, then fall back to a reduced load."""
        base = self.attempt_base
        outcome = await self.attempt(spec, script, base + 1)
        if not outcome.crashed or self.control.reason:
            return outcome, 1.0
        await self.event("retry", f"{outcome.describe()}; retrying once", _tail(outcome))
        outcome = await self.attempt(spec, script, base + 2)
        if not outcome.crashed or self.control.reason or spec.is_raw:
            # (A hand-written script's load cannot be scaled: no fallback for it.)
            return outcome, 1.0
        reduced = spec.model_copy(update={"load": scaled(spec.load_profile, FALLBACK_FACTOR)})
        reduced_script = k6script.render(reduced, slos=effective_slos(reduced)[0])
        await self.event(
            "fallback",
            f"{outcome.describe()} again; falling back to {FALLBACK_FACTOR:.0%} of the load",
            {
                **_tail(outcome),
                "load_factor": FALLBACK_FACTOR,
                "peak_vus": reduced.load_profile.vus_at_peak,
                "script_sha256": k6script.sha256(reduced_script),
            },
        )
        return await self.attempt(reduced, reduced_script, base + 3), FALLBACK_FACTOR

    async def run(self) -> str:
        async with self.sessionmaker() as session:
            run = await session.get(Run, self.run_id)
            plan = await session.get(Plan, run.plan_id) if run else None
            if run is None or plan is None:
                raise LookupError(f"run {self.run_id} or its plan vanished")
            spec = PlanSpec.model_validate(plan.spec)
            script = plan.script
            plan_id = str(plan.id)
            # A run re-queued after its worker died is claimed again: its attempts are numbered
            # after the dead worker's, so "the latest attempt" is never a mix of both.
            self.attempt_base = ATTEMPTS_PER_CLAIM * max(0, run.attempts - 1)
        await self.event("claimed", f"claimed by worker {self.worker_id}")
        try:
            # Settings may have tightened since the run was queued.
            check_plan(spec, self.settings)
            plan_secrets(spec)
            self.egress = await egress_for(spec, self.settings)
            self.network_args = k6_args(self.egress)
            self.sandboxed = sandboxed(spec, self.settings)
            if spec.is_raw:
                await self.check_script_here(spec, script)
        except (GuardrailViolation, MissingSecret) as exc:
            code = getattr(exc, "code", "secret.missing")
            await self.event("refused", str(exc), {"code": code})
            metrics.count_run_refusal(code)
            return await self.finish(spec, None, RunStatus.failed, str(exc), 1.0)
        await self.start_forwarding(spec, plan_id)
        beating = asyncio.create_task(self.heartbeat())
        try:
            outcome, factor = await self.attempts(spec, script)
        except OSError as exc:
            message = f"could not start k6 ({self.settings.k6_binary}): {exc}"
            return await self.finish(spec, None, RunStatus.failed, message, 1.0)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
            await self.stop_forwarding()
        if self.control.reason == "lost":
            log.warning("run %s was given to another worker; dropping this attempt", self.run_id)
            return "lost"
        status, error = self.verdict(outcome)
        return await self.finish(spec, outcome, status, error, factor)

    async def start_forwarding(self, spec: PlanSpec, plan_id: str) -> None:
        """Forward the run's k6 series to the configured Prometheus endpoints, if any."""
        if not self.settings.remote_write_url and spec.remote_write is None:
            return
        if self.settings.live_path != "remote-write":
            await self.event(
                "forward_unavailable",
                "the run's series are not forwarded: forwarding needs the remote-write live "
                "path (PERF_AGENT_LIVE_PATH=remote-write)",
                {"live_path": self.settings.live_path},
            )
            return
        endpoints, refused = await forward.endpoints_for(spec, self.settings)
        for refusal in refused:
            await self.event(
                "forward_refused",
                f"the run's series are not forwarded to the {refusal['source']}'s endpoint: "
                f"{refusal['detail']}",
                refusal,
            )
        if endpoints:
            labels = forward.run_labels(spec, str(self.run_id), plan_id)
            self.forwarder = forward.Forwarder(endpoints, labels)
            self.forwarder.start()

    async def stop_forwarding(self) -> None:
        if self.forwarder is None:
            return
        reports = await self.forwarder.close()
        sent = sum(r["sent"] for r in reports)
        lost = sum(r["failed"] + r["dropped"] for r in reports)
        await self.event(
            "forwarded",
            f"{sent} pushes of k6 series forwarded" + (f", {lost} lost" if lost else ""),
            {"labels": self.forwarder.labels, "endpoints": reports},
        )

    async def check_script_here(self, spec: PlanSpec, script: str) -> None:
        """A hand-written script, where it is about to run (and allowed to, see
        ``sandboxed``): measured again by ``k6 inspect`` with the run's own environment,
        secrets included, so options that depend on ``__ENV`` are judged as they will run."""
        try:
            needs = await inspect_script(
                self.settings.k6_binary,
                script,
                requirements=True,
                settings=self.settings,
                secrets=plan_secrets(spec),
            )
        except ScriptRejected as exc:
            raise GuardrailViolation(
                f"k6 rejected the script here: {exc}", code="plan.script_rejected"
            ) from exc
        measured = spec.model_copy(update={"load": raw_load(needs)})
        if measured.load_profile.vus_at_peak > spec.load_profile.vus_at_peak:
            raise GuardrailViolation(
                f"the script asks for {measured.load_profile.vus_at_peak} VUs where it runs, "
                f"but was reviewed at {spec.load_profile.vus_at_peak}",
                code="guardrail.vu_ceiling",
            )
        check_plan(measured, self.settings)

    def verdict(self, outcome: K6Outcome) -> tuple[RunStatus, str | None]:
        if self.control.reason == "vu_ceiling":
            return RunStatus.failed, (
                "guardrail.vu_ceiling: k6 ran more VUs than the plan's ceiling and was stopped"
            )
        if self.control.reason == "abort":
            return RunStatus.aborted, "aborted on request; partial results kept"
        if self.control.reason == "budget":
            return RunStatus.partial, "stopped at its cost budget; partial results kept"
        if outcome.timed_out:
            return RunStatus.timed_out, (
                f"stopped at the time limit; partial results kept ({outcome.describe()})"
            )
        if self.blocked and outcome.summary is not None and _every_request_failed(outcome):
            return RunStatus.failed, (
                f"guardrail.egress_blocked: every request failed, and {self.blocked} connection "
                "attempts outside the target were refused"
            )
        if outcome.completed and outcome.summary is not None:
            return RunStatus.succeeded, None
        if outcome.completed:
            return RunStatus.failed, f"{outcome.describe()} but wrote no summary"
        return RunStatus.failed, outcome.describe()

    async def finish(
        self,
        spec: PlanSpec,
        outcome: K6Outcome | None,
        status: RunStatus,
        error: str | None,
        factor: float,
    ) -> str:
        rows: list[RunResult] = []
        if outcome is not None:
            try:
                parsed = self.results(spec, outcome)
                rows = [RunResult(run_id=self.run_id, **row) for row in parsed]
            except k6summary.SummaryError as exc:
                status, error = RunStatus.failed, str(exc)
        if status == RunStatus.succeeded and not rows:
            status, error = RunStatus.failed, "k6 reported no results"
        # Asked outside the transaction: the first call starts `k6 version` (then cached).
        version = await asyncio.to_thread(k6_version, self.settings.k6_binary)
        deadline = time.monotonic() + self.settings.db_outage_tolerance_s
        while True:
            try:
                await self._store_outcome(outcome, status, error, factor, rows, version)
                break
            except (OSError, SQLAlchemyError) as exc:
                # The database may be down for a while: the results wait here, not lost.
                if time.monotonic() > deadline:
                    raise
                log.warning("run %s: cannot store its outcome yet (%s)", self.run_id, exc)
                await asyncio.sleep(1.0)
                rows = [RunResult(**_columns(row)) for row in rows]
        metrics.RUNS_FINISHED.labels(status=status).inc()
        log.info("run %s finished: %s%s", self.run_id, status, f" ({error})" if error else "")
        return str(status)

    def results(self, spec: PlanSpec, outcome: K6Outcome) -> list[dict[str, Any]]:
        """Per-endpoint results from k6's own end-of-test summary (exact: every sample); from
        the live histograms only when k6 wrote no usable summary (killed, or a hand-written
        script whose summary lacks the figures)."""
        summary = outcome.summary
        broken = self.live is not None and self.live.broken
        live = self.live if self.live is not None and self.live.points and not broken else None
        if broken:
            self.notes.append(("live_broken", "k6's live metrics could not be read to the end", {}))
        if summary is not None:
            try:
                rows = k6summary.parse_results(summary, spec.step_names)
            except k6summary.SummaryError:
                if live is None:
                    raise
            else:
                if live is not None:
                    self._compare_counts(live, rows[0]["requests"])
                return [{**row, "source": "summary"} for row in rows]
        if live is None:
            return []
        self.notes.append(
            (
                "results_from_histograms",
                "k6 wrote no usable summary; the results are the live histograms' (percentiles "
                "within their buckets' accuracy)",
                {"live_path": self.settings.live_path},
            )
        )
        duration = test_duration_s(summary) if summary else None
        return [{**row, "source": "histograms"} for row in live.results(spec.step_names, duration)]

    def _compare_counts(self, live: LiveMetrics, counted: int) -> None:
        seen = live.totals.get(ALL)
        requests = seen.requests if seen is not None else 0
        if requests != counted:
            self.notes.append(
                (
                    "live_mismatch",
                    f"the live metrics counted {requests} requests, k6's summary {counted}",
                    {"live": requests, "summary": counted},
                )
            )

    async def _store_outcome(
        self,
        outcome: K6Outcome | None,
        status: RunStatus,
        error: str | None,
        factor: float,
        rows: list[RunResult],
        version: str | None,
    ) -> None:
        async with self.sessionmaker() as session, session.begin():
            repo = RunRepository(session)
            run = await repo.get(self.run_id, for_update=True)
            if run is None:
                raise LookupError(f"run {self.run_id} vanished")
            run.status = status
            run.finished_at = utcnow()
            run.error = error
            run.load_factor = factor
            run.k6_version = version
            if outcome is not None:
                run.exit_code = outcome.exit_code
                run.stderr_tail = outcome.stderr_tail or None
                run.summary = outcome.summary
                if outcome.summary is not None:
                    run.test_duration_s = test_duration_s(outcome.summary)
            # Partial figures (a run stopped early) are kept: they are still k6's measurement.
            await repo.replace_results(self.run_id, rows)
            replayed = await self.spool.replay(session)
            # A stop (abort, time limit) makes k6 log its in-flight requests as errors too.
            if outcome is not None and outcome.completed and outcome.script_errors:
                await repo.add_event(
                    self.run_id,
                    "script_errors",
                    f"k6 logged {outcome.script_errors} errors inside iterations; the steps "
                    "after a failing one did not run in those iterations",
                    {"count": outcome.script_errors, "last": outcome.thrown[-5:]},
                )
            if outcome is not None and outcome.warnings:
                total = sum(outcome.warnings.values())
                await repo.add_event(
                    self.run_id,
                    "k6_warnings",
                    f"k6 warned {total} times: " + "; ".join(list(outcome.warnings)[:3]),
                    {"count": total, "warnings": outcome.warnings},
                )
            for kind, message, data in self.notes:
                await repo.add_event(self.run_id, kind, message, data)
            await repo.add_event(
                self.run_id,
                "finished",
                f"{status}" + (f": {error}" if error else ""),
                {
                    "exit_code": outcome.exit_code if outcome else None,
                    "load_factor": factor,
                    # Requests k6 reported after their second was closed: in the windows and
                    # results, not in that second's sample.
                    "late_points": self.live.late if self.live else 0,
                },
            )
        if replayed:
            await self.spool.committed()


def _columns(row: RunResult) -> dict[str, Any]:
    """A fresh copy of a result row (a failed transaction leaves the old one unusable)."""
    return {c.key: getattr(row, c.key) for c in RunResult.__table__.columns if c.key != "id"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _tail(outcome: K6Outcome) -> dict[str, Any]:
    return {"exit_code": outcome.exit_code, "stderr_tail": outcome.stderr_tail[-2000:]}


async def execute_claimed_run(
    sessionmaker: async_sessionmaker[AsyncSession],
    run_id: uuid.UUID,
    settings: Settings,
    worker_id: str,
) -> str:
    """Run k6 for a run this worker has claimed and store what k6 measured.

    No transaction is held while k6 runs; the job opens short sessions around it.
    """
    return await Job(sessionmaker, run_id, settings, worker_id).run()


async def fail_run(
    sessionmaker: async_sessionmaker[AsyncSession], run_id: uuid.UUID, error: str
) -> None:
    """Last resort for a job that crashed: a run is never left 'running' by a live worker."""
    async with sessionmaker() as session, session.begin():
        run = await session.get(Run, run_id, with_for_update=True)
        if run is not None and run.status == RunStatus.running:
            run.status = RunStatus.failed
            run.finished_at = utcnow()
            run.error = error
            await RunRepository(session).add_event(run_id, "finished", f"failed: {error}")
    metrics.RUNS_FINISHED.labels(status=RunStatus.failed).inc()
