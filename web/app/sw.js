// Service worker: keeps a copy of the whole site so a second visit works offline.
//
// Registered as sw.js?v=<build version> (see app.js), so each build gets its own
// cache and the old one is deleted on activation. Requests go to the network first
// (a fresh build is always seen online) and fall back to the cache.
//
// Nothing is served from the cache unless it is byte for byte what the build made:
// the build writes the SHA-256 of every file into INTEGRITY below (build.py,
// embed_integrity), files are checked before they are cached and again before they
// are served. A cache entry changed by anyone else (Cache Storage is reachable from
// any script of this origin) is dropped and never served; a damaged page is replaced
// by a short explanation. This script itself is not in Cache Storage: the browser
// fetches and keeps it, so what it checks against cannot be rewritten from a page.
//
// Cross-origin isolation survives: a cached Response keeps the headers it was
// stored with (COOP/COEP for the page, the connect-src 'self' CSP for worker.js).
// Requests to other origins (the model's endpoint) are never touched.

// The site's own headers (COOP/COEP, the worker's CSP) for hosts that send none: defines
// self.secureResponse (sw-headers.js, filled in by the build). Every same-origin response
// this worker gives the page, from the network or the cache, goes through it.
importScripts("sw-headers.js");

const version = new URL(self.location.href).searchParams.get("v") || "dev";
const CACHE = `py-agent-${version}`;
const scope = new URL(self.registration.scope);
// {path under the scope: SHA-256 hex}, written by the build. Empty in an unbuilt tree:
// then nothing is cached or served offline.
const INTEGRITY = {}; // build: integrity

/** The file a URL of this site names ("" and directories are their index.html). */
function pathOf(url) {
  const path = decodeURIComponent(new URL(url).pathname.slice(scope.pathname.length));
  return path === "" || path.endsWith("/") ? `${path}index.html` : path;
}

async function sha256(buffer) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", buffer));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

async function intact(path, body) {
  return Object.hasOwn(INTEGRITY, path) && (await sha256(body)) === INTEGRITY[path];
}

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const build = await (await fetch(new URL("build.json", scope), { cache: "no-store" })).json();
      const cache = await caches.open(CACHE);
      const paths = ["./", ...build.files.filter((file) => !file.endsWith("sw.js"))];
      // One by one: the wheels and the runtime are large and the machine may be small.
      for (const path of paths) {
        const url = new URL(path, scope);
        const response = await fetch(url, { cache: "no-cache" });
        if (!response.ok) throw new Error(`could not cache ${url.pathname}: HTTP ${response.status}`);
        const body = await response.arrayBuffer();
        if (!(await intact(pathOf(url), body))) throw new Error(`${url.pathname} is not the file this build made; not caching the site`);
        await cache.put(url, new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers }));
      }
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const name of await caches.keys()) if (name.startsWith("py-agent-") && name !== CACHE) await caches.delete(name);
      await self.clients.claim();
      for (const client of await self.clients.matchAll()) client.postMessage({ type: "sw_ready", version });
    })(),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== scope.origin) return;
  const request = event.request;
  event.respondWith(
    fetch(request)
      .catch(() => fromCache(request, url))
      .then((response) => self.secureResponse(request, response)),
  );
});

/** The cached copy of a request, only if it is intact; a damaged one is deleted. */
async function fromCache(request, url) {
  const cache = await caches.open(CACHE);
  const navigate = request.mode === "navigate";
  // Navigations may carry a query (?test) or name the directory: serve the page.
  const options = { ignoreSearch: navigate || url.pathname.endsWith("/build.json") };
  let key = request;
  let cached = await cache.match(key, options);
  if (!cached && navigate) cached = await cache.match((key = new URL("./", scope)), options);
  if (!cached) return Response.error();
  const body = await cached.arrayBuffer();
  if (!(await intact(pathOf(key instanceof URL ? key : key.url), body))) {
    await cache.delete(key, options);
    return navigate ? damaged() : Response.error();
  }
  return new Response(body, { status: cached.status, statusText: cached.statusText, headers: cached.headers });
}

function damaged() {
  const text = `<!doctype html><meta charset="utf-8"><title>py-agent: offline copy damaged</title>
<p style="font:16px system-ui;max-width:36em;margin:3em auto">The offline copy of this app in your browser was changed
since it was saved, so it was not used. Your data is safe. Connect to the internet and reload the page to get a fresh copy.</p>`;
  return new Response(text, {
    status: 503,
    headers: { "Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'" },
  });
}
