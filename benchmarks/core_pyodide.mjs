// benchmarks/core.py INSIDE Pyodide 314 under Node: the per-step overhead where it matters.
//
//   node --experimental-wasm-stack-switching benchmarks/core_pyodide.mjs [--wheel] [--script F] [-- args]
//
// Boots Pyodide from node_modules/pyodide with the site's python_stdlib.zip, installs the
// site's wheels offline (as tests/pyodide/run_pytest.mjs does), mounts the repository at
// /repo and runs benchmarks/core.py there. By default py_agent is imported from the working
// tree (/repo, so no rebuild is needed between measurements); --wheel uses the built wheel.
// Needs a build first: `python build.py build` (PY_AGENT_DIST picks the dist directory).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dist = process.env.PY_AGENT_DIST ? path.resolve(process.env.PY_AGENT_DIST) : path.join(root, "web/dist");
const argv = process.argv.slice(2);
const useWheel = argv.includes("--wheel");
const scriptAt = argv.indexOf("--script");  // run another script instead (profiling)
const script = scriptAt >= 0 ? path.resolve(argv[scriptAt + 1]) : path.join(root, "benchmarks/core.py");
const sep = argv.indexOf("--");
const benchArgs = sep >= 0 ? argv.slice(sep + 1) : [];

process.on("uncaughtException", (err) => {
  const text = String((err && err.message) || err);
  console.error(text.length > 6000 ? "…" + text.slice(-6000) : text);
  process.exit(2);
});

const manifestFile = path.join(dist, "wheels/manifest.json");
if (!fs.existsSync(manifestFile)) {
  console.error(`${manifestFile} is missing: run \`python build.py build\` first.`);
  process.exit(2);
}
const site = JSON.parse(fs.readFileSync(manifestFile, "utf8"));
const { loadPyodide } = await import(path.join(root, "node_modules/pyodide/pyodide.mjs"));
const py = await loadPyodide({
  indexURL: path.join(root, "node_modules/pyodide") + "/",
  stdLibURL: path.join(dist, "pyodide/python_stdlib.zip"),
  env: { HOME: "/home/pyodide", PYTHONDONTWRITEBYTECODE: "1" },
});
py.setStdout({ write: (buf) => fs.writeSync(1, buf) });
py.setStderr({ write: (buf) => fs.writeSync(2, buf) });
for (const [host, mount] of [[path.join(dist, "wheels"), "/wheels"], [root, "/repo"], [path.dirname(script), "/script"]]) {
  py.FS.mkdirTree(mount);
  py.FS.mount(py.FS.filesystems.NODEFS, { root: host }, mount);
}
await py.loadPackage(path.join(dist, "wheels", site.micropip), { messageCallback: () => {} });
const wheels = site.wheels.filter((w) => useWheel || !w.startsWith("py_agent-"));
py.globals.set("WHEEL_URLS", py.toPy(wheels.map((w) => `emfs:/wheels/${w}`)));
py.globals.set("BENCH_ARGS", py.toPy(benchArgs));
py.globals.set("USE_WHEEL", useWheel);
py.globals.set("SCRIPT", "/script/" + path.basename(script));
await py.runPythonAsync(`
import micropip, sys
await micropip.install(list(WHEEL_URLS), deps=False)
if not USE_WHEEL:
    sys.path.insert(0, "/repo")
sys.dont_write_bytecode = True
`);
const code = await py.runPythonAsync(`
import runpy, sys, os
os.chdir("/repo")
sys.argv = [SCRIPT, *BENCH_ARGS]
import py_agent
print(f"Python {sys.version.split()[0]} (Pyodide), py_agent from {os.path.dirname(py_agent.__file__)}")
try:
    runpy.run_path(SCRIPT, run_name="__main__")
    rc = 0
except SystemExit as exc:
    rc = exc.code or 0
rc
`);
process.exit(Number(code) || 0);
