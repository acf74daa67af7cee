// Agent boot, as the app's worker does it: Python up, the site's wheels installed from this
// origin, SQLAlchemy + py_agent imported and the demo schema loaded into SQLite.
//   mode=micropip (default): loadPackage(micropip wheel), micropip.install(wheels, deps=False)
//   mode=direct: the wheels are fetched while Pyodide boots, then pyodide.loadPackage(urls)
//                installs them (no micropip import, no resolver).
//   mode=zipimport: bench/site-packages.zip (all pure wheels merged, made by `build.py bench`)
//                is fetched while Pyodide boots, written to the file system and put on
//                sys.path, so nothing is unpacked; only wheels with compiled extensions
//                (pydantic_core) go through loadPackage.
// Served as *.worker.js, so it runs under the strict worker CSP (connect-src 'self').
import { loadPyodide } from "../pyodide/pyodide.mjs";

const wheelsBase = new URL("../wheels/", import.meta.url);

self.onmessage = async (event) => {
  const { mode, cspProbe } = event.data;
  const t0 = performance.now();
  const timings = {};
  const mark = (name) => (timings[name] = performance.now() - t0);
  const progress = (step) => self.postMessage({ type: "progress", step });
  try {
    const manifestPromise = fetch(new URL("manifest.json", wheelsBase)).then((r) => r.json());
    const pyodidePromise = loadPyodide({ indexURL: new URL("../pyodide/", import.meta.url).href });
    let prefetch = null;
    let bundle = null;
    if (mode === "direct") {
      const manifest = await manifestPromise;
      prefetch = Promise.all(manifest.wheels.map((w) => fetch(new URL(w, wheelsBase)).then((r) => r.arrayBuffer())));
    } else if (mode === "zipimport") {
      bundle = await (await fetch(new URL("bundle.json", import.meta.url))).json();
      prefetch = Promise.all([
        fetch(new URL(bundle.zip, import.meta.url)).then((r) => r.arrayBuffer()),
        ...bundle.wheels.map((w) => fetch(new URL(w, wheelsBase)).then((r) => r.arrayBuffer())),
      ]);
    }
    const pyodide = await pyodidePromise;
    mark("pyodide");
    progress("Python is up");
    const manifest = await manifestPromise;
    const urls = manifest.wheels.map((w) => new URL(w, wheelsBase).href);
    const quiet = { messageCallback: () => {}, errorCallback: (m) => console.warn(m) };
    if (mode === "direct") {
      await prefetch;
      mark("fetched");
      await pyodide.loadPackage(urls, quiet);
    } else if (mode === "zipimport") {
      const [zip] = await prefetch;
      mark("fetched");
      await pyodide.loadPackage(bundle.wheels.map((w) => new URL(w, wheelsBase).href), quiet);
      pyodide.FS.writeFile("/lib/site-packages.zip", new Uint8Array(zip));
      pyodide.runPython("import sys; sys.path.insert(0, '/lib/site-packages.zip')");
    } else {
      await pyodide.loadPackage(new URL(manifest.micropip, wheelsBase).href, quiet);
      mark("micropip");
      pyodide.globals.set("WHEEL_URLS", pyodide.toPy(urls));
      await pyodide.runPythonAsync("import micropip\nawait micropip.install(list(WHEEL_URLS), deps=False)");
    }
    mark("installed");
    progress("wheels installed");
    pyodide.runPython("import sqlalchemy, sqlalchemy.orm");
    mark("sqlalchemy");
    pyodide.runPython("import pydantic, jinja2, py_agent");
    mark("py_agent");
    let demo = true;
    try {
      pyodide.runPython("from py_agent.demo import Base, create_demo_engine\nengine = create_demo_engine()");
    } catch (error) {
      demo = false; // py_agent.demo missing: SQLAlchemy only
    }
    mark("schema");
    let csp = null;
    if (cspProbe) {
      // A fetch to another origin must be refused by the worker's own CSP (connect-src 'self').
      let violation = null;
      self.addEventListener("securitypolicyviolation", (e) => (violation = e.effectiveDirective));
      const outcome = await fetch(cspProbe, { mode: "no-cors" }).then(() => "fetched", () => "failed");
      await new Promise((resolve) => setTimeout(resolve, 50));
      csp = violation ? `blocked by CSP (${violation})` : `NOT blocked by CSP (fetch ${outcome})`;
    }
    self.postMessage({ type: "ready", mode, timings, demo, csp, resources: resources() });
  } catch (error) {
    self.postMessage({ type: "error", message: String(error && error.message || error).slice(-2000), timings });
  }
};

function resources() {
  return performance.getEntriesByType("resource").map((e) => ({
    name: e.name, transferSize: e.transferSize, encodedBodySize: e.encodedBodySize, decodedBodySize: e.decodedBodySize,
  }));
}
