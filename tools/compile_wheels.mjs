// Repack wheels with bytecode compiled by Pyodide's own CPython (3.14 under Node).
//
// Usage: node tools/compile_wheels.mjs <in_dir> <out_dir> <wheel> [<wheel> ...]
//        [--keep-source <dist-name>[,<dist-name>...]]
//
// For each wheel, every `.py` module is compiled with Pyodide's interpreter (so the
// `.pyc` magic number matches the browser exactly) and the wheel is rewritten:
//   * third-party wheels become sourceless, as Pyodide does for its own packages:
//     `pkg/mod.py` is replaced by `pkg/mod.pyc` (smaller download, no compile at import);
//   * wheels named with --keep-source keep their `.py` files and gain
//     `pkg/__pycache__/mod.cpython-314.pyc` as *unchecked-hash* pycs (PEP 552), which
//     Python uses without stat-ing the source, while tracebacks and `inspect` still see
//     the source.
// Entries are written in a fixed order with a fixed timestamp and RECORD is rewritten,
// so the output is byte-for-byte reproducible. Called by `python build.py build`.
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");

const argv = process.argv.slice(2);
let keepSource = [];
const positional = [];
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === "--keep-source") keepSource = argv[++i].split(",").filter(Boolean);
  else positional.push(argv[i]);
}
const [inDir, outDir, ...wheels] = positional;
if (!inDir || !outDir || wheels.length === 0) {
  console.error("usage: node tools/compile_wheels.mjs IN_DIR OUT_DIR WHEEL... [--keep-source NAMES]");
  process.exit(2);
}

const { loadPyodide } = await import(path.join(root, "node_modules/pyodide/pyodide.mjs"));
const py = await loadPyodide({ indexURL: path.join(root, "node_modules/pyodide") + "/" });
const FS = py.FS;
FS.mkdirTree("/in");
FS.mkdirTree("/out");
FS.mount(FS.filesystems.NODEFS, { root: path.resolve(inDir) }, "/in");
FS.mount(FS.filesystems.NODEFS, { root: path.resolve(outDir) }, "/out");

py.globals.set("WHEELS", py.toPy(wheels));
py.globals.set("KEEP_SOURCE", py.toPy(keepSource));
try {
  py.runPython(String.raw`
import base64, hashlib, importlib.util, sys, zipfile
from importlib._bootstrap_external import _code_to_hash_pyc, _code_to_timestamp_pyc

SITE = f"/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages/"
TAG = sys.implementation.cache_tag            # e.g. cpython-314
EPOCH = (1980, 1, 1, 0, 0, 0)

def norm(name):
    return name.lower().replace("-", "_").replace(".", "_")

def record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"

def compile_source(name, source):
    # co_filename = where micropip installs the module, so tracebacks name real paths.
    return compile(source, SITE + name, "exec", dont_inherit=True, optimize=0)

def compile_wheel(wheel, keep_source):
    entries = {}          # archive name -> bytes
    record_name = None
    with zipfile.ZipFile("/in/" + wheel) as zin:
        for info in zin.infolist():
            if info.is_dir():
                continue
            name, data = info.filename, zin.read(info)
            if name.endswith(".dist-info/RECORD"):
                record_name = name
                continue
            top = name.split("/", 1)[0]
            is_module = name.endswith(".py") and not top.endswith((".dist-info", ".data"))
            if not is_module:
                entries[name] = data
                continue
            code = compile_source(name, data)
            if keep_source:
                entries[name] = data
                folder, _, leaf = name.rpartition("/")
                pyc = (folder + "/" if folder else "") + f"__pycache__/{leaf[:-3]}.{TAG}.pyc"
                entries[pyc] = bytes(_code_to_hash_pyc(code, importlib.util.source_hash(data), checked=False))
            else:
                entries[name + "c"] = bytes(_code_to_timestamp_pyc(code, 0, len(data)))
    if record_name is None:
        raise SystemExit(f"{wheel}: no .dist-info/RECORD, not a wheel?")
    lines = [record_line(n, d) for n, d in sorted(entries.items())]
    lines.append(f"{record_name},,")
    entries[record_name] = ("\n".join(lines) + "\n").encode()
    # dist-info last, as the wheel spec recommends.
    order = sorted(entries, key=lambda n: (n.split("/", 1)[0].endswith(".dist-info"), n))
    with zipfile.ZipFile("/out/" + wheel, "w") as zout:
        for n in order:
            info = zipfile.ZipInfo(n, EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zout.writestr(info, entries[n], compresslevel=9)

keep = {norm(k) for k in KEEP_SOURCE}
for w in WHEELS:
    compile_wheel(w, norm(w.split("-", 1)[0]) in keep)
    print(f"  compiled {w}")
`);
} catch (err) {
  console.error(String(err.message || err));
  process.exit(1);
}
