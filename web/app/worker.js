// The agent worker (a module Worker: Pyodide 314 refuses classic ones).
//
// It boots Pyodide, installs the app's wheels from this origin with micropip,
// checks that they import, and then hands every message from the page to
// py_agent.browser, where the real work happens. This file stays thin on purpose.
//
// The server sends this script with a CSP whose connect-src is 'self' only, so
// nothing running here (Python or JS) can reach any other origin; wall.js, evaluated
// before anything else, removes the storage and coordination APIs (see there).
import "./wall.js";
import { bootPython } from "./boot.js";

const base = new URL("./", import.meta.url);
const pending = []; // messages that arrive before Python is ready
let runtime = null; // py_agent.browser.JsRuntime
let views = null; // shared-memory views: { interrupt, executing }
let testHooks = false;
let gotInit;
const initialised = new Promise((resolve) => (gotInit = resolve));

self.onmessage = (event) => {
  const message = event.data;
  if (message.type === "init") {
    if (message.shared) {
      views = {
        interrupt: new Int32Array(message.shared, 0, 1),
        executing: new Int32Array(message.shared, 4, 1),
      };
    }
    testHooks = Boolean(message.testHooks);
    gotInit(message);
    return;
  }
  if (message.type === "boot_snapshot") return bootSnapshotOffered(message); // boot section below
  if (message.type === "configure" && Number.isFinite(message.memoryLimit)) memory.limit = message.memoryLimit * MB;
  if (message.type === "debug_scan" && testHooks && self.pyodide) {
    post({ type: "debug_scan_result", request: message.request, ...scan(message.needle) });
  } else if (message.type === "debug_js" && testHooks) {
    runTestModule(message);
  } else if (runtime) {
    deliver(message);
  } else {
    pending.push(message);
  }
};

// --- messages to and from Python -------------------------------------------------

function deliver(message) {
  // A message carries at most one binary field; it travels beside the JSON text.
  let data;
  for (const field of ["bytes", "db"]) {
    if (ArrayBuffer.isView(message[field])) {
      data = message[field];
      message = { ...message };
      delete message[field];
    }
  }
  // An interrupt raised after the code had finished must not fire in this call.
  if (views && Atomics.load(views.executing, 0) === 0) Atomics.store(views.interrupt, 0, 0);
  try {
    runtime.handle(JSON.stringify(message), data);
  } catch (error) {
    // Python itself failed (it catches every error of its own): this worker cannot be trusted
    // with the next message. The page restarts it from the last saved state.
    broken("crash", `Python failed on "${message.type}": ${error.message}`);
  }
}

function broken(reason, message) {
  post({ type: "worker_broken", reason, message: String(message).slice(0, 500) });
}

function fromPython(text, data) {
  let message;
  try {
    message = JSON.parse(text);
  } catch (error) {
    // Seen after a MemoryError: Python could not build a whole message any more.
    return broken(/MemoryError/.test(text) ? "memory" : "crash", `a message from Python was unreadable (${error.message})`);
  }
  if (message.type === "signal" || message.type === "execution_result") {
    memory.stepping = message.type === "signal" && message.signal === "execution";
    memory.base = null; // measured again at the step's first grow
  }
  if (data) {
    message[message.type === "fetch_chunk" ? "bytes" : "db"] = data;
    // Transfer only a buffer of its own (never Python's memory).
    const own = data.byteOffset === 0 && data.buffer.byteLength === data.byteLength;
    self.postMessage(message, own ? [data.buffer] : []);
  } else {
    self.postMessage(message);
  }
}

function post(message) {
  self.postMessage(message);
}

self.addEventListener("error", (event) => {
  if (runtime) broken("crash", event.message || "an error the worker did not catch");
});

// --- memory: how much a step may add ------------------------------------------------------

// Emscripten grows Pyodide's memory through WebAssembly.Memory.prototype.grow; refusing
// a grow makes malloc fail, so Python raises MemoryError in the step that asked for it
// instead of the tab running out of memory. The limit is what one step may add on top of
// the memory Python had when the step began (as MemoryCap does on CPython).
const MB = 1024 * 1024;
const memory = { limit: 1024 * MB, stepping: false, base: null };
const grow = WebAssembly.Memory.prototype.grow;
WebAssembly.Memory.prototype.grow = function (pages) {
  if (memory.stepping) {
    memory.base ??= this.buffer.byteLength;
    if (this.buffer.byteLength + pages * 65536 > memory.base + memory.limit) {
      throw new RangeError(`a step may add at most ${memory.limit / MB} MB of memory`);
    }
  }
  return grow.call(this, pages);
};

// --- test hook: JavaScript in the worker -------------------------------------------------

// Runs a same-origin module's default export in this worker (the CSP forbids eval).
// Only with ?test: the specs use it to act as hostile code that reached the global.
async function runTestModule(message) {
  let value;
  try {
    const module = await import(new URL(message.url, base).href);
    value = { ok: true, value: await module.default(self) };
  } catch (error) {
    value = { ok: false, value: `${error.name}: ${error.message}` };
  }
  post({ type: "debug_js_result", request: message.request, ...value });
}

// --- test hook: where does a string live? ---------------------------------------------

// Counts occurrences of `needle` (UTF-8) in Python's WebAssembly memory and in every
// file of its virtual file system. Tests use it to prove the API key never got here.
function scan(needle) {
  const bytes = new TextEncoder().encode(needle);
  const files = [];
  const FS = self.pyodide.FS;
  const walk = (dir) => {
    for (const name of FS.readdir(dir)) {
      if (name === "." || name === "..") continue;
      const path = dir === "/" ? `/${name}` : `${dir}/${name}`;
      if (["/dev", "/proc", "/sys"].includes(path)) continue;
      const stat = FS.stat(path);
      if (FS.isDir(stat.mode)) walk(path);
      else if (FS.isFile(stat.mode) && count(FS.readFile(path), bytes)) files.push(path);
    }
  };
  walk("/");
  return { heap: count(self.pyodide._module.HEAPU8, bytes), files, heapBytes: self.pyodide._module.HEAPU8.length };
}

function count(haystack, needle) {
  let hits = 0;
  const first = needle[0];
  for (let i = haystack.indexOf(first); i !== -1 && i <= haystack.length - needle.length; i = haystack.indexOf(first, i + 1)) {
    let j = 1;
    while (j < needle.length && haystack[i + j] === needle[j]) j++;
    if (j === needle.length) hits++;
  }
  return hits;
}

// --- boot progress: stages and bytes ------------------------------------------------

const progress = { stage: "runtime", message: "", loaded: 0, total: 0, last: 0 };

function report(stage, message, force = true) {
  if (stage) Object.assign(progress, { stage, message });
  const now = performance.now();
  if (!force && now - progress.last < 80) return;
  progress.last = now;
  const { loaded, total } = progress;
  post({ type: "boot", stage: progress.stage, message: progress.message, loaded, total: Math.max(total, loaded) });
}

// Count the bytes of every download during boot (Pyodide's runtime, the standard
// library, the wheels) so the page can show a real progress bar. Bodies arrive
// decompressed, so the total is in uncompressed bytes too: the manifest's sizes for
// the wheels, and for the runtime its sizes when listed, else an estimate.
const RUNTIME_BYTES_ESTIMATE = 19.4e6; // pyodide.asm.wasm + the compiled python_stdlib.zip + lock file, as built
const realFetch = self.fetch.bind(self);
function countingFetch(input, init) {
  return realFetch(input, init).then((response) => {
    if (!response.body) return response;
    const counter = new TransformStream({
      transform(chunk, controller) {
        progress.loaded += chunk.byteLength;
        report(null, null, false);
        controller.enqueue(chunk);
      },
    });
    return new Response(response.body.pipeThrough(counter), {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  });
}

// --- boot ----------------------------------------------------------------------------

// The page offers the memory snapshot it keeps for this site (bootcache.js) right after
// `init` {bootSnapshot: true}: {type: "boot_snapshot", snapshot: ArrayBuffer | null}.
let gotSnapshot;
const offeredSnapshot = new Promise((resolve) => (gotSnapshot = resolve));
function bootSnapshotOffered(message) {
  gotSnapshot(message.snapshot || null);
}

/** The schema module the page will open: from `init` or from the queued `open`. */
async function schemaToOpen(init) {
  if (init.schema) return init.schema;
  for (let i = 0; i < 50 && !pending.some((m) => m.type === "open"); i++) await new Promise((r) => setTimeout(r, 10));
  return pending.find((m) => m.type === "open")?.schema || "py_agent.demo";
}

async function boot() {
  const started = performance.now();
  self.fetch = countingFetch;
  const manifest = await (await fetch(new URL("wheels/manifest.json", base))).json();
  const sizes = manifest.sizes || {};
  progress.total = RUNTIME_BYTES_ESTIMATE + [manifest.boot.zip, ...manifest.boot.unpack].reduce((sum, file) => sum + (sizes[file] || 0), 0);
  const init = await initialised;
  if (init.purpose === "snapshot") return makeSnapshot(init, manifest, started);
  const schema = await schemaToOpen(init);
  const booted = await bootPython({
    base,
    manifest,
    schema,
    offered: init.bootSnapshot ? offeredSnapshot : Promise.resolve(null),
    report,
  });
  const pyodide = booted.pyodide;
  self.fetch = realFetch; // boot is over: model code gets the plain (CSP-bound) fetch

  if (views) pyodide.setInterruptBuffer(views.interrupt);
  const browser = pyodide.pyimport("py_agent.browser");
  const onDemand = pyodide.toPy({ packages: manifest.on_demand || [], wheels: new URL("wheels/", base).href, micropip: manifest.micropip });
  runtime = browser.start(fromPython, views?.executing, views?.interrupt, testHooks, onDemand);
  if (testHooks) self.pyodide = pyodide; // lets tests reach Python outside the agent
  booted.timings.started = Math.round(performance.now() - started);
  report("database", "Opening the database");
  post({
    type: "booted",
    ms: Math.round(performance.now() - started),
    isolated: Boolean(views),
    from: booted.from, // "snapshot" | "packages"
    // "wanted": booted from the packages; the page makes a snapshot in the background
    snapshot: booted.from === "snapshot" ? "restored" : init.bootSnapshot ? "wanted" : "none",
    schema, // the schema module Python imported (a snapshot is made for it)
    rejected: booted.rejected, // why an offered snapshot was not used, or null
    wasmMemory: pyodide._module.HEAP8.length, // bytes of Python's memory now
    peakMemory: booted.peak, // the boot's largest moment: memory, snapshot and files held at once
    timings: booted.timings, // ms from the start of bootPython to each stage (started: from this worker's start)
    timeOrigin: performance.timeOrigin, // lets the page put the timings on its own clock
    transferred: performance.getEntriesByType("resource").reduce((sum, e) => sum + (e.transferSize || 0), 0),
  });
  for (const message of pending.splice(0)) deliver(message);
}

/**
 * The background boot a page starts once its agent is ready (bootcache.js): boot from the
 * packages, warm up, make the snapshot, hand it over, and end. This worker never opens a
 * database nor runs model code, so what it hands over holds nothing of a visit.
 */
async function makeSnapshot(init, manifest, started) {
  const booted = await bootPython({ base, manifest, schema: init.schema, offered: Promise.resolve(null), makeSnapshot: true, report: () => {} });
  self.fetch = realFetch;
  const snapshot = booted.snapshot;
  const done = { type: "snapshot_made", made: Boolean(snapshot), ms: Math.round(performance.now() - started), timings: booted.timings };
  if (snapshot) self.postMessage({ type: "boot_snapshot", snapshot: snapshot.buffer }, [snapshot.buffer]);
  post(done);
  self.close();
}

boot().catch((error) => {
  self.fetch = realFetch;
  post({
    type: "fatal",
    message: `Python could not start: ${error.message}`,
    hint: error.hint || "reload the page; if it happens again, check the browser console",
  });
});
