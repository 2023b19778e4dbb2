// Plans: the list, one version (its document and generated script), the YAML editor checked
// against the served JSON Schema as you type, dry run, approval and new versions.
import { useEffect, useState } from "preact/hooks";
import { API, call } from "../api.js";
import { PLANS_PAGE } from "../first.js";
import { Badge, Link, Loading, Problem, ms, nav, useApi, useModule, useRendered, when } from "../ui.jsx";

export const loadEditor = () => import("./editor.jsx");

export function NewPlan() {
  const editor = useModule(loadEditor);
  return editor ? <editor.NewPlan /> : <Loading />;
}

export function Plans() {
  const [name, setName] = useState("");
  const [cursor, setCursor] = useState("");
  const plans = useApi("/plans", { query: { name, cursor, limit: PLANS_PAGE } }, [name, cursor]);
  useRendered("plans", Boolean(plans.data));
  const next = plans.data?.next ? new URL(plans.data.next, location.origin).searchParams.get("cursor") : null;
  return (
    <section>
      <h1>Plans</h1>
      <div class="bar">
        <Link to="/plans/new" class="button" data-testid="new-plan">
          New plan
        </Link>
        <input placeholder="name" value={name} onChange={(e) => { setName(e.target.value); setCursor(""); }} />
      </div>
      <Problem error={plans.error} />
      {!plans.data && <Loading />}
      {plans.data && (
        <table class="grid" data-testid="plans-table">
          <thead>
            <tr>
              <th>Name</th>
              <th>Version</th>
              <th>Status</th>
              <th>Reviewed by</th>
              <th>Created</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {plans.data.items.map((p) => (
              <tr data-testid="plan-row">
                <td>
                  <Link to={`/plans/${p.id}`}>{p.name}</Link>
                </td>
                <td>v{p.version}</td>
                <td>
                  <Badge value={p.status} />
                </td>
                <td>{p.reviewed_by || "—"}</td>
                <td>{when(p.created_at)}</td>
                <td>
                  <Link to={`/plans/${p.id}/history`}>history</Link> · <Link to={`/runs?plan_id=${p.id}`}>runs</Link>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {next && <button onClick={() => setCursor(next)}>Older →</button>}
    </section>
  );
}

export function PlanPage({ id }) {
  const plan = useApi(`/plans/${id}`);
  const versions = useApi(`/plans/${id}/versions`);
  const [tab, setTab] = useState("plan");
  const [dry, setDry] = useState(null);
  const [busy, setBusy] = useState("");
  const [error, setError] = useState(null);
  const editor = useModule(loadEditor);
  useRendered("plan", Boolean(plan.data));
  if (plan.error) return <Problem error={plan.error} />;
  if (!plan.data) return <Loading />;
  const p = plan.data;
  async function act(what, fn) {
    setBusy(what);
    setError(null);
    try {
      await fn();
    } catch (err) {
      setError(err);
    } finally {
      setBusy("");
    }
  }
  const dryRun = () => act("dry", async () => setDry(await call(`/plans/${id}/dry-run`, { method: "POST" })));
  const approve = () =>
    act("approve", async () => {
      await call(`/plans/${id}/review`, { method: "POST", json: { action: "approve" } });
      plan.reload();
    });
  const execute = () =>
    act("run", async () => {
      const run = await call("/execute", { method: "POST", json: { plan_id: id } });
      nav.go(`/runs/${run.id}`);
    });
  return (
    <section>
      <h1>
        {p.name} v{p.version} <Badge value={p.status} testid="plan-status" />
      </h1>
      <p class="meta">
        {when(p.created_at)}
        {p.reviewed_by && (
          <>
            {" "}
            · {p.status === "approved" ? "approved" : "reviewed"} by <strong data-testid="reviewed-by">{p.reviewed_by}</strong> {when(p.reviewed_at)}
          </>
        )}{" "}
        · <Link to={`/plans/${id}/history`}>history</Link> · <Link to={`/runs?plan_id=${id}`}>runs</Link>
      </p>
      <div class="bar">
        <button onClick={dryRun} disabled={!!busy} data-testid="dry-run">
          {busy === "dry" ? "Dry run…" : "Dry run"}
        </button>
        {p.status === "draft" && (
          <button onClick={approve} disabled={!!busy} data-testid="approve">
            Approve
          </button>
        )}
        {p.status === "approved" && (
          <button onClick={execute} disabled={!!busy} data-testid="run-plan">
            Run
          </button>
        )}
        {(versions.data?.items || []).length > 1 && (
          <select onChange={(e) => nav.go(`/plans/${e.target.value}`)} value={id} data-testid="versions">
            {versions.data.items.map((v) => (
              <option value={v.id}>
                v{v.version} ({v.status})
              </option>
            ))}
          </select>
        )}
      </div>
      <Problem error={error} />
      {dry && <DryRun result={dry} />}
      <nav class="tabs">
        {["plan", "script", "edit"].map((t) => (
          <button class={tab === t ? "active" : ""} onClick={() => setTab(t)} data-testid={`tab-${t}`}>
            {t === "plan" ? "Plan" : t === "script" ? "k6 script" : "New version"}
          </button>
        ))}
      </nav>
      {tab === "plan" && (editor ? <editor.YamlView spec={p.spec} /> : <pre class="code">{JSON.stringify(p.spec, null, 2)}</pre>)}
      {tab === "script" && <Script id={id} />}
      {tab === "edit" && (editor ? <editor.EditVersion plan={p} /> : <Loading />)}
    </section>
  );
}

function Script({ id }) {
  const script = useApi(`/plans/${id}/script`);
  if (script.error) return <Problem error={script.error} />;
  if (!script.data) return <Loading />;
  return (
    <>
      <p class="meta">
        <a href={`${API}/plans/${id}/script`} download="script.js">
          download
        </a>
      </p>
      <pre class="code" data-testid="plan-script">{typeof script.data === "string" ? script.data : script.data.script}</pre>
    </>
  );
}

function DryRun({ result }) {
  return (
    <div class={`dry ${result.ok ? "ok" : "bad"}`} data-testid="dry-run-result">
      <strong>{result.ok ? "Dry run passed" : "Dry run failed"}</strong> (k6 exit {result.exit_code}){result.error && <> — {result.error}</>}
      <table class="grid">
        <thead>
          <tr>
            <th>Step</th>
            <th>Method</th>
            <th class="n">Status</th>
            <th class="n">Time</th>
            <th>OK</th>
          </tr>
        </thead>
        <tbody>
          {result.steps.map((s) => (
            <tr data-testid="dry-step">
              <td>{s.name}</td>
              <td>{s.method}</td>
              <td class="n">{s.status}</td>
              <td class="n">{ms(s.duration_ms)}</td>
              <td>{s.expected ? "✓" : `✗${s.error_code ? ` (${s.error_code})` : ""}`}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {result.checks.length > 0 && (
        <ul>
          {result.checks.map((c) => (
            <li>
              {c.passed ? "✓" : "✗"} {c.group ? `${c.group} › ` : ""}
              {c.name}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

