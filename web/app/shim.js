// The provider fetch shim: the only way a completion request leaves the page.
//
// The worker posts {type: "fetch", id, url, method, headers, body, auth}; the
// shim refuses any origin but the configured model endpoint, adds the API key
// (which never enters the worker), fetches with streaming and posts the bytes
// back as fetch_start / fetch_chunk / fetch_end, or fetch_error. A fetch_abort
// from the worker cancels the request.

export class FetchShim {
  /**
   * @param {object} options
   * @param {() => string} options.endpoint  the configured model endpoint (base URL)
   * @param {() => string} options.key       the API key, read at request time
   * @param {() => boolean} options.needsKey  whether the endpoint refuses requests without one
   * @param {(message: object, transfer?: Transferable[]) => void} options.post  to the worker
   * @param {(event: object) => void} options.emit  page-level events (refusals)
   */
  constructor({ endpoint, key, needsKey, post, emit }) {
    Object.assign(this, { endpoint, key, needsKey, post, emit });
    this.inflight = new Map(); // id -> AbortController
  }

  handle(message) {
    if (message.type === "fetch") this.start(message);
    else if (message.type === "fetch_abort") this.abort(message.id);
  }

  abort(id) {
    this.inflight.get(id)?.abort();
    this.inflight.delete(id);
  }

  abortAll() {
    for (const id of [...this.inflight.keys()]) this.abort(id);
  }

  fail(id, kind, message, hint = "") {
    this.inflight.delete(id);
    this.post({ type: "fetch_error", id, kind, message, hint });
  }

  async start(request) {
    const { id } = request;
    const target = parseUrl(request.url);
    const endpoint = parseUrl(this.endpoint());
    if (!target || !endpoint || target.origin !== endpoint.origin) {
      const message = `The page refused to send a request to ${target ? target.origin : request.url}: only the configured model endpoint (${endpoint ? endpoint.origin : "none"}) may be contacted.`;
      this.emit({ type: "shim_refused", url: request.url, message });
      return this.fail(id, "refused", message, "check the provider and base URL in Settings");
    }
    const headers = new Headers(request.headers || {});
    const key = request.auth ? this.key() : "";
    if (key) headers.set(request.auth.header, request.auth.scheme ? `${request.auth.scheme} ${key}` : key);
    else if (request.auth && this.needsKey()) {
      return this.fail(id, "missing_key", "No API key is set for this provider.", "open Settings and paste your API key");
    }
    const controller = new AbortController();
    this.inflight.set(id, controller);
    let response;
    try {
      response = await fetch(target, {
        method: request.method || "POST",
        headers,
        body: request.body || undefined,
        signal: controller.signal,
        credentials: "omit",
        cache: "no-store",
        referrerPolicy: "no-referrer",
      });
    } catch (error) {
      if (controller.signal.aborted) return;
      const kind = await classify(target);
      return this.fail(id, kind, describe(kind, target, error), HINTS[kind]);
    }
    if (controller.signal.aborted) return;
    this.post({ type: "fetch_start", id, status: response.status, headers: Object.fromEntries(response.headers) });
    try {
      const reader = response.body.getReader();
      controller.signal.addEventListener("abort", () => reader.cancel().catch(() => {}));
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (controller.signal.aborted) return;
        this.post({ type: "fetch_chunk", id, bytes: value }, [value.buffer]);
      }
    } catch (error) {
      if (controller.signal.aborted) return;
      return this.fail(id, "interrupted", `The response from ${target.origin} broke off: ${error.message}`, "try again");
    }
    if (controller.signal.aborted) return;
    this.inflight.delete(id);
    this.post({ type: "fetch_end", id });
  }
}

function parseUrl(text) {
  try {
    return new URL(text);
  } catch {
    return null;
  }
}

const HINTS = {
  cors: "the server must allow requests from this page (CORS): for Ollama set OLLAMA_ORIGINS, for others use a proxy that adds Access-Control-Allow-Origin",
  unreachable: "check the base URL in Settings and that the server is running; if it is, it may not allow requests from this page (CORS)",
};

function describe(kind, target, error) {
  return kind === "cors"
    ? `${target.origin} answered, but the browser blocked the response (CORS).`
    : `Could not reach ${target.origin} (${error.message}).`;
}

// fetch() gives the same TypeError for a refused connection and for a CORS refusal.
// An opaque no-cors request tells them apart where the page's policy lets it through.
async function classify(target) {
  if (navigator.onLine === false) return "unreachable";
  try {
    await fetch(target, { mode: "no-cors", method: "GET", credentials: "omit", cache: "no-store" });
    return "cors";
  } catch {
    return "unreachable";
  }
}
