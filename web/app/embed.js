// Embedding a py-agent site in any page: `createAgent()` and the `<py-agent-chat>` element.
//
//   <script type="module" src="https://you.example/agent/embed.js"></script>
//   <py-agent-chat src="https://you.example/agent/"></py-agent-chat>
//
//   import { createAgent } from "https://you.example/agent/embed.js";
//   const agent = await createAgent({ root: "https://you.example/agent/", model: "demo" });
//   const end = await agent.send("How many rows does each table have?");
//   const rows = await agent.db.query("SELECT count(*) AS n FROM books");
//
// Both run the site's own page (its index.html) in a frame: Python, the database and the API
// key stay in the site's origin, under the site's service worker and headers (the worker's
// network wall holds on any host), and the page around it talks to it by postMessage
// (bridge.js). The element shows that page; createAgent keeps it out of sight.
//
// This file imports nothing, so another origin can load it alone (the site's _headers give it
// Access-Control-Allow-Origin: *), or copy it next to its own pages.
//
// Theme: set these custom properties on the element (or any ancestor), e.g.
//   py-agent-chat { --py-agent-accent: #0a7; --py-agent-font: Georgia, serif; height: 40rem; }
// --py-agent-{bg, panel, ink, muted, line, line-strong, accent, accent-ink, accent-soft,
// radius, font, code-bg}. The element boots Python on the first interaction with it, or at
// once with the `eager` attribute.

const THEME = ["bg", "panel", "ink", "muted", "line", "line-strong", "accent", "accent-ink", "accent-soft", "radius", "font", "code-bg"];
const HELLO_EVERY_MS = 100;

/** The site's root URL (ending in "/") for `root`/`src`, relative to this page. */
function siteRoot(root) {
  const url = new URL(root || ".", document.baseURI);
  if (!url.pathname.endsWith("/")) url.pathname = url.pathname.replace(/[^/]*$/, "");
  url.search = "";
  url.hash = "";
  return url;
}

// The page's providers (web/app/store.js PROVIDERS).
const KNOWN_PROVIDERS = ["openai", "anthropic", "gemini", "openai-compatible"];

/** Settings for the page's `configure()` from createAgent's `model` option. */
function modelSettings(model, { baseUrl, key } = {}) {
  if (!model) return null;
  if (typeof model === "object") return { ...model };
  const text = String(model);
  if (text === "demo") return { provider: "demo" };
  const at = text.indexOf(":");
  const provider = at < 0 ? "openai-compatible" : text.slice(0, at);
  const name = at < 0 ? text : text.slice(at + 1);
  if (!KNOWN_PROVIDERS.includes(provider)) {
    // Refused here rather than ignored by the page (which would keep its old model).
    throw new Error(`py-agent: unknown provider "${provider}" in model "${text}"; use one of ${KNOWN_PROVIDERS.join(", ")}` +
      ` (a local server such as Ollama, llama.cpp, vLLM or LM Studio: "openai-compatible:${name}" with its baseUrl)`);
  }
  return { provider, model: name, ...(baseUrl ? { baseUrl } : {}), ...(key !== undefined ? { key } : {}) };
}

/** One frame of the site and the calls to it. */
class Frame {
  constructor(iframe, origin) {
    Object.assign(this, { iframe, origin });
    this.calls = new Map();
    this.next = 1;
    this.listeners = new Map();
    this.onMessage = (event) => this.receive(event);
    window.addEventListener("message", this.onMessage);
    this.connected = new Promise((resolve) => (this.connect = resolve));
    // The frame announces itself once its page runs; say hello until it answers.
    this.helloTimer = setInterval(() => this.hello(), HELLO_EVERY_MS);
  }

  hello() {
    this.iframe.contentWindow?.postMessage({ pyAgent: "hello" }, this.origin);
  }

  receive(event) {
    if (event.source !== this.iframe.contentWindow || event.origin !== this.origin || !event.data) return;
    const data = event.data;
    if (data.pyAgent === "loaded") {
      // A new page in the frame (on a host without headers the site reloads itself once, under
      // its service worker): new calls wait for its hello.
      if (this.app !== undefined) this.connected = new Promise((resolve) => (this.connect = resolve));
      return this.hello();
    }
    if (data.pyAgent === "hello") {
      clearInterval(this.helloTimer);
      const again = this.app !== undefined;
      this.app = data.app;
      this.connect(data.app);
      if (again) {
        // Calls sent to the page that went away are never answered: send them to this one.
        for (const [id, call] of this.calls) this.post(id, call);
        this.onReconnect?.();
      }
      return;
    }
    if (data.pyAgent === "result") {
      const call = this.calls.get(data.id);
      if (!call) return;
      this.calls.delete(data.id);
      return data.ok ? call.resolve(data.value) : call.reject(new Error(data.error));
    }
    if (data.pyAgent === "event" && data.event) {
      for (const type of [data.event.type, "*"]) for (const fn of this.listeners.get(type) ?? []) fn(data.event);
    }
  }

  async call(method, ...args) {
    await this.connected;
    const id = this.next++;
    return new Promise((resolve, reject) => {
      const call = { resolve, reject, method, args };
      this.calls.set(id, call);
      this.post(id, call);
    });
  }

  post(id, { method, args }) {
    this.iframe.contentWindow.postMessage({ pyAgent: "call", id, method, args }, this.origin);
  }

  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type).delete(fn);
  }

  close() {
    clearInterval(this.helloTimer);
    window.removeEventListener("message", this.onMessage);
    for (const { reject } of this.calls.values()) reject(new Error("the agent was closed"));
    this.calls.clear();
  }

  /** The agent's API over this frame (what createAgent returns and the element exposes). */
  api(extra = {}) {
    const frame = this;
    return {
      get app() {
        return frame.app;
      },
      ready: frame.call("ready"),
      send: (text) => frame.call("send", String(text)),
      abort: () => frame.call("abort"),
      stop: () => frame.call("stop"),
      decide: (approved, options = {}) => frame.call("decide", Boolean(approved), options),
      undo: (point) => frame.call("undo", point),
      configure: (values) => frame.call("configure", values),
      reset: () => frame.call("reset"),
      newConversation: () => frame.call("newConversation"),
      history: () => frame.call("history"),
      exportDb: () => frame.call("exportDb"),
      db: { query: (sql, params) => frame.call("query", sql, params) },
      on: (type, fn) => frame.on(type, fn),
      ...extra,
    };
  }
}

/**
 * The agent of the py-agent site at `root`, without its page: the site runs in a hidden frame.
 *
 * @param {object} options
 * @param {string} options.root      the site's URL (its folder)
 * @param {string|object} [options.model]  "demo", "provider:model" (e.g. "openai:gpt-4.1-mini"),
 *   or settings {provider, model, baseUrl, key}; with a string, `baseUrl` and `key` options too
 * @param {"auto"|"ask"|((event) => boolean|Promise<boolean>)} [options.approve]  save changes at once,
 *   wait for decide(), or ask this function about each step that changes data
 * @param {(event) => void} [options.onEvent]  every event (user_message, message_delta, ..., turn_end)
 * @returns {Promise<object>} {send, abort, decide, undo, db.query, close, on, configure, ready, ...}
 */
export async function createAgent({ root, model, baseUrl, key, approve, onEvent, container = document.body } = {}) {
  const site = siteRoot(root);
  const iframe = document.createElement("iframe");
  iframe.src = new URL("?embed&headless", site).href;
  iframe.title = "py-agent (hidden)";
  iframe.setAttribute("aria-hidden", "true");
  iframe.tabIndex = -1;
  iframe.allow = "cross-origin-isolated";
  iframe.style.cssText = "position:absolute;width:1px;height:1px;border:0;opacity:0;pointer-events:none;left:-10px;top:-10px";
  container.append(iframe);
  const frame = new Frame(iframe, site.origin);
  if (onEvent) frame.on("*", onEvent);
  if (typeof approve === "function") {
    frame.on("approval_required", async (event) => {
      let approved = false;
      try {
        approved = Boolean(await approve(event));
      } finally {
        frame.call("decide", approved).catch(() => {});
      }
    });
  }
  const agent = frame.api({
    close() {
      frame.close();
      iframe.remove();
    },
  });
  await frame.connected;
  const settings = { ...(modelSettings(model, { baseUrl, key }) || {}) };
  if (approve !== undefined) settings.approve = typeof approve === "function" || approve === "ask" ? "ask" : "auto";
  await agent.ready;
  if (Object.keys(settings).length) await frame.call("configure", settings);
  return agent;
}

/** `<py-agent-chat src="SITE/" [eager]>`: the site's chat (and table browser) inside any page. */
export class PyAgentChat extends HTMLElement {
  static get observedAttributes() {
    return ["src"];
  }

  connectedCallback() {
    if (this.frame) return;
    const site = siteRoot(this.getAttribute("src") || ".");
    const root = this.shadowRoot || this.attachShadow({ mode: "open" });
    root.innerHTML = `<style>
      :host { display: block; height: 36rem; min-height: 20rem; border: 1px solid var(--py-agent-line, #e3e6ec);
              border-radius: var(--py-agent-radius, 10px); overflow: hidden; background: var(--py-agent-bg, #f6f7f9); }
      iframe { display: block; width: 100%; height: 100%; border: 0; }
    </style>`;
    const iframe = document.createElement("iframe");
    iframe.src = new URL(this.hasAttribute("eager") ? "?embed" : "?embed&lazy", site).href;
    iframe.title = this.getAttribute("title") || "py-agent chat";
    iframe.allow = "cross-origin-isolated; clipboard-write";
    root.append(iframe);
    this.iframe = iframe;
    this.frame = new Frame(iframe, site.origin);
    this.agent = this.frame.api();
    this.frame.connected.then(() => {
      this.theme();
      this.dispatchEvent(new CustomEvent("py-agent-connected", { detail: { app: this.frame.app } }));
    });
    this.frame.on("*", (event) => this.dispatchEvent(new CustomEvent("py-agent-event", { detail: event })));
    this.frame.onReconnect = () => this.theme(); // the reloaded page has the default theme again
  }

  disconnectedCallback() {
    this.frame?.close();
    this.frame = null;
    this.shadowRoot?.replaceChildren();
  }

  attributeChangedCallback(name, old, value) {
    if (name === "src" && this.frame && old !== value) {
      this.disconnectedCallback();
      this.connectedCallback();
    }
  }

  /** Send the element's --py-agent-* custom properties to the chat (call again after changing them). */
  theme() {
    const style = getComputedStyle(this);
    const vars = {};
    for (const name of THEME) {
      const value = style.getPropertyValue(`--py-agent-${name}`).trim();
      if (value) vars[name] = value;
    }
    return this.frame?.call("theme", vars);
  }

  /** Boot Python now (a lazy element boots on the first interaction with it). */
  start() {
    return this.frame?.call("start");
  }
}

if (!customElements.get("py-agent-chat")) customElements.define("py-agent-chat", PyAgentChat);
