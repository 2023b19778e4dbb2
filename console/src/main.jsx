// The console: one page, routed on the path under /ui, talking to the API with the user's key.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ROOT, auth } from "./api.js";
import { match } from "./first.js";
import { Analysis } from "./pages/analysis.jsx";
import { Compare } from "./pages/compare.jsx";
import { History } from "./pages/history.jsx";
import { NewPlan, PlanPage, Plans } from "./pages/plans.jsx";
import { Run } from "./pages/run.jsx";
import { Runs } from "./pages/runs.jsx";
import { Link, nav, useApi } from "./ui.jsx";

// The routes themselves are in first.js, with each page's first requests.
const PAGES = {
  runs: () => <Runs />,
  run: (id) => <Run id={id} />,
  analysis: (id) => <Analysis id={id} />,
  compare: () => <Compare />,
  plans: () => <Plans />,
  "plan-editor": () => <NewPlan />,
  plan: (id) => <PlanPage id={id} />,
  history: (id) => <History id={id} />,
};

function route() {
  const path = location.pathname.startsWith(ROOT) ? location.pathname.slice(ROOT.length) : location.pathname;
  const page = match(path);
  if (page) return { key: location.pathname + location.search, node: PAGES[page.name](...page.args) };
  return { key: path, node: <NotFound /> };
}

function NotFound() {
  return (
    <section>
      <h1>Not found</h1>
      <p>
        Nothing at this address. <Link to="/runs">Runs</Link>
      </p>
    </section>
  );
}

function KeyEntry({ onDone }) {
  const [value, setValue] = useState(auth.get());
  return (
    <form
      class="key"
      data-testid="key-form"
      onSubmit={(e) => {
        e.preventDefault();
        auth.set(value.trim());
        onDone();
      }}
    >
      <label>
        API key{" "}
        <input type="password" autocomplete="off" value={value} onInput={(e) => setValue(e.target.value)} placeholder="pa_…" data-testid="key-input" />
      </label>
      <button type="submit">Use key</button>
      {auth.get() && (
        <button type="button" onClick={() => { auth.set(""); onDone(); }}>
          Forget key
        </button>
      )}
      <span class="muted">Kept in this browser only; sent to this service as a bearer token.</span>
    </form>
  );
}

function App() {
  const [current, setCurrent] = useState(route);
  const [asking, setAsking] = useState(false);
  const [keyed, setKeyed] = useState(0);
  const me = useApi("/whoami", undefined, [keyed]);
  useEffect(() => {
    const update = () => setCurrent(route());
    const ask = () => setAsking(true);
    nav.listeners.add(update);
    auth.listeners.add(ask);
    addEventListener("popstate", update);
    return () => {
      nav.listeners.delete(update);
      auth.listeners.delete(ask);
      removeEventListener("popstate", update);
    };
  }, []);
  const section = location.pathname.slice(ROOT.length).split("/")[1] || "runs";
  return (
    <>
      <header>
        <Link to="/runs" class="brand">
          perf-agent
        </Link>
        <nav>
          <Link to="/runs" class={section === "runs" || section === "analyses" ? "active" : ""}>
            Runs
          </Link>
          <Link to="/plans" class={section === "plans" ? "active" : ""}>
            Plans
          </Link>
          <Link to="/compare" class={section === "compare" ? "active" : ""}>
            Compare
          </Link>
          <a href="/docs">API</a>
        </nav>
        <span class="who" data-testid="whoami" title={me.data ? `scopes: ${me.data.scopes.join(", ")}` : ""}>
          {me.data ? (me.data.auth ? me.data.owner : "auth off") : me.error ? "no key" : ""}
        </span>
        <button class="link" onClick={() => setAsking(!asking)} data-testid="key-button">
          {auth.get() ? "change key" : "API key"}
        </button>
      </header>
      {asking && (
        <KeyEntry
          onDone={() => {
            setAsking(false);
            setKeyed((n) => n + 1);
            setCurrent({ ...route(), key: `${route().key}#${Date.now()}` });
          }}
        />
      )}
      <main key={current.key}>{current.node}</main>
    </>
  );
}

const root = document.getElementById("app");
root.textContent = ""; // the server's "Loading…" placeholder
render(<App />, root);
