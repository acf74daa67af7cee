// Page side of the boot benchmark (used by bare.html and agent.html).
// Starts a module worker, waits for its {type: "ready"} message, and publishes the result
// as window.__bench (read by benchmarks/browser_boot.mjs): the page-relative time at which
// the worker became ready, the worker's own timings, and the bytes every fetch transferred.
const params = new URLSearchParams(location.search);
const page = location.pathname.endsWith("bare.html") ? "bare" : "agent";
const workerUrl = page === "bare" ? "./bare.worker.js" : "./agent.worker.js";
const status = document.getElementById("status");

const worker = new Worker(new URL(workerUrl, import.meta.url), { type: "module" });
worker.onmessage = (event) => {
  const message = event.data;
  if (message.type === "progress") {
    status.textContent = message.step;
    return;
  }
  const pageResources = performance.getEntriesByType("resource").map(resourceSummary);
  const nav = performance.getEntriesByType("navigation").map(resourceSummary);
  window.__bench = {
    ...message,
    page,
    readyAt: performance.now(),
    resources: [...nav, ...pageResources, ...(message.resources || [])],
  };
  status.textContent = message.type === "ready" ? `ready in ${(performance.now() / 1000).toFixed(2)} s` : `error: ${message.message}`;
};
worker.onerror = (event) => {
  window.__bench = { type: "error", page, message: event.message || "worker failed to start" };
};
worker.postMessage({ mode: params.get("mode") || "micropip", cspProbe: params.get("cspProbe"), stdlib: params.get("stdlib") });

function resourceSummary(e) {
  return { name: e.name, transferSize: e.transferSize, encodedBodySize: e.encodedBodySize, decodedBodySize: e.decodedBodySize };
}
