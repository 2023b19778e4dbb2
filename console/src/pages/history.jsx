// A plan's history: an SLI per endpoint over its runs, the change points found in it dated and
// marked, and the promoted baseline.
import { useEffect, useState } from "preact/hooks";
import { Chart, colour } from "../chart.jsx";
import { DEFAULT_SLI } from "../first.js";
import { Link, Loading, Problem, num, useRendered, short, signed, useApi, when } from "../ui.jsx";

const SLIS = ["p50", "p90", "p95", "p99", "avg", "max", "error_rate", "rps"];

export function History({ id }) {
  const plan = useApi(`/plans/${id}`);
  const [sli, setSli] = useState(DEFAULT_SLI);
  // One SLI at a time: the whole history of every SLI is ~8× the bytes.
  const history = useApi(`/plans/${id}/history`, { query: { sli } }, [id, sli]);
  const baselines = useApi("/baselines", { query: { plan_id: id } });
  const [hidden, setHidden] = useState([]);
  useRendered("history", Boolean(history.data || history.error));
  if (history.error) return <Problem error={history.error} />;
  if (!history.data) return <Loading />;
  const doc = history.data;
  const chosen = doc.series.filter((s) => s.sli === sli);
  const points = doc.series.reduce((n, s) => n + s.points.length, 0);
  const endpoints = chosen.map((s) => s.endpoint);
  const shown = chosen.filter((s) => !hidden.includes(s.endpoint));
  // One x axis (unix seconds) across endpoints: each run's time.
  const times = [...new Set(shown.flatMap((s) => s.points.map((p) => Date.parse(p.at) / 1000)))].sort((p, q) => p - q);
  const index = new Map(times.map((t, i) => [t, i]));
  const data = [times, ...shown.map((s) => {
    const out = new Array(times.length).fill(null);
    for (const p of s.points) out[index.get(Date.parse(p.at) / 1000)] = p.value;
    return out;
  })];
  const changes = (doc.changes || []).filter((c) => c.sli === sli && !hidden.includes(c.endpoint));
  const promoted = (baselines.data || []).map((b) => b.run_id);
  const promotedAt = shown.flatMap((s) => s.points.filter((p) => promoted.includes(p.run_id)).map((p) => Date.parse(p.at) / 1000));
  const marks = [
    ...changes.map((c) => ({ x: Date.parse(c.at) / 1000, label: `${c.endpoint === "*" ? "all" : c.endpoint} ${signed(c.change)}`, colour: "#dc2626" })),
    ...[...new Set(promotedAt)].map((x) => ({ x, label: "baseline", colour: "#16a34a", dash: [2, 2] })),
  ];
  const unit = chosen[0]?.unit || "";
  return (
    <section>
      <h1>History of {plan.data ? <Link to={`/plans/${id}`}>{plan.data.name}</Link> : short(id)}</h1>
      <p class="meta">
        Environment {doc.environment} · {points} points of {sli}
        {doc.next && <> · older history exists</>}
      </p>
      <div class="bar">
        <label>
          SLI{" "}
          <select value={sli} onChange={(e) => setSli(e.target.value)} data-testid="history-sli">
            {SLIS.map((s) => (
              <option value={s}>{s}</option>
            ))}
          </select>
        </label>
        <fieldset class="toggles">
          {endpoints.map((n, i) => (
            <label>
              <input type="checkbox" checked={!hidden.includes(n)} onChange={(e) => setHidden(e.target.checked ? hidden.filter((h) => h !== n) : [...hidden, n])} />
              <span style={{ color: colour(i) }}>{n === "*" ? "all requests" : n}</span>
            </label>
          ))}
        </fieldset>
      </div>
      {times.length === 0 ? (
        <p class="muted" data-testid="history-empty">
          No history yet: each analysed run adds a point.
        </p>
      ) : (
        <Chart
          testid="history-chart"
          title={`${sli} (${unit}) per run`}
          scales={{ x: { time: true } }}
          axes={[{}, { label: unit }]}
          series={shown.map((s) => ({ label: s.endpoint === "*" ? "all" : s.endpoint, stroke: colour(endpoints.indexOf(s.endpoint)), points: { show: true } }))}
          data={data}
          marks={marks}
          height={280}
          xLabel="run at"
        />
      )}
      <h2>Change points</h2>
      {changes.length === 0 ? (
        <p class="muted" data-testid="no-changes">
          No lasting shift in this SLI.
        </p>
      ) : (
        <table class="grid" data-testid="changes">
          <thead>
            <tr>
              <th>When</th>
              <th>Endpoint</th>
              <th class="n">Before</th>
              <th class="n">After</th>
              <th class="n">Change</th>
              <th class="n">Runs before / after</th>
            </tr>
          </thead>
          <tbody>
            {changes.map((c) => (
              <tr>
                <td>{when(c.at)}</td>
                <td>{c.endpoint === "*" ? "all" : c.endpoint}</td>
                <td class="n">{num(c.before, 2)}</td>
                <td class="n">{num(c.after, 2)}</td>
                <td class="n">{signed(c.change)}</td>
                <td class="n">
                  {c.points_before} / {c.points_after}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h2>Baselines</h2>
      {(baselines.data || []).length === 0 ? (
        <p class="muted">None promoted.</p>
      ) : (
        <ul data-testid="baselines">
          {baselines.data.map((b) => (
            <li>
              <Link to={`/runs/${b.run_id}`}>{short(b.run_id)}</Link> · {b.environment} · {when(b.created_at)} {b.note && <>— {b.note}</>}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
