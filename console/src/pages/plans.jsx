// Plans: the list, one version (its document and generated script), the YAML editor checked
// against the served JSON Schema as you type, dry run, approval and new versions.
import { Validator } from "@cfworker/json-schema";
import { useEffect, useMemo, useState } from "preact/hooks";
import { LineCounter, parseDocument, stringify } from "yaml";
import { API, call } from "../api.js";
import { Badge, Link, Loading, Problem, ms, nav, rendered, short, useApi, when } from "../ui.jsx";

export function Plans() {
  const [name, setName] = useState("");
  const [cursor, setCursor] = useState("");
  const plans = useApi("/plans", { query: { name, cursor, limit: 50 } }, [name, cursor]);
  useEffect(() => {
    if (plans.data) rendered("plans");
  }, [plans.data]);
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

const STARTER = `# A plan: what to call, how hard, and what counts as good enough.
name: my-api
target:
  base_url: http://127.0.0.1:8001
  environment: staging
endpoints:
  - name: list_products
    method: GET
    path: /api/products
load:
  vus: 5
  duration: 10s
slos:
  - "p95 < 300ms"
  - "error_rate < 1%"
`;

let schemaPromise = null;
const planSchema = () => (schemaPromise ||= call("/plans/schema"));

// Problems of a YAML text against the plan schema, each with its line where one is known.
export function check(text, validator) {
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, prettyErrors: false });
  const problems = doc.errors.map((e) => ({ line: e.linePos?.[0]?.line ?? counter.linePos(e.pos[0]).line, message: e.message.split("\n")[0], kind: "yaml" }));
  if (problems.length || !validator) return { problems, value: null };
  const value = doc.toJS();
  if (value === null || typeof value !== "object") return { problems: [{ line: 1, message: "a plan is a mapping (name:, target:, …)", kind: "schema" }], value };
  const result = validator.validate(value);
  if (result.valid) return { problems, value };
  const seen = new Set();
  for (const error of result.errors) {
    // The innermost errors say what is wrong; the $ref/properties/anyOf wrappers repeat them.
    if (["$ref", "properties", "allOf", "items", "additionalProperties", "$defs", "anyOf", "oneOf"].includes(error.keyword) && result.errors.length > 1) continue;
    const path = error.instanceLocation.replace(/^#\/?/, "").split("/").filter(Boolean).map((p) => (/^\d+$/.test(p) ? Number(p) : decodeURIComponent(p)));
    const key = `${path.join(".")}:${error.error}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const node = path.length ? doc.getIn(path, true) : doc.contents;
    const line = node?.range ? counter.linePos(node.range[0]).line : 1;
    problems.push({ line, path: path.join(".") || "(document)", message: error.error, kind: "schema" });
    if (problems.length >= 12) break;
  }
  return { problems, value };
}

export function PlanEditor({ base }) {
  const [text, setText] = useState(base?.source || STARTER);
  const [validator, setValidator] = useState(null);
  const [schemaError, setSchemaError] = useState(null);
  const [error, setError] = useState(null);
  const [saving, setSaving] = useState(false);
  useEffect(() => {
    planSchema()
      .then((schema) => setValidator(new Validator(schema, "2020-12", false)))
      .catch(setSchemaError);
    if (!base) rendered("plan-editor");
  }, []);
  const { problems } = useMemo(() => check(text, validator), [text, validator]);

  async function save() {
    setSaving(true);
    setError(null);
    try {
      const path = base ? `/plans/${base.id}/versions` : "/plan";
      const plan = await call(path, { method: "POST", text, type: "application/yaml" });
      nav.go(`/plans/${plan.id}`);
    } catch (err) {
      setError(err);
    } finally {
      setSaving(false);
    }
  }
  return (
    <div class="editor">
      <div class="editor-status" data-testid="editor-status">
        {!validator && !schemaError && "Loading the plan schema…"}
        {schemaError && <Problem error={schemaError} />}
        {validator && (problems.length ? `${problems.length} problem${problems.length > 1 ? "s" : ""}` : "Valid against the plan schema")}
      </div>
      <textarea
        spellcheck={false}
        value={text}
        onInput={(e) => setText(e.target.value)}
        rows={Math.max(18, text.split("\n").length + 2)}
        data-testid="plan-yaml"
        aria-label="Plan (YAML)"
      />
      {problems.length > 0 && (
        <ul class="problems" data-testid="editor-problems">
          {problems.map((p) => (
            <li>
              line {p.line}
              {p.path && (
                <>
                  {" "}
                  <code>{p.path}</code>
                </>
              )}
              : {p.message}
            </li>
          ))}
        </ul>
      )}
      <Problem error={error} />
      <button onClick={save} disabled={saving || problems.length > 0 || !validator} data-testid="save-plan">
        {base ? "Save as a new version" : "Create plan"}
      </button>
    </div>
  );
}

export function PlanPage({ id }) {
  const plan = useApi(`/plans/${id}`);
  const versions = useApi(`/plans/${id}/versions`);
  const [tab, setTab] = useState("plan");
  const [dry, setDry] = useState(null);
  const [busy, setBusy] = useState("");
  const [error, setError] = useState(null);
  useEffect(() => {
    if (plan.data) rendered("plan");
  }, [plan.data]);
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
      {tab === "plan" && (
        <pre class="code" data-testid="plan-spec">
          {stringify(prune(p.spec))}
        </pre>
      )}
      {tab === "script" && <Script id={id} />}
      {tab === "edit" && <EditVersion plan={p} />}
    </section>
  );
}

function EditVersion({ plan }) {
  // The stored document is the normalised spec; edit it as YAML without its empty defaults.
  const text = useMemo(() => stringify(prune(plan.spec)), [plan.id]);
  return <PlanEditor base={{ id: plan.id, source: text }} />;
}

function prune(value) {
  if (Array.isArray(value)) return value.map(prune);
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      const kept = prune(v);
      if (kept === null || kept === undefined) continue;
      if (Array.isArray(kept) && kept.length === 0) continue;
      if (typeof kept === "object" && !Array.isArray(kept) && Object.keys(kept).length === 0) continue;
      out[k] = kept;
    }
    return out;
  }
  return value;
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

export function NewPlan() {
  useEffect(() => rendered("plan-editor"), []);
  return (
    <section>
      <h1>New plan</h1>
      <p class="meta">
        YAML, checked against the plan schema (<a href={`${API}/plans/schema`}>JSON Schema</a>) as you type. Saved as a draft: dry-run it, then approve it.
      </p>
      <PlanEditor />
    </section>
  );
}
