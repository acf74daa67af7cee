// Page side of the boot benchmark (bare.html and agent.html; run by benchmarks/browser_boot.mjs).
//
// bare.html:  a module worker that calls loadPyodide() and nothing else (bare.worker.js).
// agent.html: the app's own worker (../worker.js) driven as AgentClient drives it: init,
//             the stored boot snapshot offered (../bootcache.js), the demo model, `open` on a
//             database; then, with ?turn, one demo request to its turn_end. As in the app, the
//             database a visit committed is opened by the next one (kept in Cache Storage here).
//             After a boot from the packages, the snapshot for the next visit is made by a
//             background worker, as the app does (after the turn, and not part of the times).
//             ?nosnapshot: no snapshot is offered (a boot from the packages) or made.
//             ?steps: once ready, run the step benchmark (core.py) inside the worker itself
//             (through the test hook, so this load starts the worker with test hooks).
// Publishes window.__bench: times from navigation start, bytes transferred (resource timing
// of the page and of the worker), and what the worker said about its boot.
const params = new URLSearchParams(location.search);
const page = location.pathname.endsWith("bare.html") ? "bare" : "agent";
const status = document.getElementById("status");
const pageBytes = () => performance.getEntriesByType("navigation").concat(performance.getEntriesByType("resource")).reduce((sum, e) => sum + (e.transferSize || 0), 0);

function done(result) {
  window.__bench = { page, pageBytes: pageBytes(), pageTimeOrigin: performance.timeOrigin, ...result };
  status.textContent = result.type === "ready" ? `ready at ${(result.readyAt / 1000).toFixed(2)} s` : `error: ${result.message}`;
}

if (page === "bare") {
  const worker = new Worker(new URL("./bare.worker.js", import.meta.url), { type: "module" });
  worker.onmessage = ({ data }) => done({ ...data, readyAt: performance.now(), workerBytes: (data.resources || []).reduce((s, r) => s + (r.transferSize || 0), 0) });
  worker.onerror = (event) => done({ type: "error", message: event.message || "the worker failed to start" });
  worker.postMessage({ stdlib: params.get("stdlib") });
} else {
  runAgent().catch((error) => done({ type: "error", message: String(error?.message || error) }));
}

async function runAgent() {
  const { makeBootSnapshot, offerBootSnapshot } = await import("../bootcache.js");
  const schema = "py_agent.demo";
  const dbCache = await caches.open("bench-database");
  const saved = await dbCache.match("/bench-database");
  const db = saved ? new Uint8Array(await saved.arrayBuffer()) : undefined;
  let savedDb = Promise.resolve();
  const shared = globalThis.crossOriginIsolated ? new SharedArrayBuffer(8) : null;
  const worker = new Worker(new URL("../worker.js", import.meta.url), { type: "module" });
  const result = { type: "ready" };
  const finished = new Promise((resolve, reject) => {
    worker.onerror = (event) => reject(new Error(event.message || "the worker failed to start"));
    worker.onmessage = ({ data: message }) => {
      switch (message.type) {
        case "booted":
          Object.assign(result, { bootedAt: performance.now(), booted: message });
          break;
        case "ready":
          result.readyAt = performance.now();
          if (params.has("steps")) return void runSteps(worker).then((output) => ((result.steps = output), resolve()), reject);
          if (!params.has("turn")) return resolve();
          worker.postMessage({ type: "send", text: "How many rows are in each table?" });
          break;
        case "turn_end":
          result.turnEndAt = performance.now();
          result.turn = message.reason;
          resolve();
          break;
        case "fatal":
          reject(new Error(message.message));
          break;
        case "snapshot": // the app saves the committed database for the next visit
          if (message.db) savedDb = dbCache.put("/bench-database", new Response(message.db));
          break;
        case "fetch": // the demo model never fetches; answer anyway so nothing hangs
          worker.postMessage({ type: "fetch_error", id: message.id, kind: "refused", message: "no network in the bench", hint: "" });
          break;
      }
    };
  });
  worker.postMessage({ type: "init", shared, testHooks: params.has("steps"), schema, bootSnapshot: !params.has("nosnapshot") });
  if (!params.has("nosnapshot")) offerBootSnapshot(worker);
  worker.postMessage({ type: "configure", provider: "demo", model: "", baseUrl: "", approve: "auto" });
  worker.postMessage({ type: "open", schema, conversation: null, db }, db ? [db.buffer] : []);
  result.savedDb = Boolean(db);
  await finished;
  if (result.booted?.snapshot === "wanted") {
    // As the app does once it is ready: the snapshot for the next visit, made by a worker
    // in the background (after the turn here, so that it does not share the machine with it).
    const made = await makeBootSnapshot(new URL("../worker.js", import.meta.url), schema);
    Object.assign(result, { kept: made.kept, snapshotBytes: made.bytes, snapshotMs: made.ms, snapshotTimings: made.timings, snapshotError: made.error });
  }
  await savedDb;
  result.workerBytes = result.booted?.transferred || 0;
  if (params.has("memory") && performance.measureUserAgentSpecificMemory) {
    try {
      const measured = await performance.measureUserAgentSpecificMemory();
      result.memory = measured.breakdown
        .filter((b) => b.attribution.some((a) => a.scope === "DedicatedWorkerGlobalScope"))
        .reduce((sum, b) => sum + b.bytes, 0);
      result.memoryTotal = measured.bytes;
    } catch (error) {
      result.memoryError = error.message;
    }
  }
  worker.terminate();
  done(result);
}

/** benchmarks/core.py run in the agent worker, on its event loop: its printed report. */
async function runSteps(worker) {
  const source = await (await fetch(new URL("core.py", import.meta.url))).text();
  const code = `import contextlib, io, os, runpy, sys
os.makedirs("/tmp/bench", exist_ok=True)
with open("/tmp/bench/core.py", "w") as f:
    f.write(${JSON.stringify(source)})
out = io.StringIO()
sys.argv = ["core.py"]
with contextlib.redirect_stdout(out):
    runpy.run_path("/tmp/bench/core.py", run_name="__main__")
result = out.getvalue()`;
  return new Promise((resolve, reject) => {
    const previous = worker.onmessage;
    worker.onmessage = (event) => {
      if (event.data.type !== "debug_result") return previous(event);
      worker.onmessage = previous;
      if (event.data.ok) resolve(event.data.value);
      else reject(new Error(`the step benchmark failed in the worker: ${event.data.value}`));
    };
    worker.postMessage({ type: "debug", request: 1, code });
  });
}
