// Inlined in the console's HTML, run while the page is parsed: sends the page's first API
// requests (first.js) at once, so they travel while the console's module loads and compiles
// instead of after it. api.js takes each response from window.__perfAgentEarly the first time
// the page asks for that address; whatever no page took is cancelled after a while.
import { KEY_STORAGE, address, firstRequests } from "./first.js";

(() => {
  const { api, root } = document.currentScript.dataset;
  let key = "";
  try {
    key = localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    /* storage refused: the requests go without a key, as api.js's would */
  }
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  const path = location.pathname.startsWith(root) ? location.pathname.slice(root.length) : location.pathname;
  const early = new Map();
  for (const [where, query] of firstRequests(path, location.search)) {
    const url = address(api, where, query);
    const controller = new AbortController();
    const response = fetch(url, { headers, signal: controller.signal });
    response.catch(() => {}); // a failure is the taker's to report, not an unhandled rejection
    early.set(url, { response, controller });
  }
  window.__perfAgentEarly = early;
  setTimeout(() => {
    for (const { controller } of early.values()) controller.abort();
    early.clear();
  }, 20000);
})();
