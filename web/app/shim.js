// The provider fetch shim: the only way a completion request leaves the page.
//
// The worker posts {type: "fetch", id, url, method, headers, body, auth}; the
// shim refuses any origin but the configured model endpoint, adds the API key
// (which never enters the worker), fetches with streaming and posts the bytes
// back as fetch_start / fetch_chunk / fetch_end, or fetch_error. A fetch_abort
// from the worker cancels the request.
//
// Nothing the shim forwards carries the key, even when the server sends it back
// (some proxies echo the Authorization header in a 401 body): response headers and
// every body, streamed or not, pass through a KeyFilter first.

import { diagnoseFailure } from "./diagnose.js";

const REDACTED = "[API key removed]";

/**
 * Removes every occurrence of the key from a stream of bytes, also when an
 * occurrence is split between chunks: the last few bytes of each chunk wait for
 * the next one until they cannot be the start of the key any more.
 */
export class KeyFilter {
  constructor(key) {
    const encoder = new TextEncoder();
    // The key as it may appear in a body: as is, URL-encoded, or escaped inside JSON.
    const forms = key && key.length >= 4 ? [key, encodeURIComponent(key), JSON.stringify(key).slice(1, -1)] : [];
    this.needles = [...new Set(forms)].map((form) => encoder.encode(form));
    this.keep = Math.max(0, ...this.needles.map((n) => n.length - 1));
    this.replacement = encoder.encode(REDACTED);
    this.starts = new Uint8Array(256); // bytes a needle can start with: all others are skipped fast
    for (const needle of this.needles) this.starts[needle[0]] = 1;
    this.tail = new Uint8Array(0);
    this.texts = [...new Set(forms)];
  }

  /** The part of `chunk` (after what was held back) that is safe to pass on now. */
  push(chunk) {
    if (!this.needles.length) return chunk;
    const data = concat(this.tail, chunk);
    const out = [];
    let start = 0; // first byte not yet passed on
    let i = 0;
    while (i < data.length) {
      if (!this.starts[data[i]]) {
        i += 1;
        continue;
      }
      const needle = this.needles.find((n) => matchesAt(data, i, n));
      if (needle) {
        out.push(data.subarray(start, i), this.replacement);
        i += needle.length;
        start = i;
      } else if (i >= data.length - this.keep && this.needles.some((n) => prefixAt(data, i, n))) {
        break; // may be the start of the key: wait for the next chunk
      } else {
        i += 1;
      }
    }
    out.push(data.subarray(start, i));
    this.tail = data.slice(i);
    return concat(...out);
  }

  /** What was held back, at the end of the body. */
  end() {
    const rest = this.tail;
    this.tail = new Uint8Array(0);
    return rest;
  }

  /** `text` without the key (for headers and messages). */
  text(text) {
    return this.texts.reduce((result, form) => result.split(form).join(REDACTED), String(text));
  }
}

function matchesAt(data, at, needle) {
  if (at + needle.length > data.length) return false;
  for (let j = 0; j < needle.length; j++) if (data[at + j] !== needle[j]) return false;
  return true;
}

function prefixAt(data, at, needle) {
  for (let j = 0; at + j < data.length; j++) if (j >= needle.length || data[at + j] !== needle[j]) return false;
  return true;
}

function concat(...parts) {
  const total = parts.reduce((sum, part) => sum + part.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

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
      const { kind, message, hint } = await diagnose(target, this.endpoint(), error);
      return this.fail(id, kind, message, hint);
    }
    if (controller.signal.aborted) return;
    // The key the page sent must not come back to the worker in anything the server says.
    const filter = new KeyFilter(key);
    const safeHeaders = Object.fromEntries([...response.headers].map(([name, value]) => [name, filter.text(value)]));
    this.post({ type: "fetch_start", id, status: response.status, headers: safeHeaders });
    const forward = (bytes) => bytes.length && this.post({ type: "fetch_chunk", id, bytes }, [bytes.buffer]);
    try {
      const reader = (response.body ?? new Response("").body).getReader();
      controller.signal.addEventListener("abort", () => reader.cancel().catch(() => {}));
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (controller.signal.aborted) return;
        forward(filter.push(value));
      }
    } catch (error) {
      if (controller.signal.aborted) return;
      return this.fail(id, "interrupted", filter.text(`The response from ${target.origin} broke off: ${error.message}`), "try again");
    }
    if (controller.signal.aborted) return;
    forward(filter.end());
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

// Why a request failed, with the fix for the server it most likely is (diagnose.js, the
// same table as py_agent.local_servers); the generic wording if that cannot be worked out.
async function diagnose(target, baseUrl, error) {
  try {
    return await diagnoseFailure(target, { baseUrl: baseUrl || target.href });
  } catch {
    return {
      kind: "unreachable",
      message: `Could not reach ${target.origin} (${error.message}).`,
      hint: "check the base URL in Settings and that the server is running; if it is, it may not allow requests from this page (CORS)",
    };
  }
}
