// Service worker: keeps a copy of the whole site so a second visit works offline.
//
// Registered as sw.js?v=<build version> (see app.js), so each build gets its own
// cache and the old one is deleted on activation. Requests go to the network first
// (a fresh build is always seen online) and fall back to the cache.
//
// Cross-origin isolation survives: a cached Response keeps the headers it was
// stored with (COOP/COEP for the page, the connect-src 'self' CSP for worker.js).
// Requests to other origins (the model's endpoint) are never touched.

const version = new URL(self.location.href).searchParams.get("v") || "dev";
const CACHE = `py-agent-${version}`;
const scope = new URL(self.registration.scope);

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
        await cache.put(url, response);
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
  event.respondWith(
    fetch(event.request).catch(async () => {
      const cache = await caches.open(CACHE);
      // Navigations may carry a query (?test) or name the directory: serve the page.
      const cached = event.request.mode === "navigate"
        ? (await cache.match(event.request, { ignoreSearch: true })) || (await cache.match(new URL("./", scope)))
        : await cache.match(event.request, { ignoreSearch: url.pathname.endsWith("/build.json") });
      return cached || Response.error();
    }),
  );
});
