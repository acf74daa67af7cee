// Repack wheels with bytecode compiled by Pyodide's own CPython (3.14, under Node).
//
// Usage: node tools/compile_wheels.mjs JOBS.json
//   JOBS.json = [{"src": "in.whl", "dst": "out.whl", "keep_source": false,
//                 "strip_docstrings": false, "drop": ["pkg/tests/", ...]}, ...]
// Called by `python build.py build`, which caches the outputs.
//
// For each wheel every `.py` module is compiled by Pyodide's interpreter, so the `.pyc`
// magic number is exactly the browser's, and the wheel is rewritten:
//   * by default it becomes sourceless, as Pyodide does for its own packages: `pkg/mod.py`
//     is replaced by `pkg/mod.pyc` (imported without compiling anything);
//   * with keep_source the `.py` files stay and `pkg/__pycache__/mod.cpython-314.pyc` is
//     added as an *unchecked-hash* pyc (PEP 552): used without looking at the source's
//     mtime (which unpacking changes), while tracebacks and `inspect` still see the source;
//   * strip_docstrings cuts every docstring down to its first line (asserts and the rest of
//     the code are untouched); drop leaves out members under the given path prefixes.
// Column tables are not stored (PYTHONNODEBUGRANGES, ≈25% smaller pycs; tracebacks keep
// line numbers). Members are stored uncompressed in a fixed order with a fixed timestamp,
// RECORD is rewritten, and the result is reproducible; HTTP compression (brotli/gzip of
// the whole file) then does better than per-member deflate.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

// Errors from Pyodide carry a minified source line of several MB: print the message only.
process.on("uncaughtException", (err) => {
  const text = String((err && err.message) || err);
  console.error(text.length > 6000 ? "…" + text.slice(-6000) : text);
  process.exit(2);
});
const jobsFile = process.argv[2];
if (!jobsFile) {
  console.error("usage: node tools/compile_wheels.mjs JOBS.json");
  process.exit(2);
}
const jobs = JSON.parse(fs.readFileSync(jobsFile, "utf8"));

// PY_AGENT_PYODIDE: a Pyodide directory of its own (an installed py-agent's kit has one).
const pyodideDir = process.env.PY_AGENT_PYODIDE || path.join(root, "node_modules/pyodide");
const { loadPyodide } = await import(path.join(pyodideDir, "pyodide.mjs"));
const py = await loadPyodide({
  indexURL: pyodideDir + "/",
  env: { HOME: "/home/pyodide", PYTHONNODEBUGRANGES: "1" },
});

// Mount every directory a job reads or writes at the same path inside Pyodide.
const dirs = new Set(jobs.flatMap((j) => [path.dirname(path.resolve(j.src)), path.dirname(path.resolve(j.dst))]));
for (const dir of dirs) {
  py.FS.mkdirTree(dir);
  py.FS.mount(py.FS.filesystems.NODEFS, { root: dir }, dir);
}
const absJobs = jobs.map((j) => ({ ...j, src: path.resolve(j.src), dst: path.resolve(j.dst) }));
py.globals.set("JOBS_JSON", JSON.stringify(absJobs));

try {
  py.runPython(String.raw`
import ast, base64, hashlib, importlib.util, json, os, sys, zipfile
from importlib._bootstrap_external import _code_to_hash_pyc, _code_to_timestamp_pyc

assert os.environ.get("PYTHONNODEBUGRANGES") == "1"
SITE = f"/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages/"
TAG = sys.implementation.cache_tag            # e.g. cpython-314
EPOCH = (1980, 1, 1, 0, 0, 0)


class StripDocstrings(ast.NodeTransformer):
    """Shorten every docstring to its first line: __doc__ stays a non-empty string (some
    libraries assert on it or edit it), but the bulk of the documentation is gone."""

    def _strip(self, node):
        self.generic_visit(node)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            lines = [line.strip() for line in body[0].value.value.splitlines() if line.strip()]
            body[0].value.value = lines[0] if lines else " "
        return node

    visit_Module = visit_ClassDef = visit_FunctionDef = visit_AsyncFunctionDef = _strip


def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def compile_source(name, source, strip):
    # co_filename = where micropip installs the module, so tracebacks name real paths.
    tree = ast.parse(source, SITE + name)
    if strip:
        tree = ast.fix_missing_locations(StripDocstrings().visit(tree))
    return compile(tree, SITE + name, "exec", dont_inherit=True, optimize=0)


def compile_wheel(job):
    entries = {}          # archive name -> bytes
    record_name = None
    with zipfile.ZipFile(job["src"]) as zin:
        for info in zin.infolist():
            if info.is_dir():
                continue
            name = info.filename
            if any(name.startswith(prefix) for prefix in job["drop"]):
                continue
            data = zin.read(info)
            if name.endswith(".dist-info/RECORD"):
                record_name = name
                continue
            top = name.split("/", 1)[0]
            if not name.endswith(".py") or top.endswith((".dist-info", ".data")):
                entries[name] = data
                continue
            code = compile_source(name, data, job["strip_docstrings"])
            if job["keep_source"]:
                entries[name] = data
                folder, _, leaf = name.rpartition("/")
                pyc = (folder + "/" if folder else "") + f"__pycache__/{leaf[:-3]}.{TAG}.pyc"
                entries[pyc] = bytes(_code_to_hash_pyc(code, importlib.util.source_hash(data), checked=False))
            else:
                entries[name + "c"] = bytes(_code_to_timestamp_pyc(code, 0, len(data)))
    if record_name is None:
        raise SystemExit(f"{job['src']}: no .dist-info/RECORD, not a wheel?")
    lines = [record_line(n, d) for n, d in sorted(entries.items())]
    lines.append(f"{record_name},,")
    entries[record_name] = ("\n".join(lines) + "\n").encode()
    # dist-info last, as the wheel spec recommends.
    order = sorted(entries, key=lambda n: (n.split("/", 1)[0].endswith(".dist-info"), n))
    tmp = job["dst"] + ".tmp"
    with zipfile.ZipFile(tmp, "w") as zout:
        for n in order:
            info = zipfile.ZipInfo(n, EPOCH)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zout.writestr(info, entries[n])
    os.replace(tmp, job["dst"])
    return os.path.getsize(job["dst"])


for job in json.loads(JOBS_JSON):
    size = compile_wheel(job)
    print(f"  compiled {os.path.basename(job['dst'])} ({size / 1e6:.2f} MB stored)")
`);
} catch (err) {
  console.error(String(err.message || err));
  process.exit(1);
}
