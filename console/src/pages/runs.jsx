import { useEffect, useState } from "preact/hooks";
import { call } from "../api.js";
import { PLANS_FOR_RUNS, runFilters, runsQuery } from "../first.js";
import { Badge, Link, Loading, Problem, ms, nav, num, pct, useRendered, short, useApi, when } from "../ui.jsx";

const STATES = ["", "queued", "running", "succeeded", "failed", "aborted", "timed_out", "partial"];

export function Runs() {
  const [filters, setFilters] = useState(() => runFilters(location.search));
  const [trail, setTrail] = useState([]); // cursors of the pages before this one
  const query = runsQuery(filters);
  const runs = useApi("/runs", { query }, [JSON.stringify(query)]);
  const plans = useApi("/plans", { query: PLANS_FOR_RUNS });
  const [error, setError] = useState(null);
  const [starting, setStarting] = useState("");

  useRendered("runs", Boolean(runs.data));

  useEffect(() => {
    // Live states change on their own: look again every few seconds while any is live.
    const live = runs.data?.items.some((r) => !r.finished);
    if (!live) return;
    const timer = setTimeout(runs.reload, 3000);
    return () => clearTimeout(timer);
  }, [runs.data]);

  function update(change) {
    const next = { ...filters, ...change };
    if (!("cursor" in change)) next.cursor = "";
    setFilters(next);
    const q = new URLSearchParams(Object.entries(next).filter(([, v]) => v));
    history.replaceState(null, "", `${location.pathname}${q.toString() ? "?" + q : ""}`);
  }

  async function start(e) {
    e.preventDefault();
    if (!starting) return;
    setError(null);
    try {
      const run = await call("/execute", { method: "POST", json: { plan_id: starting } });
      nav.go(`/runs/${run.id}`);
    } catch (err) {
      setError(err);
    }
  }

  const approved = (plans.data?.items || []).filter((p) => p.status === "approved");
  const planName = Object.fromEntries((plans.data?.items || []).map((p) => [p.id, `${p.name} v${p.version}`]));
  const nextCursor = runs.data?.next ? new URL(runs.data.next, location.origin).searchParams.get("cursor") : null;

  return (
    <section>
      <h1>Runs</h1>
      <form class="bar" onSubmit={start} data-testid="start-run">
        <label>
          Start a run of
          <select value={starting} onChange={(e) => setStarting(e.target.value)} data-testid="start-plan">
            <option value="">an approved plan…</option>
            {approved.map((p) => (
              <option value={p.id}>
                {p.name} v{p.version}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" disabled={!starting} data-testid="start-button">
          Start
        </button>
      </form>
      <Problem error={error} />
      <form class="filters" onSubmit={(e) => e.preventDefault()} data-testid="filters">
        <label>
          Plan
          <select value={filters.plan_id} onChange={(e) => update({ plan_id: e.target.value })} data-testid="filter-plan">
            <option value="">any</option>
            {(plans.data?.items || []).map((p) => (
              <option value={p.id}>
                {p.name} v{p.version}
              </option>
            ))}
          </select>
        </label>
        <label>
          Environment
          <input value={filters.environment} placeholder="any" onChange={(e) => update({ environment: e.target.value })} />
        </label>
        <label>
          State
          <select value={filters.status} onChange={(e) => update({ status: e.target.value })} data-testid="filter-status">
            {STATES.map((s) => (
              <option value={s}>{s || "any"}</option>
            ))}
          </select>
        </label>
        <label>
          From
          <input type="datetime-local" value={filters.since} onChange={(e) => update({ since: e.target.value })} />
        </label>
        <label>
          Until
          <input type="datetime-local" value={filters.until} onChange={(e) => update({ until: e.target.value })} />
        </label>
      </form>
      <Problem error={runs.error} />
      {!runs.data && runs.loading && <Loading />}
      {runs.data && (
        <>
          <table class="grid" data-testid="runs-table">
            <thead>
              <tr>
                <th>Run</th>
                <th>Plan</th>
                <th>State</th>
                <th>Verdict</th>
                <th class="n">Requests</th>
                <th class="n">RPS</th>
                <th class="n">p95</th>
                <th class="n">Errors</th>
                <th>Queued</th>
                <th>Compare</th>
              </tr>
            </thead>
            <tbody>
              {runs.data.items.map((r) => (
                <tr data-testid="run-row" data-run={r.id}>
                  <td>
                    <Link to={`/runs/${r.id}`}>{short(r.id)}</Link>
                  </td>
                  <td>{planName[r.plan_id] || <span class="muted">{short(r.plan_id)} v{r.plan_version}</span>}</td>
                  <td>
                    <Badge value={r.status} />
                  </td>
                  <td>
                    <Badge value={r.verdict} />
                  </td>
                  <td class="n">{num(r.requests, 0)}</td>
                  <td class="n">{num(r.rps)}</td>
                  <td class="n">{ms(r.p95_ms)}</td>
                  <td class="n">{pct(r.error_rate)}</td>
                  <td>{when(r.created_at)}</td>
                  <td>
                    <input
                      type="checkbox"
                      aria-label={`compare ${short(r.id)}`}
                      data-testid="compare-pick"
                      onChange={(e) => compare.pick(r, e.target.checked)}
                    />
                  </td>
                </tr>
              ))}
              {runs.data.items.length === 0 && (
                <tr>
                  <td colSpan={10} class="muted">
                    No runs match.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
          <div class="bar">
            <button disabled={!trail.length} onClick={() => { const t = [...trail]; const c = t.pop(); setTrail(t); update({ cursor: c || "" }); }}>
              ← Newer
            </button>
            <button disabled={!nextCursor} data-testid="older" onClick={() => { setTrail([...trail, filters.cursor]); update({ cursor: nextCursor }); }}>
              Older →
            </button>
            <CompareButton />
          </div>
        </>
      )}
    </section>
  );
}

// Two ticked runs of one plan open the comparison.
const compare = {
  picked: new Map(),
  listeners: new Set(),
  pick(run, on) {
    if (on) this.picked.set(run.id, run);
    else this.picked.delete(run.id);
    for (const l of this.listeners) l();
  },
};

function CompareButton() {
  const [, force] = useState(0);
  useEffect(() => {
    const l = () => force((n) => n + 1);
    compare.listeners.add(l);
    return () => compare.listeners.delete(l);
  }, []);
  const runs = [...compare.picked.values()];
  const ok = runs.length === 2 && runs[0].plan_id === runs[1].plan_id;
  const [b, a] = runs.sort((x, y) => (x.created_at < y.created_at ? 1 : -1));
  return (
    <button disabled={!ok} data-testid="compare-button" title="Tick two runs of the same plan" onClick={() => nav.go(`/compare?a=${a.id}&b=${b.id}`)}>
      Compare {runs.length}/2
    </button>
  );
}
