// Before the agent worker starts: its network wall must hold, on any host.
//
// The worker runs the model's code. What keeps that code from reaching any origin but this
// site is the Content-Security-Policy of worker.js's own response (connect-src 'self'): a
// dedicated worker takes its policy from there, never from the page. A host that sends no
// special headers (GitHub Pages, a docs site, `python3 -m http.server`) sends no such
// policy, so the site's service worker adds it (sw-headers.js), and cross-origin isolation
// too. It can only do that for a page it controls, which on a first visit it does not yet.
//
// So the page asks before it starts the worker: is worker.js served with the strict policy?
//   * yes (the server sends the headers, or the service worker already controls the page):
//     start at once;
//   * no: register the service worker, wait until it controls the page, and reload once, so
//     that the page itself is served with COOP/COEP too (interrupts) and worker.js with its
//     policy; then ask again;
//   * still no (no service worker in this browser, e.g. a private window in some browsers,
//     or `?nosw`): never start the worker; say what to do.
// Cross-origin isolation is wanted, not required: without it a runaway step is stopped by
// restarting Python (agent.js), which works everywhere.

const STRICT = /(^|;)\s*connect-src\s+'self'\s*(;|$)/i;
const RELOADED = "py-agent:reloaded-for-headers";

/** Whether worker.js comes with a policy whose connect-src is 'self' alone. */
export async function workerIsWalled(base = document.baseURI) {
  try {
    const response = await fetch(new URL("worker.js", base), { cache: "no-store" });
    const policies = (response.headers.get("content-security-policy") || "").split(",");
    return policies.some((policy) => STRICT.test(policy));
  } catch {
    return false;
  }
}

/** The build's version (the service worker is registered per build). */
export async function buildVersion() {
  const build = await (await fetch("build.json", { cache: "no-store" })).json();
  return String(build.version);
}

export async function registerServiceWorker() {
  const version = await buildVersion();
  return navigator.serviceWorker.register(`sw.js?v=${encodeURIComponent(version)}`);
}

/**
 * Make sure the worker's wall holds before it starts. Resolves `{walled: true, isolated, via}`
 * (`via`: "server" | "service-worker"), or never, when the page reloads itself. Rejects with
 * an Error whose `hint` says what to do when the wall cannot be put in place.
 * `report(message)` shows what is happening (the first visit on a plain host takes a moment).
 */
export async function secureWorker({ allowServiceWorker = true, report = () => {} } = {}) {
  if (await workerIsWalled()) return { walled: true, isolated: globalThis.crossOriginIsolated === true, via: "server" };
  const supported = "serviceWorker" in navigator && window.isSecureContext;
  if (!allowServiceWorker || !supported) {
    throw refusal(
      supported
        ? "the service worker is switched off (?nosw) and the server does not send the headers"
        : "this browser gives the page no service worker (a private window, or the site is not served over https or from localhost)",
    );
  }
  const controlledAtLoad = Boolean(navigator.serviceWorker.controller);
  report("Securing this site for Python (first visit)");
  await registerServiceWorker();
  await controlled();
  if (!controlledAtLoad && !globalThis.crossOriginIsolated && !recentlyReloaded()) {
    // The page was loaded without the headers; the service worker serves it with them now.
    sessionStorage.setItem(RELOADED, String(Date.now()));
    report("Reloading once with the site's security headers");
    location.reload();
    await new Promise(() => {}); // the page goes away
  }
  sessionStorage.removeItem(RELOADED);
  if (await workerIsWalled()) return { walled: true, isolated: globalThis.crossOriginIsolated === true, via: "service-worker" };
  throw refusal("the service worker did not add the headers");
}

function recentlyReloaded() {
  const at = Number(sessionStorage.getItem(RELOADED) || 0);
  return Date.now() - at < 60_000;
}

/** Resolves once a service worker controls this page. */
function controlled() {
  if (navigator.serviceWorker.controller) return Promise.resolve();
  return new Promise((resolve) => {
    navigator.serviceWorker.addEventListener("controllerchange", () => resolve(), { once: true });
  });
}

function refusal(why) {
  const error = new Error(`Python was not started: this page cannot keep the model's code away from the network (${why})`);
  error.hint =
    "serve the site with its headers (the _headers file, or the nginx/Apache lines in py-agent's README), or open it in a normal browser window";
  return error;
}
