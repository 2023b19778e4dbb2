// Small shared pieces: navigation, formatting, problem display, the "page rendered" mark.
import { useEffect, useState } from "preact/hooks";
import { ApiError, ROOT, call } from "./api.js";

export const nav = {
  listeners: new Set(),
  go(path, replace = false) {
    const url = path.startsWith(ROOT) ? path : ROOT + path;
    history[replace ? "replaceState" : "pushState"](null, "", url);
    for (const listener of this.listeners) listener();
    window.scrollTo(0, 0);
  },
};

export function Link({ to, children, ...rest }) {
  const href = ROOT + to;
  return (
    <a
      href={href}
      onClick={(e) => {
        if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
        e.preventDefault();
        nav.go(to);
      }}
      {...rest}
    >
      {children}
    </a>
  );
}

// A page calls this once its first data is on screen: the console's first-render figure
// (bench/console.py) is the time from navigation to this mark.
export function rendered(page) {
  if (document.body.dataset.rendered === page) return;
  document.body.dataset.rendered = page;
  performance.mark(`rendered:${page}`);
}

export function useApi(path, options, deps) {
  const [state, setState] = useState({ loading: true, data: null, error: null });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (path === null) return;
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    call(path, options)
      .then((data) => live && setState({ loading: false, data, error: null }))
      .catch((error) => live && setState({ loading: false, data: null, error }));
    return () => {
      live = false;
    };
  }, [...(deps || [path]), tick]);
  return { ...state, reload: () => setTick((t) => t + 1) };
}

export function Problem({ error }) {
  if (!error) return null;
  const api = error instanceof ApiError;
  return (
    <div class="problem" role="alert" data-testid="problem">
      <strong>{api ? error.title : "Error"}</strong>
      {api && <code class="code">{error.code}</code>}
      <div>{error.message}</div>
      {api && error.problem?.errors && (
        <ul>
          {error.problem.errors.slice(0, 10).map((e) => (
            <li>
              <code>{(e.loc || []).join(".")}</code> {e.msg}
              {e.suggestion && <em> — did you mean {e.suggestion}?</em>}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

export const Loading = () => <p class="loading">Loading…</p>;

export const num = (v, digits = 1) =>
  v === null || v === undefined || Number.isNaN(v) ? "—" : Number(v).toLocaleString("en", { maximumFractionDigits: digits });
export const ms = (v) => (v === null || v === undefined ? "—" : `${num(v, v < 10 ? 2 : 1)} ms`);
export const pct = (v, digits = 2) => (v === null || v === undefined ? "—" : `${num(v * 100, digits)} %`);
export const signed = (v) => (v === null || v === undefined ? "—" : `${v > 0 ? "+" : ""}${num(v * 100, 1)} %`);
export const when = (iso) => (iso ? new Date(iso).toLocaleString("en-GB", { dateStyle: "short", timeStyle: "medium" }) : "—");
export const short = (id) => (id ? String(id).slice(0, 8) : "—");

export const Badge = ({ value, testid }) =>
  value ? (
    <span class={`badge badge-${value}`} data-testid={testid}>
      {value}
    </span>
  ) : (
    <span class="muted">—</span>
  );

export function formatUnit(value, unit) {
  if (unit === "ms") return ms(value);
  if (unit === "ratio" || unit === "fraction" || unit === "%") return pct(value);
  if (unit === "req/s" || unit === "rps") return `${num(value)} req/s`;
  return num(value, 3);
}
