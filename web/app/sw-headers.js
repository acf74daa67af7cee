// The headers a py-agent site needs, added by its service worker (sw.js imports this file
// first), so that a site on a host that sends no special headers (GitHub Pages, a docs site,
// `python3 -m http.server`) is still cross-origin isolated and keeps the agent worker's
// network wall: a dedicated worker takes its Content-Security-Policy from its own script's
// response, and here that response gets `connect-src 'self'`.
//
// The page (guard.js) starts the agent worker only once worker.js comes with that policy:
// from the server itself, or from this service worker once it controls the page.
//
// The policies are the build's (py_agent/site/headers.py fills POLICIES in), the same the
// development server and the `_headers` file send. A header the server already sent with
// the same value is left alone; a Content-Security-Policy of the server's own is kept
// beside ours (both are enforced, so the result is the stricter of the two).

const POLICIES = {}; // build: headers

const SHARED = new Set(POLICIES.shared_scripts || []);

/** `response` with the site's headers added (same-origin responses only; others as they are). */
self.secureResponse = function secureResponse(request, response) {
  if (!response || !POLICIES.page || ["opaque", "opaqueredirect", "error"].includes(response.type)) return response;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return response;
  const name = url.pathname.split("/").pop();
  const wanted = name === "worker.js" || name.endsWith(".worker.js") ? POLICIES.worker : SHARED.has(name) ? POLICIES.shared : POLICIES.page;
  const headers = new Headers(response.headers);
  let changed = false;
  for (const [key, value] of Object.entries(wanted)) {
    const current = headers.get(key);
    if (key.toLowerCase() === "content-security-policy") {
      if (current && current.split(",").map((policy) => policy.trim()).includes(value)) continue;
      headers.set(key, current ? `${current}, ${value}` : value);
    } else {
      if (current === value) continue;
      headers.set(key, value);
    }
    changed = true;
  }
  if (!changed) return response;
  const noBody = [101, 204, 205, 304].includes(response.status);
  return new Response(noBody ? null : response.body, { status: response.status, statusText: response.statusText, headers });
};
