// Small shared pieces: navigation, formatting, problem display, the "page rendered" mark.
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
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
// A module loaded on first use (esbuild splits it into its own file), once per page load.
const modules = new Map();
export function useModule(load) {
  const [module, setModule] = useState(modules.get(load) || null);
  useEffect(() => {
    if (module) return;
    load().then((m) => {
      modules.set(load, m);
      setModule(m);
    });
  }, []);
  return module;
}

export function useRendered(page, ready) {
  // Layout effect: right after the DOM holds the data, not after a later paint.
  useLayoutEffect(() => {
    if (ready) rendered(page);
  }, [ready]);
}

export function rendered(page) {
  if (document.body.dataset.rendered === page) return;
  document.body.dataset.rendered = page;
  performance.mark(`rendered:${page}`);
}

// Fetches start while the component renders, not in an effect after the next paint: a
// page's data is on its way before its first frame (the console's first render, issue 15).
export function useApi(path, options, deps) {
  const [tick, setTick] = useState(0);
  const [, force] = useState(0);
  const state = useRef({ key: null, loading: true, data: null, error: null });
  const key = JSON.stringify([path, ...(deps || [path]), tick]);
  if (path !== null && state.current.key !== key) {
    const previous = state.current;
    const current = { key, loading: true, data: previous.data, error: null };
    state.current = current;
    call(path, options)
      .then((data) => Object.assign(current, { loading: false, data, error: null }))
      .catch((error) => Object.assign(current, { loading: false, data: null, error }))
      .then(() => state.current === current && !current.gone && force((n) => n + 1));
  }
  useEffect(() => () => (state.current.gone = true), []);
  const { loading, data, error } = state.current;
  return { loading, data, error, reload: () => setTick((t) => t + 1) };
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

// Intl formatters are costly to make (toLocaleString with options makes one per call: a page
// of 25 runs spent tens of ms there); one per precision, kept.
const formats = new Map();
function formatter(digits) {
  let f = formats.get(digits);
  if (!f) formats.set(digits, (f = new Intl.NumberFormat("en", { maximumFractionDigits: digits })));
  return f;
}
const dates = new Intl.DateTimeFormat("en-GB", { dateStyle: "short", timeStyle: "medium" });

export const num = (v, digits = 1) => (v === null || v === undefined || Number.isNaN(v) ? "—" : formatter(digits).format(Number(v)));
export const ms = (v) => (v === null || v === undefined ? "—" : `${num(v, v < 10 ? 2 : 1)} ms`);
export const pct = (v, digits = 2) => (v === null || v === undefined ? "—" : `${num(v * 100, digits)} %`);
export const signed = (v) => (v === null || v === undefined ? "—" : `${v > 0 ? "+" : ""}${num(v * 100, 1)} %`);
export const when = (iso) => (iso ? dates.format(new Date(iso)) : "—");
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
