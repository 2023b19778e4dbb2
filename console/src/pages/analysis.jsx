// An analysis: the verdict and why — objectives, comparisons with their statistics, findings
// (with accept/reject feeding the recommendation KPI), the narrative, the run against its
// baseline second by second, per-endpoint latency distributions, the knee and the profile.
import { useEffect, useState } from "preact/hooks";
import { API, call } from "../api.js";
import { Chart, colour } from "../chart.jsx";
import { Badge, Link, Loading, Problem, formatUnit, ms, num, pct, useRendered, short, signed, useApi, when } from "../ui.jsx";
import { seriesOf, useSamples } from "./run.jsx";

export function Analysis({ id }) {
  const analysis = useApi(`/analyses/${id}`);
  useRendered("analysis", Boolean(analysis.data));
  if (analysis.error) return <Problem error={analysis.error} />;
  if (!analysis.data) return <Loading />;
  const a = analysis.data;
  return (
    <section>
      <h1>
        Analysis of run <Link to={`/runs/${a.run_id}`}>{short(a.run_id)}</Link> <Badge value={a.verdict} testid="verdict" />
      </h1>
      <p class="meta">
        {when(a.created_at)}
        {a.score && (
          <>
            {" "}
            · score <strong data-testid="score">{num(a.score.value, 1)}</strong> / 100 (pass ≥ {a.score.pass_target}, warning ≥ {a.score.warning_target})
          </>
        )}
        {" · "}
        baseline: {a.baseline_run_ids?.length ? a.baseline_run_ids.map((b) => <Link to={`/runs/${b}`}>{short(b)} </Link>) : a.baseline_source || "none"}
        {" · "}
        <a href={`${API}/analyses/${id}/report.html`} target="_blank" rel="noopener">
          HTML report
        </a>{" "}
        ·{" "}
        <a href={`${API}/analyses/${id}/report.md`} target="_blank" rel="noopener">
          Markdown
        </a>
        {a.baseline_run_id && (
          <>
            {" · "}
            <Link to={`/compare?a=${a.baseline_run_id}&b=${a.run_id}`} data-testid="compare-baseline">
              compare with baseline
            </Link>
          </>
        )}
      </p>
      {a.warnings?.length > 0 && (
        <ul class="warnings">
          {a.warnings.map((w) => (
            <li>{w}</li>
          ))}
        </ul>
      )}
      <Narrative a={a} />
      <Objectives rows={a.slo_results} />
      <Comparisons rows={a.comparisons} />
      <Findings a={a} />
      <Overlay a={a} />
      <Distributions run={a.run_id} baseline={a.baseline_run_id} />
      <Knee saturation={a.saturation} />
      <ProfileTable profile={a.profile} />
    </section>
  );
}

function Narrative({ a }) {
  if (a.narrative)
    return (
      <div class="narrative" data-testid="narrative">
        <h2>Narrative</h2>
        <p>{a.narrative.summary}</p>
        {a.narrative.root_causes?.length > 0 && (
          <ul>
            {a.narrative.root_causes.map((c) => (
              <li>{typeof c === "string" ? c : c.summary || JSON.stringify(c)}</li>
            ))}
          </ul>
        )}
      </div>
    );
  const meta = a.narrative_meta || {};
  return (
    <p class="muted" data-testid="narrative-fallback">
      No narrative: {meta.reason || meta.error || meta.status || "no LLM is configured"} — the deterministic findings below stand alone.
    </p>
  );
}

function Objectives({ rows }) {
  if (!rows?.length) return null;
  return (
    <>
      <h2>Objectives</h2>
      <table class="grid" data-testid="objectives">
        <thead>
          <tr>
            <th>Objective</th>
            <th>Endpoint</th>
            <th class="n">Measured</th>
            <th class="n">Target</th>
            <th class="n">Baseline</th>
            <th class="n">Change</th>
            <th>Status</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr>
              <td>{r.objective}</td>
              <td>{r.endpoint || "all"}</td>
              <td class="n">{formatUnit(r.measured, r.unit)}</td>
              <td class="n">{r.target === null ? "—" : formatUnit(r.target, r.unit)}</td>
              <td class="n">{r.baseline === null || r.baseline === undefined ? "—" : formatUnit(r.baseline, r.unit)}</td>
              <td class="n">{signed(r.change)}</td>
              <td>
                <Badge value={r.status} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

const unitOf = (sli) => (sli === "error_rate" ? "ratio" : sli === "rps" ? "rps" : "ms");

export function Comparisons({ rows, title = "Against the baseline" }) {
  if (!rows?.length) return null;
  return (
    <>
      <h2>{title}</h2>
      <table class="grid" data-testid="comparisons">
        <thead>
          <tr>
            <th>Endpoint</th>
            <th>SLI</th>
            <th class="n">Baseline</th>
            <th class="n">Current</th>
            <th class="n">Change</th>
            <th class="n">99 % interval</th>
            <th class="n">p</th>
            <th class="n">Effect</th>
            <th>Verdict</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((c) => (
            <tr class={`verdict-${c.verdict}`}>
              <td>{c.endpoint === "*" ? "all" : c.endpoint}</td>
              <td>{c.sli}</td>
              <td class="n">{formatUnit(c.baseline, unitOf(c.sli))}</td>
              <td class="n">{formatUnit(c.current, unitOf(c.sli))}</td>
              <td class="n">{signed(c.change)}</td>
              <td class="n">{c.interval ? `${signed(c.interval[0])} … ${signed(c.interval[1])}` : "—"}</td>
              <td class="n">{c.p_value === null || c.p_value === undefined ? "—" : c.p_value < 0.0001 ? "<0.0001" : num(c.p_value, 4)}</td>
              <td class="n">{c.effect_size === null || c.effect_size === undefined ? "—" : num(c.effect_size, 2)}</td>
              <td title={c.method}>
                <Badge value={c.verdict} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

function Findings({ a }) {
  const [given, setGiven] = useState({});
  const [error, setError] = useState(null);
  if (!a.findings?.length) return null;
  async function feedback(rid, verdict) {
    setError(null);
    try {
      await call(`/analyses/${a.id}/recommendations/${rid}/feedback`, { method: "POST", json: { verdict } });
      setGiven((g) => ({ ...g, [rid]: verdict }));
    } catch (err) {
      setError(err);
    }
  }
  return (
    <>
      <h2>Findings</h2>
      <Problem error={error} />
      <ol class="findings" data-testid="findings">
        {a.findings.map((f) => (
          <li class={`severity-${f.severity}`} data-testid="finding">
            <div>
              <Badge value={f.severity} /> <strong>{f.kind}</strong> {f.endpoint && <code>{f.endpoint}</code>} — {f.summary}
            </div>
            {f.evidence && <pre class="evidence">{typeof f.evidence === "string" ? f.evidence : JSON.stringify(f.evidence, null, 1)}</pre>}
            {f.recommendation && (
              <div class="recommendation">
                <span>→ {f.recommendation}</span>
                {f.recommendation_id &&
                  (given[f.recommendation_id] ? (
                    <span class="given" data-testid="feedback-given">
                      {given[f.recommendation_id]}
                    </span>
                  ) : (
                    <span class="buttons">
                      <button onClick={() => feedback(f.recommendation_id, "accepted")} data-testid="accept">
                        Accept
                      </button>
                      <button onClick={() => feedback(f.recommendation_id, "rejected")} data-testid="reject">
                        Reject
                      </button>
                    </span>
                  ))}
              </div>
            )}
          </li>
        ))}
      </ol>
    </>
  );
}

function Overlay({ a }) {
  const run = useSamples(a.run_id);
  const base = a.baseline_run_id ? useSamples(a.baseline_run_id) : null;
  const [scope, setScope] = useState("*");
  const endpoints = [...new Set(run.samples.flatMap((s) => Object.keys(s.endpoints || {})))].sort();
  const mine = seriesOf(run.samples, scope);
  const theirs = base ? seriesOf(base.samples, scope) : null;
  // Both on the test's own seconds: the baseline's second n beside the run's second n.
  const length = Math.max(mine.x.length ? mine.x[mine.x.length - 1] + 1 : 0, theirs?.x.length ? theirs.x[theirs.x.length - 1] + 1 : 0);
  const x = Array.from({ length }, (_, i) => i);
  const align = (s, values) => {
    const out = new Array(length).fill(null);
    s.x.forEach((sec, i) => (out[sec] = values[i]));
    return out;
  };
  const knee = kneeSecond(a.saturation, run.samples);
  const series = [
    { label: "p50", stroke: colour(0) },
    { label: "p95", stroke: colour(1) },
    { label: "p99", stroke: colour(3) },
  ];
  const data = [x, ...mine.latency.map((v) => align(mine, v))];
  if (theirs) {
    series.push({ label: "baseline p95", stroke: "#6b7280", dash: [6, 4] });
    data.push(align(theirs, theirs.latency[1]));
  }
  return (
    <>
      <h2>Second by second{theirs ? ", against the baseline" : ""}</h2>
      <label class="scope">
        Requests:{" "}
        <select value={scope} onChange={(e) => setScope(e.target.value)} data-testid="overlay-scope">
          <option value="*">all</option>
          {endpoints.map((n) => (
            <option value={n}>{n}</option>
          ))}
        </select>
      </label>
      <Chart testid="overlay-chart" title="Latency (ms)" series={series} data={data} marks={knee === null ? [] : [{ x: knee, label: "knee", colour: "#9333ea" }]} />
      <Chart
        testid="overlay-throughput"
        title="Requests per second"
        series={[{ label: "requests/s", stroke: colour(0) }, ...(theirs ? [{ label: "baseline", stroke: "#6b7280", dash: [6, 4] }] : [])]}
        data={[x, align(mine, mine.rps), ...(theirs ? [align(theirs, theirs.rps)] : [])]}
        height={160}
      />
    </>
  );
}

function kneeSecond(saturation, samples) {
  if (!saturation?.knee_load || !samples.length) return null;
  const metric = saturation.load_metric;
  for (const s of samples) {
    const load = metric === "vus" ? s.vus : s.requests;
    if (load >= saturation.knee_load) return s.elapsed_s;
  }
  return null;
}

export function Distributions({ run, baseline, labels = ["this run", "baseline"] }) {
  const mine = useApi(`/runs/${run}/distribution`);
  const theirs = useApi(baseline ? `/runs/${baseline}/distribution` : null, undefined, [baseline]);
  const [kind, setKind] = useState("cdf");
  if (mine.error) return <Problem error={mine.error} />;
  if (!mine.data) return null;
  const base = Object.fromEntries((theirs.data?.endpoints || []).map((e) => [e.endpoint, e]));
  return (
    <>
      <h2>
        Latency distribution per endpoint{baseline ? `: ${labels[0]} against ${labels[1]}` : ""}{" "}
        <span class="switch">
          {["cdf", "density"].map((k) => (
            <button class={kind === k ? "active" : ""} onClick={() => setKind(k)} data-testid={`distribution-${k}`}>
              {k === "cdf" ? "share below" : "density"}
            </button>
          ))}
        </span>
      </h2>
      <div class="distributions" data-testid="distributions">
        {mine.data.endpoints.map((e) => (
          <DistributionChart name={e.endpoint} mine={e} theirs={base[e.endpoint]} kind={kind} labels={labels} />
        ))}
      </div>
    </>
  );
}

function DistributionChart({ name, mine, theirs, kind, labels }) {
  // On a log latency axis, from one bin layout for both runs: the share of responses at or
  // below each bound (how percentiles compare), or the share in each bin (where modes sit).
  const bounds = [...new Set([...mine.upper_ms, ...(theirs?.upper_ms || [])])].sort((p, q) => p - q);
  const shares = (d) => {
    if (!d) return null;
    const at = new Map(d.upper_ms.map((u, i) => [u, d.counts[i]]));
    let below = 0;
    return bounds.map((u) => {
      const n = at.get(u) || 0;
      below += n;
      return (kind === "cdf" ? below : n) / d.requests;
    });
  };
  const series = [{ label: labels[0], stroke: colour(1), fill: kind === "density" ? "rgba(220,38,38,0.12)" : undefined }];
  const data = [bounds, shares(mine)];
  if (theirs) {
    series.push({ label: labels[1], stroke: "#6b7280", dash: [6, 4] });
    data.push(shares(theirs));
  }
  const marks = kind === "cdf" ? [{ y: 0.95, label: "p95", colour: "#9ca3af", dash: [2, 3] }, { y: 0.99, colour: "#9ca3af", dash: [2, 3] }] : [];
  return (
    <div class="distribution">
      <Chart
        testid="distribution-chart"
        title={`${name === "*" ? "all requests" : name} (${num(mine.requests, 0)} responses)`}
        series={series}
        data={data}
        height={200}
        xLabel="ms"
        marks={marks}
        scales={{ x: { time: false, distr: 3 }, y: kind === "cdf" ? { range: [0, 1] } : {} }}
        axes={[{ label: "ms (log)" }, { label: kind === "cdf" ? "share at or below" : "share", values: (u, vals) => vals.map((v) => `${num(v * 100, 1)}%`) }]}
      />
    </div>
  );
}

function Knee({ saturation }) {
  if (!saturation?.levels?.length) return null;
  const levels = saturation.levels;
  const marks = saturation.knee_load ? [{ x: saturation.knee_load, label: `knee at ${num(saturation.knee_load)} ${saturation.load_metric}`, colour: "#9333ea" }] : [];
  return (
    <>
      <h2>Saturation</h2>
      <p class="meta" data-testid="saturation">
        Knee: {saturation.knee_load ? `${num(saturation.knee_load)} ${saturation.load_metric} (${num(saturation.knee_rps)} req/s)` : "none found"} · p95 {ms(saturation.p95_before_knee_ms)} before, {ms(saturation.p95_after_knee_ms)} after · most sustainable{" "}
        {num(saturation.max_sustainable_rps)} req/s
      </p>
      <Chart
        testid="knee-chart"
        title={`p95 by load (${saturation.load_metric})`}
        series={[
          { label: "p95 ms", stroke: colour(1) },
          { label: "req/s", stroke: colour(0), scale: "rps" },
        ]}
        scales={{ x: { time: false }, rps: {} }}
        axes={[{ label: saturation.load_metric }, { label: "ms" }, { side: 1, scale: "rps", label: "req/s", grid: { show: false } }]}
        data={[levels.map((l) => l.load), levels.map((l) => l.p95_ms), levels.map((l) => l.rps)]}
        marks={marks}
        height={200}
      />
    </>
  );
}

function ProfileTable({ profile }) {
  const sources = (profile?.sources || []).filter((s) => s.functions?.length || s.queries?.length || s.status !== "ok");
  if (!sources.length) return null;
  return (
    <>
      <h2>Profile</h2>
      {profile.hot_spots?.length > 0 && (
        <ul data-testid="hot-spots">
          {profile.hot_spots.map((h) => (
            <li>
              {typeof h === "string" ? (
                h
              ) : (
                <>
                  {h.endpoint && <code>{h.endpoint}</code>} <code>{h.function}</code> <span class="muted">{h.location}</span>
                  {h.self_share !== undefined && <> — {pct(h.self_share, 0)} of samples</>}
                  {h.sql && (
                    <>
                      {" "}
                      runs <code>{h.sql}</code>
                      {h.in_loop ? " in a loop" : ""}
                      {h.calls_per_request ? ` ${num(h.calls_per_request, 1)}× per request` : ""}
                    </>
                  )}
                </>
              )}
            </li>
          ))}
        </ul>
      )}
      {sources.map((s) => (
        <div class="profile" data-testid="profile">
          <h3>
            {s.source} <Badge value={s.status} /> {s.reason && <span class="muted">{s.reason}</span>}
          </h3>
          {s.functions?.length > 0 && (
            <table class="grid">
              <thead>
                <tr>
                  <th>Function</th>
                  <th>Where</th>
                  <th class="n">Self</th>
                  <th class="n">Total</th>
                </tr>
              </thead>
              <tbody>
                {s.functions.map((f) => (
                  <tr>
                    <td>
                      <code>{f.name}</code>
                    </td>
                    <td class="muted">{f.location}</td>
                    <td class="n">{pct(f.self_share, 1)}</td>
                    <td class="n">{pct(f.total_share, 1)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {s.queries?.length > 0 && (
            <table class="grid">
              <thead>
                <tr>
                  <th>Query</th>
                  <th class="n">Calls</th>
                  <th class="n">Total</th>
                  <th class="n">Mean</th>
                  <th class="n">Share</th>
                </tr>
              </thead>
              <tbody>
                {s.queries.map((q) => (
                  <tr>
                    <td>
                      <code>{q.query}</code>
                    </td>
                    <td class="n">{num(q.calls, 0)}</td>
                    <td class="n">{ms(q.total_ms)}</td>
                    <td class="n">{ms(q.mean_ms)}</td>
                    <td class="n">{pct(q.share, 1)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      ))}
    </>
  );
}
