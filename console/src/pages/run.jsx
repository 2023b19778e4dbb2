// One run: live while it runs (fed by its SSE stream, resumed by Last-Event-ID after a drop),
// its results once finished, and the way to its analysis.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { call, stream } from "../api.js";
import { Chart, colour } from "../chart.jsx";
import { Badge, Link, Loading, Problem, ms, nav, num, pct, useRendered, short, useApi, when } from "../ui.jsx";

const MAX_DURATION_S = 1800;
const LATENCY_KEYS = ["p50", "p95", "p99"];

// 'p95 < 300ms' objectives as numbers, for target lines; relative ones have no line.
export function latencyTargets(spec) {
  const out = [];
  for (const slo of spec?.slos || []) {
    const text = typeof slo === "string" ? slo : slo.objective || "";
    const m = /^\s*(p\d+|avg|max|med)\s*<=?\s*([\d.]+)\s*(ms|s)\s*$/.exec(text);
    if (m) out.push({ sli: m[1], ms: Number(m[2]) * (m[3] === "s" ? 1000 : 1), endpoint: (typeof slo === "object" && slo.endpoint) || "*", text });
  }
  return out;
}

export function useSamples(runId) {
  const [state, setState] = useState({ samples: [], events: [], status: null, connection: "connecting", ended: false });
  const handle = useRef(null);
  useEffect(() => {
    const seen = new Map();
    const events = [];
    let status = null;
    let ended = false;
    let frame = 0;
    const flush = () => {
      frame = 0;
      const samples = [...seen.values()].sort((a, b) => a.elapsed_s - b.elapsed_s);
      setState((s) => ({ ...s, samples, events: [...events], status, ended }));
    };
    const schedule = () => {
      if (!frame) frame = requestAnimationFrame(flush);
    };
    handle.current = stream(`/runs/${runId}/stream`, {
      onEvent(kind, data) {
        if (kind === "sample") {
          const sample = data.sample || data;
          seen.set(sample.elapsed_s, { ...sample, at: data.at });
        } else if (kind === "event") events.push(data);
        else if (kind === "status") status = data.status || data;
        else if (kind === "end") {
          ended = true;
          status = data.status || status;
        }
        schedule();
      },
      onState(connection) {
        setState((s) => ({ ...s, connection }));
      },
    });
    window.__perfAgentStream = handle.current; // tests drop the connection through this
    return () => handle.current.close();
  }, [runId]);
  return state;
}

export function seriesOf(samples, scope, keys = LATENCY_KEYS) {
  const x = samples.map((s) => s.elapsed_s);
  const pick = (s) => (scope === "*" ? s : s.endpoints?.[scope]);
  return {
    x,
    latency: keys.map((k) => samples.map((s) => pick(s)?.latency_ms?.[k] ?? null)),
    rps: samples.map((s) => pick(s)?.requests ?? 0),
    errors: samples.map((s) => pick(s)?.failures ?? 0),
    vus: samples.map((s) => s.vus ?? null),
  };
}

export function Run({ id }) {
  const run = useApi(`/runs/${id}`);
  const live = useSamples(id);
  const plan = useApi(run.data ? `/plans/${run.data.plan_id}` : null, undefined, [run.data?.plan_id]);
  const analyses = useApi(run.data?.finished ? "/analyses" : null, { query: { run_id: id } }, [run.data?.finished]);
  const [scope, setScope] = useState("*");
  const [shown, setShown] = useState(null); // endpoints drawn in the per-endpoint chart
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  useRendered("run", Boolean(run.data && (live.samples.length > 0 || live.ended || !run.data.started_at)));
  useEffect(() => {
    // The stream says when the state changes; the run's record has the rest.
    if (live.status && run.data && live.status !== run.data.status) run.reload();
  }, [live.status]);
  useEffect(() => {
    // What a queued run waits for (its target's slots, a worker) changes without a stream
    // event: look again every few seconds while it waits.
    if (run.data?.status !== "queued") return;
    const timer = setTimeout(run.reload, 3000);
    return () => clearTimeout(timer);
  }, [run.data]);

  const endpoints = useMemo(() => {
    const names = new Set();
    for (const s of live.samples) for (const n of Object.keys(s.endpoints || {})) names.add(n);
    return [...names].sort();
  }, [live.samples.length]);
  const picked = shown || endpoints;

  if (run.error) return <Problem error={run.error} />;
  if (!run.data) return <Loading />;
  const r = run.data;
  const series = seriesOf(live.samples, scope);
  const targets = latencyTargets(plan.data?.spec).filter((t) => t.endpoint === scope || (scope === "*" && t.endpoint === "*"));
  const last = live.samples[live.samples.length - 1];
  const elapsed = last ? last.elapsed_s + 1 : 0;
  const limit = Math.min(r.planned_duration_s || MAX_DURATION_S, MAX_DURATION_S);
  const budget = plan.data?.spec?.budget?.vu_seconds;
  const eventMarks = live.events
    .filter((e) => /guardrail|budget|abort|retry|fallback|refused/.test(e.kind || ""))
    .map((e) => ({ x: markSecond(e, live.samples), label: e.kind, colour: /budget/.test(e.kind) ? "#ca8a04" : "#dc2626" }))
    .filter((m) => m.x !== null);

  async function abort() {
    setBusy(true);
    setError(null);
    try {
      await call(`/runs/${id}/abort`, { method: "POST" });
      run.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  async function analyse() {
    setBusy(true);
    setError(null);
    try {
      const analysis = await call("/analyse", { method: "POST", json: { run_id: id } });
      nav.go(`/analyses/${analysis.id}`);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  }

  const perEndpoint = picked.map((name) => live.samples.map((s) => s.endpoints?.[name]?.latency_ms?.p95 ?? null));
  return (
    <section>
      <h1>
        Run {short(r.id)} <Badge value={r.status} testid="run-status" />
      </h1>
      <p class="meta">
        Plan <Link to={`/plans/${r.plan_id}`}>{plan.data ? `${plan.data.name} v${plan.data.version}` : short(r.plan_id)}</Link> · queued {when(r.created_at)}
        {r.started_at && <> · started {when(r.started_at)}</>}
        {r.finished_at && <> · finished {when(r.finished_at)}</>} · stream <span data-testid="stream-state">{live.connection}</span>
      </p>
      {r.status === "queued" && r.queue && (
        <p class="meta" data-testid="queue-reason">
          {r.queue.reason}
        </p>
      )}
      <Problem error={error} />
      {r.error && <div class="problem">{r.error}</div>}
      <div class="bar">
        {!r.finished && (
          <button class="danger" onClick={abort} disabled={busy || r.abort_requested} data-testid="abort">
            {r.abort_requested ? "Abort requested" : "Abort"}
          </button>
        )}
        {r.finished && analyses.data && analyses.data.length > 0 && (
          <Link to={`/analyses/${analyses.data[0].id}`} class="button" data-testid="open-analysis">
            Analysis ({analyses.data[0].verdict})
          </Link>
        )}
        {r.finished && (
          <button onClick={analyse} disabled={busy} data-testid="analyse">
            {analyses.data?.length ? "Analyse again" : "Analyse"}
          </button>
        )}
      </div>
      <div class="figures" data-testid="figures">
        <Figure label="Elapsed" value={`${elapsed} s / ${limit} s`} bar={elapsed / limit} />
        <Figure label="VUs" value={num(last?.vus, 0)} />
        <Figure label="Requests" value={num(last?.total_requests, 0)} />
        <Figure label="Failures" value={num(last?.total_failures, 0)} />
        <Figure label="p95 (last s)" value={ms(last?.latency_ms?.p95)} />
        <Figure label="VU-seconds" value={budget ? `${num(last?.vu_seconds, 0)} / ${num(budget, 0)}` : num(last?.vu_seconds, 0)} bar={budget ? (last?.vu_seconds || 0) / budget : undefined} />
      </div>
      <label class="scope">
        Requests:{" "}
        <select value={scope} onChange={(e) => setScope(e.target.value)} data-testid="scope">
          <option value="*">all</option>
          {endpoints.map((n) => (
            <option value={n}>{n}</option>
          ))}
        </select>
      </label>
      <div class="charts">
        <Chart
          testid="latency-chart"
          title="Latency (ms)"
          cursorSync="run"
          series={LATENCY_KEYS.map((k, i) => ({ label: k, stroke: colour(i) }))}
          data={[series.x, ...series.latency]}
          marks={[...targets.map((t) => ({ y: t.ms, label: t.text })), ...eventMarks]}
        />
        <Chart
          testid="throughput-chart"
          title="Requests and errors per second"
          cursorSync="run"
          series={[
            { label: "requests/s", stroke: colour(0) },
            { label: "errors/s", stroke: colour(1) },
          ]}
          data={[series.x, series.rps, series.errors]}
          marks={eventMarks}
        />
        <Chart testid="vus-chart" title="VUs" cursorSync="run" series={[{ label: "VUs", stroke: colour(3) }]} data={[series.x, series.vus]} marks={eventMarks} height={160} />
        {endpoints.length > 0 && (
          <div>
            <fieldset class="toggles" data-testid="endpoint-toggles">
              <legend>p95 per endpoint</legend>
              {endpoints.map((n, i) => (
                <label>
                  <input
                    type="checkbox"
                    checked={picked.includes(n)}
                    onChange={(e) => setShown(e.target.checked ? [...picked, n].sort() : picked.filter((p) => p !== n))}
                  />
                  <span style={{ color: colour(i) }}>{n}</span>
                </label>
              ))}
            </fieldset>
            <Chart
              testid="endpoints-chart"
              title="p95 per endpoint (ms)"
              cursorSync="run"
              series={picked.map((n) => ({ label: n, stroke: colour(endpoints.indexOf(n)) }))}
              data={[series.x, ...perEndpoint]}
            />
          </div>
        )}
      </div>
      {r.results?.length > 0 && <Results results={r.results} />}
      <Events events={r.events} />
    </section>
  );
}

function markSecond(event, samples) {
  if (!samples.length || !event.at) return null;
  const first = Date.parse(samples[0].at) / 1000 - samples[0].elapsed_s;
  return Math.max(0, Math.round(Date.parse(event.at) / 1000 - first));
}

function Figure({ label, value, bar }) {
  return (
    <div class="figure">
      <div class="label">{label}</div>
      <div class="value">{value}</div>
      {bar !== undefined && (
        <div class="meter">
          <div style={{ width: `${Math.min(100, Math.max(0, bar * 100))}%` }} class={bar > 0.8 ? "hot" : ""} />
        </div>
      )}
    </div>
  );
}

export function Results({ results }) {
  return (
    <table class="grid" data-testid="results">
      <thead>
        <tr>
          <th>Endpoint</th>
          <th class="n">Requests</th>
          <th class="n">RPS</th>
          <th class="n">Errors</th>
          <th class="n">p50</th>
          <th class="n">p95</th>
          <th class="n">p99</th>
          <th class="n">max</th>
        </tr>
      </thead>
      <tbody>
        {results.map((e) => (
          <tr>
            <td>{e.endpoint === "*" ? "all requests" : e.endpoint}</td>
            <td class="n">{num(e.requests, 0)}</td>
            <td class="n">{num(e.rps)}</td>
            <td class="n">{pct(e.error_rate)}</td>
            <td class="n">{ms(e.p50_ms)}</td>
            <td class="n">{ms(e.p95_ms)}</td>
            <td class="n">{ms(e.p99_ms)}</td>
            <td class="n">{ms(e.max_ms)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Events({ events }) {
  if (!events?.length) return null;
  return (
    <details class="events">
      <summary>Events ({events.length})</summary>
      <ul>
        {events.map((e) => (
          <li>
            <code>{e.kind}</code> {when(e.at)} — {e.message}
          </li>
        ))}
      </ul>
    </details>
  );
}
