// The console's only way to the service: the same HTTP API and keys as every other client.
// Problems (RFC 9457) become ApiError with their title, detail and machine-readable code.
import { KEY_STORAGE, address } from "./first.js";

const body = document.body.dataset;
export const API = body.api || "/api/agents/performance-agent";
export const ROOT = body.root || "/ui";

// A GET the boot script already sent (boot.js) is taken from it, once; any other goes out now.
function send(url, init) {
  const early = window.__perfAgentEarly;
  const sent = init.method === "GET" && !init.headers["Last-Event-ID"] && early?.get(url);
  if (!sent) return fetch(url, init);
  early.delete(url);
  init.signal?.addEventListener("abort", () => sent.controller.abort());
  return sent.response;
}

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || `http.${status}`;
    this.title = problem.title || `HTTP ${status}`;
    this.problem = problem;
  }
}

export const auth = {
  get: () => localStorage.getItem(KEY_STORAGE) || "",
  set: (key) => (key ? localStorage.setItem(KEY_STORAGE, key) : localStorage.removeItem(KEY_STORAGE)),
  listeners: new Set(),
  needed() {
    for (const listener of this.listeners) listener();
  },
};

function headers(extra = {}) {
  const key = auth.get();
  return key ? { Authorization: `Bearer ${key}`, ...extra } : extra;
}

async function problemOf(response) {
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) {
    try {
      return await response.json();
    } catch {
      /* not JSON after all */
    }
  }
  return { title: response.statusText, detail: (await response.text()).slice(0, 500) };
}

export async function call(path, { method = "GET", json, text, type, query, signal } = {}) {
  const url = address(API, path, query);
  const init = { method, headers: headers(), signal };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (text !== undefined) {
    init.body = text;
    init.headers["Content-Type"] = type || "text/plain";
  }
  const response = await send(url, init);
  if (!response.ok) {
    const problem = await problemOf(response);
    if (response.status === 401) auth.needed();
    throw new ApiError(response.status, problem);
  }
  if (response.status === 204) return null;
  const kind = response.headers.get("content-type") || "";
  return kind.includes("json") ? response.json() : response.text();
}

// Server-sent events over fetch, so the API key travels in a header (EventSource cannot send
// one). Reconnects with Last-Event-ID after a drop, so no second is lost or shown twice.
export function stream(path, { onEvent, onState }) {
  let stopped = false;
  let last = null;
  let controller = null;
  let retryMs = 1000;
  async function connect() {
    while (!stopped) {
      controller = new AbortController();
      try {
        const extra = last ? { "Last-Event-ID": last } : {};
        const init = { method: "GET", headers: headers(extra), signal: controller.signal };
        const response = await send(API + path, init);
        if (!response.ok) throw new ApiError(response.status, await problemOf(response));
        onState?.("open");
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        let ended = false;
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const frame = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            const message = { event: "message", data: "" };
            for (const line of frame.split("\n")) {
              if (line.startsWith(":")) continue;
              const at = line.indexOf(":");
              const field = at < 0 ? line : line.slice(0, at);
              const val = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
              if (field === "event") message.event = val;
              else if (field === "data") message.data += (message.data ? "\n" : "") + val;
              else if (field === "id") last = val;
              else if (field === "retry") retryMs = Number(val) || retryMs;
            }
            if (!message.data) continue;
            let data;
            try {
              data = JSON.parse(message.data);
            } catch {
              data = message.data;
            }
            onEvent(message.event, data);
            if (message.event === "end") ended = true;
          }
        }
        if (ended) {
          stopped = true;
          onState?.("ended");
          return;
        }
      } catch (error) {
        if (stopped || error.name === "AbortError") return;
        if (error instanceof ApiError && error.status < 500) {
          onState?.("failed", error);
          return;
        }
      }
      if (stopped) return;
      onState?.("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  }
  connect();
  return {
    close() {
      stopped = true;
      controller?.abort();
    },
    // For tests and the reconnect button: drop the connection as a network would.
    drop() {
      controller?.abort();
      if (!stopped) setTimeout(connect, 0);
    },
  };
}
