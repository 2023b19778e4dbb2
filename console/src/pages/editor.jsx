// The plan editor, loaded only where it is used (it carries the YAML parser and the JSON
// Schema validator, most of the console's weight): YAML checked against the served schema as
// you type, each problem with its line.
import { Validator } from "@cfworker/json-schema";
import { useEffect, useMemo, useState } from "preact/hooks";
import { LineCounter, parseDocument, stringify } from "yaml";
import { API, call } from "../api.js";
import { Problem, nav, useRendered } from "../ui.jsx";

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
// Kept once fetched; a failure (no key yet, a 401) is not kept, so the next editor asks again.
const planSchema = () =>
  (schemaPromise ||= call("/plans/schema").catch((error) => {
    schemaPromise = null;
    throw error;
  }));

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

export function EditVersion({ plan }) {
  // The stored document is the normalised spec; edit it as YAML without its empty defaults.
  const text = useMemo(() => stringify(prune(plan.spec)), [plan.id]);
  return <PlanEditor base={{ id: plan.id, source: text }} />;
}

export function prune(value) {
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

export function YamlView({ spec }) {
  return (
    <pre class="code" data-testid="plan-spec">
      {stringify(prune(spec))}
    </pre>
  );
}

export function NewPlan() {
  useRendered("plan-editor", true);
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
