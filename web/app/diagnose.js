// Why a request to the model's endpoint failed, and the exact fix, per local model server.
//
// fetch() rejects with the same TypeError whether nothing listens at the address or the
// server answered without CORS headers. The page tells them apart with a `no-cors` probe:
// an opaque answer means something is running there (so CORS is what is missing); a
// rejection means nothing answered. The probe works because the site is isolated with COEP
// `credentialless` (py_agent/site/headers.py): under `require-corp` an opaque answer without
// a CORP header is refused too, which made every failure look like "could not reach".
// Before any of that: an https page may not call plain http off this machine at all, and a
// page on the internet needs the person's permission to reach this machine or the local
// network (Chromium's Local Network Access): without it the call fails like the others.
//
// The servers (Ollama, llama.cpp, vLLM, LM Studio), their start commands and CORS fixes come
// from local-servers.json, which the build writes from py_agent/local_servers.py; the wording
// here follows that module's `diagnose()` (a test runs both on the same cases).

let servers = null;

/** The local-server table of the build (cached); [] if the file is missing. */
export async function localServers(base = document.baseURI) {
  if (!servers) {
    servers = fetch(new URL("local-servers.json", base))
      .then((response) => (response.ok ? response.json() : []))
      .catch(() => []);
  }
  return servers;
}

export function isLoopback(host) {
  host = host.replace(/^\[|\]$/g, "").toLowerCase();
  return host === "localhost" || host.endsWith(".localhost") || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** This machine or a private network (what Local Network Access guards). */
export function isLocalNetwork(host) {
  host = host.replace(/^\[|\]$/g, "").toLowerCase();
  return isLoopback(host) || host.endsWith(".local") || /^(10|192\.168|172\.(1[6-9]|2\d|3[01]))\./.test(host) || /^f[cd]/.test(host);
}

/** "granted", "prompt", "denied", or null when the browser has no such permission. */
async function localNetworkPermission() {
  try {
    return (await navigator.permissions.query({ name: "local-network-access" })).state;
  } catch {
    return null; // a browser without Local Network Access: nothing to ask for
  }
}

/** The local server a URL most likely is: by the provider's id, else by its default port. */
export function findServer(table, url, provider = "") {
  const byId = table.find((server) => server.id === provider);
  if (byId) return byId;
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  return table.find((server) => new URL(server.base_url).port === port) || null;
}

/**
 * The message for a request to `baseUrl` that failed with `failure` ("unreachable" | "cors" |
 * "mixed_content" | null for "could not tell"), from the page at `pageOrigin`.
 * Returns `{kind, message, hint, server}`; mirrors py_agent.local_servers.diagnose.
 */
export function describeFailure(table, baseUrl, failure, { pageOrigin = "", provider = "" } = {}) {
  const url = new URL(baseUrl);
  const origin = url.origin;
  const server = findServer(table, url, provider);
  const page = pageOrigin || "this page's origin";
  const name = server ? server.label : origin;
  const id = server ? server.id : null;
  if (failure === null && pageOrigin.startsWith("https:") && url.protocol === "http:" && !isLoopback(url.hostname)) failure = "mixed_content";
  if (failure === "local_network") {
    return {
      kind: failure,
      message: `The browser did not let this page reach ${origin}: a site on the internet needs your permission to reach this computer or your local network (Chromium's local network access).`,
      hint: "allow local network access for this site (the icon at the left of the address bar, or the site's settings) and send again; or open the app from this machine (http://localhost:PORT)",
      server: id,
    };
  }
  if (failure === "mixed_content") {
    return {
      kind: failure,
      message: `This page is served over https, so the browser does not let it call ${origin} over plain http.`,
      hint: "use the server on this machine (http://localhost:PORT), put it behind https (a reverse proxy with a certificate), or open this site over http",
      server: id,
    };
  }
  const start = server ? `start it: ${server.start}` : "check the base URL and that the server is running";
  const cors = server
    ? server.cors_fix.replaceAll("{origin}", page)
    : `make it send Access-Control-Allow-Origin: ${page} (and allow the Authorization and Content-Type headers), or put a proxy in front of it that does`;
  if (failure === "unreachable") {
    return { kind: failure, message: `Nothing answered at ${origin}: ${name} does not seem to be running there.`, hint: `${start}; check the port in the base URL (${baseUrl})`, server: id };
  }
  if (failure === "cors") {
    const known = server ? ` (${server.label} ${server.cors_default})` : "";
    return { kind: failure, message: `${name} at ${origin} is running but does not allow requests from ${page}${known}.`, hint: cors, server: id };
  }
  return {
    kind: "unreachable",
    message: `Could not reach ${name} at ${origin}: either it is not running, or it does not allow requests from ${page} (the browser reports both the same way).`,
    hint: `if it is not running, ${start}; if it is, ${cors}`,
    server: id,
  };
}

/** What the no-cors probe says: "cors" (something answered), "unreachable", or null (offline: cannot tell). */
export async function probe(target) {
  if (navigator.onLine === false) return null;
  try {
    await fetch(target, { mode: "no-cors", method: "GET", credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer" });
    return "cors";
  } catch {
    return "unreachable";
  }
}

/**
 * Why the request to `target` (a URL) failed: `{kind, message, hint, server}`.
 * `baseUrl` is the configured endpoint (named in the hint), `provider` the settings' provider.
 */
export async function diagnoseFailure(target, { baseUrl = target.href, provider = "", pageOrigin = location.origin } = {}) {
  const table = await localServers();
  const mixed = pageOrigin.startsWith("https:") && target.protocol === "http:" && !isLoopback(target.hostname);
  // A public page calling this machine or the local network, without the permission for it.
  const pageHost = pageOrigin ? new URL(pageOrigin).hostname : "";
  const guarded = !mixed && isLocalNetwork(target.hostname) && !isLocalNetwork(pageHost);
  const unpermitted = guarded && ["prompt", "denied"].includes(await localNetworkPermission());
  const failure = mixed ? "mixed_content" : unpermitted ? "local_network" : await probe(target);
  return describeFailure(table, baseUrl, failure, { pageOrigin, provider });
}
