// Rebuild Pyodide's python_stdlib.zip for the site: the modules a boot imports are
// precompiled to bytecode by Pyodide itself, unused ones are left out.
//
// Usage: node tools/compile_stdlib.mjs JOB.json
//   JOB.json = {"src": "node_modules/pyodide/python_stdlib.zip", "dst": "out.zip",
//               "drop": ["pdb.py", "_pyrepl/", ...],
//               "wheels_dir": "...", "micropip": "micropip-….whl", "wheels": ["….whl", ...],
//               "extra_imports": ["ast", "json", ...]}
// Called by `python build.py build`, which caches the output.
//
// Pyodide 314's stdlib zip holds sources only, so every boot compiles ≈145 modules
// (≈4 MB of source) before Python is even ready, and more for each import after that. This
// script boots Pyodide with the original zip, does what the app's worker does (install the
// wheels with micropip, import SQLAlchemy, pydantic, jinja2, create an ORM session on
// SQLite, import the stdlib modules py_agent's sources name), and records which stdlib
// files got imported. Those become sourceless `.pyc` members (compiled here, so the magic
// number is the browser's, without column tables: PYTHONNODEBUGRANGES); the rest stay
// `.py`, so anything else still imports, just compiled on first use. Members are stored
// uncompressed (HTTP brotli/gzip then compresses the whole archive better).
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
const job = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const { loadPyodide } = await import(path.join(root, "node_modules/pyodide/pyodide.mjs"));
const py = await loadPyodide({
  indexURL: path.join(root, "node_modules/pyodide") + "/",
  stdLibURL: path.resolve(job.src),
  env: { HOME: "/home/pyodide", PYTHONNODEBUGRANGES: "1" },
});
py.setStdout({ batched: (s) => console.log(s) });
const FS = py.FS;
for (const dir of new Set([path.resolve(job.wheels_dir), path.dirname(path.resolve(job.dst))])) {
  FS.mkdirTree(dir);
  FS.mount(FS.filesystems.NODEFS, { root: dir }, dir);
}
await py.loadPackage(path.join(path.resolve(job.wheels_dir), job.micropip), { messageCallback: () => {} });
py.globals.set("JOB_JSON", JSON.stringify({ ...job, wheels_dir: path.resolve(job.wheels_dir), dst: path.resolve(job.dst) }));

try {
  await py.runPythonAsync(String.raw`
import importlib, json, os, sys, zipfile
from importlib._bootstrap_external import _code_to_timestamp_pyc

job = json.loads(JOB_JSON)
STDLIB = "/lib/python314.zip"
assert os.environ.get("PYTHONNODEBUGRANGES") == "1"
assert any(p == STDLIB for p in sys.path), sys.path

# 1. Do what a boot does.
import micropip
await micropip.install([f"emfs:{job['wheels_dir']}/{w}" for w in job["wheels"]], deps=False)
import sqlalchemy as sa
from sqlalchemy import orm
import pydantic, jinja2

class Base(orm.DeclarativeBase):
    pass

class Item(Base):
    __tablename__ = "item"
    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    name: orm.Mapped[str] = orm.mapped_column(sa.String(20))

engine = sa.create_engine("sqlite://")
Base.metadata.create_all(engine)
with orm.Session(engine) as session:
    session.add(Item(name="x"))
    session.commit()
    session.scalars(sa.select(Item).where(Item.name == "x")).all()

class Model(pydantic.BaseModel):
    name: str
    size: int = 0

Model.model_validate_json('{"name": "x"}').model_dump_json()
jinja2.Environment().from_string("{{ x }}").render(x=1)
for name in job["extra_imports"]:
    try:
        importlib.import_module(name)
    except Exception:
        pass

# 2. Which stdlib files are in use now.
booted = set()
for module in list(sys.modules.values()):
    f = getattr(module, "__file__", None) or ""
    if f.startswith(STDLIB + "/") and f.endswith(".py"):
        booted.add(f[len(STDLIB) + 1:])

# 3. Write the new zip.
EPOCH = (1980, 1, 1, 0, 0, 0)
drop = tuple(job["drop"])
compiled = kept = dropped = 0
tmp = job["dst"] + ".tmp"
with zipfile.ZipFile(STDLIB) as zin, zipfile.ZipFile(tmp, "w") as zout:   # = job["src"]
    for info in zin.infolist():
        name = info.filename
        if info.is_dir():
            continue
        if name.startswith(drop):
            dropped += 1
            continue
        data = zin.read(info)
        if name in booted:
            code = compile(data, f"{STDLIB}/{name}", "exec", dont_inherit=True)
            name, data = name + "c", bytes(_code_to_timestamp_pyc(code, 0, len(data)))
            compiled += 1
        else:
            kept += 1
        out = zipfile.ZipInfo(name, EPOCH)
        out.compress_type = zipfile.ZIP_STORED
        out.external_attr = 0o644 << 16
        zout.writestr(out, data)
os.replace(tmp, job["dst"])
print(f"  stdlib: {compiled} modules precompiled, {kept} files kept as they are, {dropped} left out "
      f"({os.path.getsize(job['dst']) / 1e6:.2f} MB stored)")
`);
} catch (err) {
  console.error(String(err.message || err).slice(-6000));
  process.exit(1);
}
