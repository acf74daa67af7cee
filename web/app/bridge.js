// The app page inside a frame (`?embed`): it answers the page around it (embed.js:
// createAgent and <py-agent-chat>) over postMessage.
//
//   frame  → host  {pyAgent: "loaded"}                       (to any origin: carries nothing)
//   host   → frame {pyAgent: "hello"}                        the host's origin is checked, then kept
//   frame  → host  {pyAgent: "hello", app}                   app.json: title, suggestions, ...
//   host   → frame {pyAgent: "call", id, method, args}       send, abort, stop, decide, undo, configure,
//                                                            query, exportDb, reset, newConversation, start, theme
//   frame  → host  {pyAgent: "result", id, ok, value | error}
//   frame  → host  {pyAgent: "event", event}                 every event of the page's AgentClient
//
// Which pages may talk to the app: its own origin, and those the build allows
// (`py-agent build --embed-origin`, in app.json's `embed_origins`; "*" for any). The same list
// is the page's `frame-ancestors`. A page of another site that frames the app gets the
// browser's partitioned storage for it, never the data of the app's own visitors.

const THEME_VARS = new Set(["bg", "panel", "ink", "muted", "line", "line-strong", "accent", "accent-ink", "accent-soft", "radius", "font", "code-bg"]);

/**
 * Start answering the host page. `api` is the page's window.pyAgent; `start()` boots the agent
 * (for a lazy frame); `app` is app.json.
 */
export function startBridge({ api, app, start }) {
  if (window.parent === window) return;
  const allowed = new Set([location.origin, ...(app?.embed_origins || [])]);
  let host = null; // the host page's origin, once it said hello

  const post = (message) => host && window.parent.postMessage({ pyAgent: message.type, ...message.body }, host);
  const methods = {
    send: (text) => api.send(text),
    abort: () => api.abort(),
    stop: () => api.stop(),
    decide: (approved, options) => api.decide(approved, options),
    undo: (point) => api.undo(point),
    configure: (values) => api.configure(values),
    query: (sql, params) => api.db.query(sql, params),
    exportDb: () => api.exportDb(),
    reset: () => api.reset(),
    newConversation: () => api.newConversation(),
    history: () => api.history(),
    start: () => start(),
    ready: () => api.ready.then(() => true),
    theme: (vars) => applyTheme(vars),
  };

  window.addEventListener("message", async (event) => {
    if (event.source !== window.parent || !event.data || typeof event.data.pyAgent !== "string") return;
    if (!allowed.has("*") && !allowed.has(event.origin)) {
      console.warn(`py-agent: a page at ${event.origin} tried to use this app; only ${[...allowed].join(", ")} may (py-agent build --embed-origin)`);
      return;
    }
    const data = event.data;
    if (data.pyAgent === "hello") {
      host = event.origin;
      return post({ type: "hello", body: { app } });
    }
    if (data.pyAgent !== "call" || event.origin !== host) return;
    const method = methods[data.method];
    try {
      if (!method) throw new Error(`unknown method ${data.method}`);
      const value = await method(...(Array.isArray(data.args) ? data.args : []));
      post({ type: "result", body: { id: data.id, ok: true, value: cloneable(value) } });
    } catch (error) {
      post({ type: "result", body: { id: data.id, ok: false, error: String(error?.message || error) } });
    }
  });
  api.on("*", (event) => post({ type: "event", body: { event: cloneable(event) } }));
  window.parent.postMessage({ pyAgent: "loaded" }, "*");
}

/** Values that cross postMessage: plain data (structured clone), never functions or DOM nodes. */
function cloneable(value) {
  if (value === undefined || value === null || typeof value !== "object") return value;
  if (ArrayBuffer.isView(value)) return value;
  try {
    return structuredClone(value);
  } catch {
    return JSON.parse(JSON.stringify(value));
  }
}

/** The host's theme: `{name: value}` for the page's own custom properties (a fixed list). */
export function applyTheme(vars) {
  const root = document.documentElement;
  for (const [name, value] of Object.entries(vars || {})) {
    if (THEME_VARS.has(name) && typeof value === "string" && value.length < 200) root.style.setProperty(`--${name}`, value.trim());
  }
  return true;
}
