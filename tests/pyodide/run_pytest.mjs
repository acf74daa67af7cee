// Run the pure-Python tests INSIDE Pyodide 314 under Node, against the site's own wheels.
//
//   node --experimental-wasm-stack-switching tests/pyodide/run_pytest.mjs [pytest args...]
//
// (`python build.py test` runs it that way, after `python build.py build`.)
// 1. loadPyodide() from node_modules/pyodide (the npm package: the same core as the site)
//    with the site's python_stdlib.zip (precompiled and trimmed by the build);
// 2. install micropip from its wheel, then micropip-install, offline and without resolving,
//    the wheels the site ships (web/dist/wheels/manifest.json: compiled .pyc wheels,
//    including py_agent) plus pytest and its pure dependencies (.cache/test-wheels/);
// 3. import every package: micropip can report success when a download failed;
// 4. mount the repository at /repo and run pytest.main() on the files listed in
//    tests/pyodide/pure_tests.txt (or on the paths given on the command line).
// Exit code: pytest's; "no tests ran" (5) and any setup error are failures.
// With --experimental-wasm-stack-switching Node 20's V8 has JSPI, so tests that call
// asyncio.run() work (pytest runs under runPythonAsync); without it they cannot block.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

// Errors from Pyodide carry a minified source line of several MB: print the message only.
process.on("uncaughtException", (err) => {
  const text = String((err && err.message) || err);
  console.error(text.length > 6000 ? "…" + text.slice(-6000) : text);
  process.exit(2);
});
const dist = process.env.PY_AGENT_DIST ? path.resolve(process.env.PY_AGENT_DIST) : path.join(root, "web/dist");
const distWheels = path.join(dist, "wheels");
const testWheels = path.join(root, ".cache/test-wheels");

function fail(message) {
  console.error(`run_pytest.mjs: ${message}`);
  process.exit(2);
}

function readJson(file, fix) {
  if (!fs.existsSync(file)) fail(`${path.relative(root, file)} is missing: ${fix}`);
  return JSON.parse(fs.readFileSync(file, "utf8"));
}

const site = readJson(path.join(distWheels, "manifest.json"), "run `python build.py build` first.");
const tests = readJson(path.join(testWheels, "manifest.json"), "run `python build.py build` first.");

let targets = process.argv.slice(2);
const extraArgs = targets.filter((a) => a.startsWith("-"));
targets = targets.filter((a) => !a.startsWith("-"));
if (targets.length === 0) {
  const listFile = path.join(root, "tests/pyodide/pure_tests.txt");
  if (!fs.existsSync(listFile)) fail("tests/pyodide/pure_tests.txt is missing (one test file per line).");
  targets = fs
    .readFileSync(listFile, "utf8")
    .split("\n")
    .map((l) => l.replace(/#.*/, "").trim())
    .filter(Boolean);
  const missing = targets.filter((t) => !fs.existsSync(path.join(root, t.split("::")[0])));
  if (missing.length) fail(`pure_tests.txt lists files that do not exist: ${missing.join(", ")}`);
  if (targets.length === 0) fail("pure_tests.txt lists no test files.");
}

const t0 = performance.now();
const secs = () => ((performance.now() - t0) / 1000).toFixed(1) + " s";
const { loadPyodide } = await import(path.join(root, "node_modules/pyodide/pyodide.mjs"));
const py = await loadPyodide({
  indexURL: path.join(root, "node_modules/pyodide") + "/",
  // The site's own standard library (precompiled, trimmed): test what ships.
  stdLibURL: path.join(dist, "pyodide/python_stdlib.zip"),
  env: { HOME: "/home/pyodide", PYTHONDONTWRITEBYTECODE: "1" },
});
// Raw byte streams, so pytest's progress dots and partial lines come out as written.
py.setStdout({ write: (buf) => fs.writeSync(1, buf) });
py.setStderr({ write: (buf) => fs.writeSync(2, buf) });
console.log(`Pyodide ${py.version} ready in ${secs()}`);

const FS = py.FS;
for (const [host, mount] of [[distWheels, "/wheels"], [testWheels, "/test-wheels"], [root, "/repo"],
  [path.join(root, "node_modules/pyodide"), "/pyodide-npm"]]) {
  FS.mkdirTree(mount);
  FS.mount(FS.filesystems.NODEFS, { root: host }, mount);
}
// pytest needs stdlib modules the site leaves out (bdb, pdb, doctest…): they come from the
// npm package's full zip, placed last on sys.path so it only fills those gaps.
py.runPython("import sys; sys.path.append('/pyodide-npm/python_stdlib.zip')");

await py.loadPackage(path.join(distWheels, site.micropip), { messageCallback: () => {} });
const urls = [
  ...site.wheels.map((w) => `emfs:/wheels/${w}`),
  ...tests.wheels.map((w) => `emfs:/test-wheels/${w}`),
];
py.globals.set("WHEEL_URLS", py.toPy(urls));
py.globals.set("IMPORTS", py.toPy([...site.imports, "pytest", "sqlite3"]));
py.globals.set("TARGETS", py.toPy(targets));
py.globals.set("EXTRA_ARGS", py.toPy(extraArgs));

let code;
try {
  const broken = await py.runPythonAsync(`
import importlib, os, sys
import micropip
await micropip.install(list(WHEEL_URLS), deps=False)
import traceback
broken = []
for name in IMPORTS:
    try:
        importlib.import_module(name)
    except Exception:  # micropip can report success for a wheel it did not install
        broken.append(f"import {name} failed:\\n{traceback.format_exc(limit=-8)}")
"\\n".join(broken)
`);
  if (broken) fail(`the installed wheels do not import:\n${broken}`);
  console.log(`installed ${urls.length} wheels + micropip in ${secs()}`);
  code = await py.runPythonAsync(`
import sys, os, sqlite3
import py_agent, pytest
from pyodide.ffi import can_run_sync
os.chdir("/repo")
sys.dont_write_bytecode = True
print(f"Python {sys.version.split()[0]} (Pyodide), SQLite {sqlite3.sqlite_version}, "
      f"py_agent from {os.path.dirname(py_agent.__file__)}, "
      f"blocking on coroutines {'available (JSPI)' if can_run_sync() else 'NOT available: run node with --experimental-wasm-stack-switching'}")
int(pytest.main([*TARGETS, "-q", "-p", "no:cacheprovider", *EXTRA_ARGS]))
`);
} catch (err) {
  const text = String(err.message || err);
  console.error(text.length > 6000 ? "…" + text.slice(-6000) : text);
  process.exit(2);
}
console.log(`pytest inside Pyodide finished in ${secs()} with exit code ${code}`);
if (code === 5) console.error("no tests ran: counted as a failure");
process.exit(code);
