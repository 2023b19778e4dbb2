// The console's routes and each page's first requests, known from its address alone. The boot
// script (boot.js, inlined in the HTML) sends these while the console's module is still on its
// way and being compiled; the pages ask for exactly these addresses, built here, and api.js
// hands them the responses already under way. One table, so the two cannot drift apart.

const ID = "([0-9a-f-]{36})";

// Where the console keeps the user's API key (localStorage): api.js and boot.js both read it.
export const KEY_STORAGE = "perf-agent.key";

// [pattern, page name]: main.jsx maps the names to components.
export const ROUTES = [
  [/^\/?$/, "runs"],
  [/^\/runs\/?$/, "runs"],
  [new RegExp(`^/runs/${ID}$`), "run"],
  [new RegExp(`^/analyses/${ID}$`), "analysis"],
  [/^\/compare\/?$/, "compare"],
  [/^\/plans\/?$/, "plans"],
  [/^\/plans\/new$/, "plan-editor"],
  [new RegExp(`^/plans/${ID}$`), "plan"],
  [new RegExp(`^/plans/${ID}/history$`), "history"],
];

export function match(path) {
  for (const [pattern, name] of ROUTES) {
    const m = pattern.exec(path);
    if (m) return { name, args: m.slice(1) };
  }
  return null;
}

// A path under the API with its query, empty values left out, in the order given.
export function address(api, path, query) {
  let url = path.startsWith("/") && !path.startsWith(api) ? api + path : path;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") params.set(k, v);
    const qs = params.toString();
    if (qs) url += (url.includes("?") ? "&" : "?") + qs;
  }
  return url;
}

// The run list's filters, as the address carries them.
export const RUN_FILTERS = ["plan_id", "status", "environment", "since", "until", "cursor"];
export function runFilters(search) {
  const q = new URLSearchParams(search);
  return Object.fromEntries(RUN_FILTERS.map((k) => [k, q.get(k) || ""]));
}
const isoOf = (local) => (local ? new Date(local).toISOString() : "");
export const runsQuery = (filters) => ({ ...filters, since: isoOf(filters.since), until: isoOf(filters.until), limit: 25 });

export const PLANS_FOR_RUNS = { limit: 100 };
export const PLANS_PAGE = 50;
export const DEFAULT_SLI = "p95";
export const compared = (search) => {
  const q = new URLSearchParams(search);
  return { a: q.get("a") || "", b: q.get("b") || "" };
};

// [path, query] of what each page asks for before anything has arrived (the identity in the
// header on every page). Later requests, which need a first answer, are not here.
const FIRST = {
  runs: (search) => [["/runs", runsQuery(runFilters(search))], ["/plans", PLANS_FOR_RUNS]],
  run: (search, id) => [[`/runs/${id}`], [`/runs/${id}/stream`]],
  analysis: (search, id) => [[`/analyses/${id}`]],
  compare(search) {
    const { a, b } = compared(search);
    return a && b ? [["/runs/compare", { a, b }], [`/runs/${b}`]] : [];
  },
  plans: () => [["/plans", { limit: PLANS_PAGE }]],
  "plan-editor": () => [["/plans/schema"]],
  plan: (search, id) => [[`/plans/${id}`], [`/plans/${id}/versions`]],
  history: (search, id) => [[`/plans/${id}`], [`/plans/${id}/history`, { sli: DEFAULT_SLI }], ["/baselines", { plan_id: id }]],
};

export function firstRequests(path, search) {
  const page = match(path);
  const own = page ? FIRST[page.name](search, ...page.args) : [];
  return [["/whoami"], ...own];
}
