// The agent worker (a module Worker: Pyodide 314 refuses classic ones).
//
// It boots Pyodide, installs the app's wheels from this origin with micropip,
// checks that they import, and then hands every message from the page to
// py_agent.browser, where the real work happens. This file stays thin on purpose.
//
// The server sends this script with a CSP whose connect-src is 'self' only, so
// nothing running here (Python or JS) can reach any other origin.
import { loadPyodide } from "./pyodide/pyodide.mjs";

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
  } else if (message.type === "debug_scan" && testHooks && self.pyodide) {
    post({ type: "debug_scan_result", request: message.request, ...scan(message.needle) });
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
    post({ type: "error", kind: "internal", message: `The worker failed on "${message.type}": ${error.message}`, hint: "reload the page" });
  }
}

function fromPython(text, data) {
  const message = JSON.parse(text);
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

async function boot() {
  const started = performance.now();
  self.fetch = countingFetch;
  const manifest = await (await fetch(new URL("wheels/manifest.json", base))).json();
  const sizes = Object.entries(manifest.sizes || {});
  const runtimeSizes = sizes.filter(([file]) => file.startsWith("pyodide/"));
  progress.total =
    sizes.reduce((sum, [file, size]) => sum + (file.startsWith("pyodide/") ? 0 : size), 0) +
    (runtimeSizes.length ? runtimeSizes.reduce((sum, [, size]) => sum + size, 0) : RUNTIME_BYTES_ESTIMATE);
  report("runtime", "Loading Python");
  const pyodide = await loadPyodide({ indexURL: new URL("pyodide/", base).href });

  report("packages", "Installing packages");
  await pyodide.loadPackage(new URL(`wheels/${manifest.micropip}`, base).href, { messageCallback: () => {} });
  const urls = manifest.wheels.map((file) => new URL(`wheels/${file}`, base).href);
  await pyodide.runPythonAsync(
    "import micropip\nawait micropip.install(list(urls), deps=False)",
    { globals: pyodide.toPy({ urls }) },
  );

  // micropip can report success when a download failed: prove that each package imports.
  report("imports", "Checking packages");
  const failures = pyodide
    .runPython(
      `import importlib
failures = []
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failures.append(f"{name} ({type(exc).__name__}: {exc})")
failures`,
      { globals: pyodide.toPy({ names: manifest.imports || [] }) },
    )
    .toJs();
  if (failures.length) {
    throw Object.assign(new Error(`These packages did not install: ${failures.join("; ")}`), {
      hint: "reload the page; if it happens again, rebuild the site with `python build.py build`",
    });
  }
  self.fetch = realFetch; // boot is over: model code gets the plain (CSP-bound) fetch

  await initialised;
  if (views) pyodide.setInterruptBuffer(views.interrupt);
  const browser = pyodide.pyimport("py_agent.browser");
  runtime = browser.start(fromPython, views?.executing, views?.interrupt, testHooks);
  if (testHooks) self.pyodide = pyodide; // lets tests reach Python outside the agent
  report("database", "Opening the database");
  post({ type: "booted", ms: Math.round(performance.now() - started), isolated: Boolean(views) });
  for (const message of pending.splice(0)) deliver(message);
}

boot().catch((error) => {
  self.fetch = realFetch;
  post({
    type: "fatal",
    message: `Python could not start: ${error.message}`,
    hint: error.hint || "reload the page; if it happens again, check the browser console",
  });
});
