"""The runtime kit: everything of a site that does not depend on the app.

Pyodide's core (with a precompiled, trimmed standard library), the site's wheels
(SQLAlchemy, pydantic, jinja2, py_agent… compiled by Pyodide under Node, and merged into
``wheels/site-packages.zip`` for the boot), sql.js, the page's npm libraries and the page
itself (``web/app/``). Every site is this kit plus one app (:mod:`py_agent.site.builder`).

Where a kit comes from, first found wins:

1. ``PY_AGENT_KIT``: a kit folder made earlier (``python3 build.py kit --out DIR``);
2. the installed package: a release wheel of py-agent carries one in ``py_agent/site/kit/``
   (``python3 build.py wheel`` puts it there), so ``pip install py-agent`` is enough to
   build sites, without Node;
3. a checkout (an editable install): the kit is made from ``web/app/``, ``node_modules/``
   (``npm ci``) and PyPI, with Node, and cached in ``.cache/kit/`` by a hash of its inputs.

A kit folder holds ``kit.json`` (``{"format": "py-agent-kit", "key", "pyodide", "manifest"}``:
the part of ``wheels/manifest.json`` it knows), ``site/`` (the files) and ``tools/`` (the
Node script that compiles an app's wheel, run with the kit's own Pyodide).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import Log, SiteError, cache_dir, checkout_root, human, print_log, run, run_node_tool, sha256_bytes, sha256_file
from .wheels import (
    PYODIDE_VERSION, compile_wheels, install_order, pip_download_dir, wheel_name_version,
)

KIT_FORMAT = "py-agent-kit"

# Exact versions of everything the site installs in the browser (py_agent's runtime deps).
# Keep them in step with pyproject.toml: the build checks that they satisfy py_agent's
# requirements and each other's, and stops with the fix if not.
SITE_PINS = [
    "typing-extensions==4.16.0",
    "annotated-types==0.8.0",
    "typing-inspection==0.4.5",
    "pydantic-core==2.50.4",   # binary: the pyemscripten_2026_0_wasm32 wheel from PyPI
    "pydantic==2.14.3",
    "markupsafe==3.0.4",       # no wasm wheel on PyPI: built pure from its sdist (wheels.FROM_SDIST)
    "jinja2==3.1.6",
    "sqlalchemy==2.1.9",
]
MICROPIP_PIN = "micropip==0.11.1"
SITE_IMPORTS = ["sqlalchemy", "pydantic", "jinja2", "py_agent"]
# Every module name the site's packages install (an app may import these at import time).
PROVIDED_IMPORTS = frozenset({"typing_extensions", "annotated_types", "typing_inspection", "pydantic_core", "pydantic",
                              "markupsafe", "jinja2", "sqlalchemy", "py_agent", "micropip"})

# How wheels are repacked for the browser (see tools/compile_wheels.mjs): bytecode compiled
# by Pyodide itself; sources kept only for our own package (tracebacks, inspect); long
# docstrings cut to their first line (SQLAlchemy's pycs get ≈25% smaller); parts never used
# in a tab left out.
KEEP_SOURCE = {"py_agent"}
STRIP_DOCSTRINGS = {"sqlalchemy", "pydantic"}
DROP = {
    "sqlalchemy": ["sqlalchemy/testing/", "sqlalchemy/dialects/mysql/",
                   "sqlalchemy/dialects/mssql/", "sqlalchemy/dialects/oracle/"],
}
# py_agent's parts that never run in a tab: left out of the site bundle
# (wheels/site-packages.zip) and of the scan for the standard library modules to precompile.
# The wheels keep them (the Pyodide test run installs the wheels).
PY_AGENT_OFF_BROWSER = ["py_agent/testing/", "py_agent/chat/", "py_agent/server/", "py_agent/site/",
                        "py_agent/panel_ui/", "py_agent/cli.py", "py_agent/__main__.py", "py_agent/panel_app.py",
                        "py_agent/sandbox/process.py", "py_agent/database/postgres"]  # (postgres*.py: psycopg only)
BUNDLE_DROP = ["pydantic/v1/", "sqlalchemy/ext/mypy/"] + [
    p + suffix for p in PY_AGENT_OFF_BROWSER for suffix in (("",) if p.endswith("/") else ("", "c"))]
# Left out of python_stdlib.zip: tools for a terminal or a mail server, never used in a tab.
STDLIB_DROP = ["_pyrepl/", "pydoc.py", "pdb.py", "bdb.py", "doctest.py", "xmlrpc/", "imaplib.py",
               "poplib.py", "smtplib.py", "ftplib.py", "mailbox.py", "wsgiref/", "profile.py",
               "cProfile.py", "pstats.py", "tabnanny.py", "trace.py", "zipapp.py"]
STDLIB_VERSION = "1"     # bump when tools/compile_stdlib.mjs changes its output

PYODIDE_FILES = ["pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json"]
SQLJS_FILES = ["sql-wasm.js", "sql-wasm.wasm"]
# Browser libraries of the page, from npm (pinned in package.json), copied to vendor/.
# (file under node_modules, name under vendor/, {text: replacement} or None). The page loads
# markdown/highlighting when a model message first appears and the chart code only when a
# chart does, so none of it is fetched during boot.
VENDOR_FILES = [
    ("marked/lib/marked.esm.js", "marked.esm.js", None),
    ("dompurify/dist/purify.es.mjs", "purify.es.mjs", None),
    ("@highlightjs/cdn-assets/es/core.min.js", "highlight/core.min.js", None),
    ("@highlightjs/cdn-assets/es/languages/python.min.js", "highlight/python.min.js", None),
    ("@highlightjs/cdn-assets/es/languages/sql.min.js", "highlight/sql.min.js", None),
    ("vega/build/vega.min.js", "vega.min.js", None),
    ("vega-lite/build/vega-lite.min.js", "vega-lite.min.js", None),
    # An ES module with one bare import; the page loads vega.min.js (which exports these) first.
    ("vega-interpreter/build/vega-interpreter.js", "vega-interpreter.js",
     {"import { ascending, isString, DisallowedObjectProperties } from 'vega-util';":
      "const { ascending, isString, DisallowedObjectProperties } = globalThis.vega;"}),
]
# The checkout's Node scripts that run at build time.
NODE_TOOLS = ("compile_wheels.mjs", "compile_stdlib.mjs", "precompress.mjs")


@dataclass(frozen=True)
class Kit:
    """A kit folder (see the module's docstring)."""

    path: Path
    info: dict[str, Any]

    @property
    def site(self) -> Path:
        return self.path / "site"

    @property
    def manifest(self) -> dict[str, Any]:
        return dict(self.info["manifest"])

    @property
    def compiler(self) -> Path:
        return self.path / "tools" / "compile_wheels.mjs"

    @property
    def provided(self) -> dict[str, str]:
        """The packages a site has (normalised name → version): py_agent's and its dependencies."""
        return dict(wheel_name_version(w) for w in self.info["manifest"]["wheels"] + [self.info["manifest"]["micropip"]])

    @classmethod
    def open(cls, path: Path) -> Kit:
        try:
            info = json.loads((path / "kit.json").read_text())
        except (OSError, ValueError) as exc:
            raise SiteError(f"{path} is not a py-agent runtime kit ({exc})",
                            hint="make one with `python3 build.py kit --out DIR` in a py-agent checkout") from None
        if info.get("format") != KIT_FORMAT:
            raise SiteError(f"{path}/kit.json is not a py-agent kit", hint="point PY_AGENT_KIT at a kit folder")
        return cls(path, info)


def find_kit(*, log: Log = print_log) -> Kit:
    """The kit to build sites with (see the module's docstring for the order)."""
    if os.environ.get("PY_AGENT_KIT"):
        return Kit.open(Path(os.environ["PY_AGENT_KIT"]).expanduser().resolve())
    packaged = Path(__file__).resolve().parent / "kit"
    if (packaged / "kit.json").is_file():
        return Kit.open(packaged)
    root = checkout_root()
    if root is not None:
        return make_kit(root, log=log)
    raise SiteError(
        "this installation of py-agent has no browser runtime to build a site with",
        hint="install a release of py-agent from PyPI (its wheel includes the runtime), set PY_AGENT_KIT to a kit "
             "folder, or work from a checkout: git clone the project, `npm ci`, `pip install -e .`")


# --------------------------------------------------------------------------- making a kit (checkout)

@contextlib.contextmanager
def build_lock(cache: Path, log: Log = print_log) -> Iterator[None]:
    """Serialise builds: several people and tools share one work tree and one .cache/."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "build.lock", "w") as f:
        try:
            import fcntl
        except ImportError:      # not on POSIX: no lock
            yield
            return
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("another build is running; waiting for it…")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_node_modules(root: Path, *, force: bool = False, log: Log = print_log) -> None:
    """Run `npm ci` when node_modules is missing or older than package-lock.json."""
    for tool, fix in (("node", "install Node.js 20 or newer (e.g. `apt-get install -y nodejs npm`)"),
                      ("npm", "install npm (it ships with Node.js)")):
        if not shutil.which(tool):
            raise SiteError(f"`{tool}` was not found on PATH: building the runtime from a checkout needs Node.js", hint=fix)
    lock = root / "package-lock.json"
    if not lock.exists():
        raise SiteError("package-lock.json is missing", hint="run `npm install` once and commit it")
    node_modules = root / "node_modules"
    stamp = node_modules / ".py-agent-lock.sha256"
    want = sha256_file(lock)
    if not force and stamp.exists() and stamp.read_text().strip() == want and (node_modules / "pyodide" / "pyodide.mjs").exists():
        return
    log("installing npm packages (npm ci)…")
    run([shutil.which("npm") or "npm", "ci", "--no-audit", "--no-fund"], cwd=root, log=log, what="npm ci")
    stamp.write_text(want + "\n")


def py_agent_sources(root: Path) -> list[Path]:
    """The files that go into the py_agent wheel (for the cache key)."""
    package = root / "py_agent"
    files = [p for p in package.rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.suffix not in {".pyc", ".pyo"}
             and not p.relative_to(package).as_posix().startswith("site/kit/")]
    files += [p for p in (root / "pyproject.toml", root / "README.md", root / "LICENSE",
                          root / "setup.py", root / "setup.cfg", root / "MANIFEST.in") if p.exists()]
    return sorted(files)


def build_py_agent_wheel(root: Path, cache: Path, *, log: Log = print_log) -> Path:
    """Build the py_agent wheel with `pip wheel --no-deps` from a clean copy of the sources.

    Building from a temporary copy keeps build/ and *.egg-info out of the work tree (other
    tools may be using it at the same time). Cached by a hash of the sources.
    """
    import tempfile

    h = hashlib.sha256()
    for p in py_agent_sources(root):
        h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    out = cache / "py_agent" / h.hexdigest()[:16]
    found = list(out.glob("*.whl")) if out.exists() else []
    if found:
        return found[0]
    log("building the py_agent wheel (pip wheel --no-deps .)…")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "src"
        for p in py_agent_sources(root):
            target = src / p.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, target)
        if not (src / "README.md").exists():
            (src / "README.md").write_text("# py-agent\n")
        run([sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "--no-deps", "-w", tmp / "out", src],
            log=log, what="building the py_agent wheel")
        wheel = next((tmp / "out").glob("*.whl"))
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wheel, out / wheel.name)
        return out / wheel.name


def stdlib_imports_of_py_agent(root: Path) -> list[str]:
    """Standard-library modules named by `import` statements of py_agent's browser-side sources."""
    names = set()
    package = root / "py_agent"
    for path in package.rglob("*.py"):
        rel = "py_agent/" + path.relative_to(package).as_posix()
        if rel.startswith(tuple(PY_AGENT_OFF_BROWSER)):
            continue
        try:
            tree = ast.parse(path.read_bytes())
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return sorted(n for n in names if n.split(".")[0] in sys.stdlib_module_names)


def build_stdlib(root: Path, cache: Path, site_wheels: list[Path], micropip: Path, *, log: Log = print_log) -> Path:
    """python_stdlib.zip with the modules a boot imports precompiled (tools/compile_stdlib.mjs).

    Cached by the original zip, the third-party wheels and the stdlib modules py_agent
    imports, so editing py_agent does not redo it unless it imports a new stdlib module.
    """
    src = root / "node_modules" / "pyodide" / "python_stdlib.zip"
    third_party = [w for w in site_wheels if not w.name.startswith("py_agent-")]
    extra = stdlib_imports_of_py_agent(root)
    dropped = [n for n in extra if any((n.replace(".", "/") + suffix).startswith(tuple(STDLIB_DROP)) for suffix in ("/", ".py"))]
    if dropped:
        raise SiteError(f"py_agent imports {', '.join(dropped)}, which the site leaves out of the standard library",
                        hint="remove it from STDLIB_DROP in py_agent/site/kit.py")
    tool = root / "tools" / "compile_stdlib.mjs"
    key = sha256_bytes(json.dumps([sha256_file(src), [sha256_file(w) for w in third_party + [micropip]],
                                   extra, STDLIB_DROP, STDLIB_VERSION, sha256_file(tool)], sort_keys=True).encode())[:16]
    target = cache / "stdlib" / f"{key}-python_stdlib.zip"
    if target.exists():
        return target
    log(f"precompiling the standard library modules a boot imports (Pyodide {PYODIDE_VERSION} under Node)…")
    target.parent.mkdir(parents=True, exist_ok=True)
    job = {"src": str(src), "dst": str(target), "drop": STDLIB_DROP, "wheels_dir": str(third_party[0].parent),
           "micropip": micropip.name, "wheels": [w.name for w in third_party], "extra_imports": extra}
    run_node_tool(tool, job, log=log)
    return target


def build_site_bundle(wheels: list[Path], out: Path) -> dict[str, Any]:
    """What a boot fetches instead of installing wheels one by one (web/app/boot.js).

    * ``site-packages.zip``: every pure wheel merged into one stored zip that Python imports
      in place (zipimport), so nothing is unpacked at boot; its table of contents, read once,
      is also part of a memory snapshot, which is why a restored boot needs these exact bytes;
    * ``unpack``: the wheels holding compiled extensions (pydantic_core), which must be real
      files; the worker unpacks them (they are stored zips too) and loads their ``.so``
      before Python starts, so a snapshot finds them where it left them. (A site adds the
      app's own wheel here: its data files must be real files too.)

    Returns the manifest's ``boot`` section (``key`` is added by ``builder.seal_boot_key``).
    """
    binary, seen = [], set()
    target = out / "site-packages.zip"
    with zipfile.ZipFile(target, "w") as bundle:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as z:
                if any(n.endswith(".so") for n in z.namelist()):
                    binary.append(wheel.name)
                    continue
                for info in z.infolist():
                    member = info.filename
                    if member.endswith(".dist-info/RECORD"):
                        continue   # only installers read it
                    if "/__pycache__/" in member:   # zipimport only reads a pyc beside its source
                        folder, leaf = member.split("/__pycache__/")
                        member = f"{folder}/{leaf.split('.')[0]}.pyc"
                    if member.startswith(tuple(BUNDLE_DROP)):   # (after the rename: pycs are dropped too)
                        continue
                    if member in seen:
                        continue
                    seen.add(member)
                    entry = zipfile.ZipInfo(member, (1980, 1, 1, 0, 0, 0))
                    entry.external_attr = 0o644 << 16
                    bundle.writestr(entry, z.read(info))
    return {"zip": target.name, "unpack": binary}


def copy_pyodide(root: Path, site: Path, stdlib: Path) -> None:
    """Copy the Pyodide core from node_modules, with our rebuilt python_stdlib.zip."""
    src = root / "node_modules" / "pyodide"
    out = site / "pyodide"
    out.mkdir(parents=True, exist_ok=True)
    for name in PYODIDE_FILES:
        if not (src / name).exists():
            raise SiteError(f"node_modules/pyodide/{name} is missing", hint="run `npm ci`")
        shutil.copyfile(stdlib if name == "python_stdlib.zip" else src / name, out / name)


def copy_sqljs(root: Path, site: Path) -> None:
    out = site / "sqljs"
    out.mkdir(parents=True, exist_ok=True)
    for name in SQLJS_FILES:
        src = root / "node_modules" / "sql.js" / "dist" / name
        if not src.exists():
            raise SiteError(f"node_modules/sql.js/dist/{name} is missing", hint="run `npm ci`")
        shutil.copyfile(src, out / name)


def copy_vendor(root: Path, site: Path) -> None:
    """The page's npm libraries (VENDOR_FILES) in vendor/."""
    for src, name, replace in VENDOR_FILES:
        path = root / "node_modules" / src
        if not path.exists():
            raise SiteError(f"node_modules/{src} is missing", hint="run `npm ci`")
        target = site / "vendor" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not replace:
            shutil.copyfile(path, target)
            continue
        text = path.read_text()
        for old, new in replace.items():
            if old not in text:
                raise SiteError(f"node_modules/{src} no longer contains {old!r}", hint="update VENDOR_FILES in py_agent/site/kit.py")
            text = text.replace(old, new)
        target.write_text(text)


def copy_tree(src: Path, dst: Path) -> int:
    """Copy the files under src into dst (skipping caches and hidden files); return how many."""
    n = 0
    for p in sorted(src.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith("."):
            target = dst / p.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, target)
            n += 1
    return n


def kit_key(root: Path) -> str:
    """A hash of everything a kit is made from (so a change to any of them makes a new kit)."""
    h = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        h.update(label.encode() + b"\0" + data + b"\0")

    add("pins", json.dumps([SITE_PINS, MICROPIP_PIN, SITE_IMPORTS, sorted(KEEP_SOURCE), sorted(STRIP_DOCSTRINGS), DROP,
                            BUNDLE_DROP, STDLIB_DROP, STDLIB_VERSION, VENDOR_FILES, PYODIDE_VERSION, KIT_FORMAT]).encode())
    add("lock", (root / "package-lock.json").read_bytes())
    for p in [*py_agent_sources(root), *sorted((root / "web" / "app").rglob("*")), *[root / "tools" / t for t in NODE_TOOLS],
              Path(__file__)]:
        if p.is_file() and "__pycache__" not in p.parts:
            add(str(p.relative_to(root)) if p.is_relative_to(root) else p.name, p.read_bytes())
    return h.hexdigest()[:16]


def make_kit(root: Path, *, log: Log = print_log) -> Kit:
    """The kit of a checkout: cached in .cache/kit/<key>/, made when its inputs changed."""
    cache = cache_dir()
    ensure_node_modules(root, log=log)
    key = kit_key(root)
    folder = cache / "kit" / key
    if (folder / "kit.json").is_file():
        os.utime(folder)   # most recently used: kept by the pruning below
        return Kit.open(folder)
    with build_lock(cache, log):
        if (folder / "kit.json").is_file():   # made by whoever held the lock
            return Kit.open(folder)
        t0 = time.perf_counter()
        log("making the runtime kit (Pyodide, wheels, sql.js, the page)…")
        staging = cache / "kit" / f".staging-{key}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        site = staging / "site"
        wheels = site / "wheels"
        wheels.mkdir(parents=True)
        pypi = pip_download_dir(SITE_PINS + [MICROPIP_PIN], cache / "wheels" / "pypi", log=log)
        micropip_raw, site_raw = pypi[-1], pypi[:-1]
        ordered = install_order(site_raw + [build_py_agent_wheel(root, cache, log=log)])
        compiled = compile_wheels(ordered + [micropip_raw], cache / "wheels" / f"compiled-{PYODIDE_VERSION}",
                                  compiler=root / "tools" / "compile_wheels.mjs", keep_source=KEEP_SOURCE,
                                  strip_docstrings=STRIP_DOCSTRINGS, drop=DROP, log=log)
        for w in compiled:
            shutil.copyfile(w, wheels / w.name)
            log(f"  {w.name:70s} {human(w.stat().st_size):>9}")
        stdlib = build_stdlib(root, cache, compiled[:-1], compiled[-1], log=log)
        boot = build_site_bundle(compiled[:-1], wheels)
        copy_pyodide(root, site, stdlib)
        copy_sqljs(root, site)
        copy_vendor(root, site)
        n = copy_tree(root / "web" / "app", site)
        log(f"  the page: {n} file(s) from web/app/")
        (staging / "tools").mkdir()
        shutil.copyfile(root / "tools" / "compile_wheels.mjs", staging / "tools" / "compile_wheels.mjs")
        manifest = {
            "micropip": compiled[-1].name,
            "wheels": [w.name for w in compiled[:-1]],
            "imports": SITE_IMPORTS,
            "pyodide": PYODIDE_VERSION,
            "boot": boot,
            "sizes": {p.name: p.stat().st_size for p in [*compiled, wheels / boot["zip"]]},
        }
        info = {"format": KIT_FORMAT, "key": key, "pyodide": PYODIDE_VERSION, "made": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "manifest": manifest}
        (staging / "kit.json").write_text(json.dumps(info, indent=2) + "\n")
        staging.replace(folder)
        _prune(cache / "kit", keep=4)
        log(f"made the runtime kit {key} in {time.perf_counter() - t0:.1f} s")
        return Kit.open(folder)


def _prune(folder: Path, keep: int) -> None:
    """Remove all but the ``keep`` most recently used kits (sites hold hard links, not references)."""
    kits = sorted((p for p in folder.iterdir() if p.is_dir() and (p / "kit.json").is_file()),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    for old in kits[keep:]:
        shutil.rmtree(old, ignore_errors=True)
    for leftover in folder.glob(".staging-*"):
        if time.time() - leftover.stat().st_mtime > 3600:
            shutil.rmtree(leftover, ignore_errors=True)


def export_kit(kit: Kit, target: Path) -> None:
    """Copy a kit to ``target`` (e.g. into a release wheel's py_agent/site/kit/)."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(kit.path, target)


__all__ = ["BUNDLE_DROP", "KIT_FORMAT", "Kit", "MICROPIP_PIN", "PROVIDED_IMPORTS", "PYODIDE_FILES", "SITE_IMPORTS", "SITE_PINS", "VENDOR_FILES",
           "build_lock", "build_py_agent_wheel", "build_site_bundle", "ensure_node_modules", "export_kit", "find_kit",
           "make_kit", "py_agent_sources"]
