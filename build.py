#!/usr/bin/env python3
"""py-agent task runner: build the static site, serve it, run every test, print benchmarks.

    python build.py build            # web/dist/: Pyodide core, wheels, sql.js, the app, build.json
    python build.py serve [--port 8000] [--host 127.0.0.1] [--no-build] [--no-isolation]
    python build.py test             # installs what it needs, builds, runs all three suites
    python build.py bench            # core benchmark + browser boot benchmark

Standard library only; needs Python 3.11+ and Node 20+ (npm). Downloads come from PyPI and
npm only and are cached under .cache/ and node_modules/, so a re-build is offline and fast.

What `build` makes (web/dist/; the app and its service worker rely on this layout):
    pyodide/     pyodide.mjs, pyodide.asm.mjs, pyodide.asm.wasm, pyodide-lock.json and a
                 python_stdlib.zip whose boot-time modules are precompiled
    wheels/      manifest.json + the wheels, repacked with bytecode compiled by Pyodide itself
    sqljs/       sql-wasm.js + sql-wasm.wasm
    *            web/app/ copied to the root (index.html, JS modules, worker, css…)
    bench/       benchmark pages (not precached)
    build.json   {"version": content hash, "files": [every file to precache]}
plus `.br`/`.gz` beside every compressible file for tools/devserver.py to send. Node runs
Pyodide at build time (tools/compile_wheels.mjs, tools/compile_stdlib.mjs) and Brotli
(tools/precompress.mjs).
"""
from __future__ import annotations

import argparse
import contextlib
import email.parser
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# PY_AGENT_DIST lets several people (or helpers) build and test side by side in one tree.
DIST = Path(os.environ["PY_AGENT_DIST"]).resolve() if os.environ.get("PY_AGENT_DIST") else ROOT / "web" / "dist"
APP = ROOT / "web" / "app"
BENCH_PAGES = ROOT / "benchmarks" / "bench"
CACHE = ROOT / ".cache"
NODE_MODULES = ROOT / "node_modules"
TOOLS = ROOT / "tools"

PYODIDE_VERSION = "314.0.7"
# What Pyodide 314 is, for pip: the platform tag of its binary wheels, its Python and ABI.
PYODIDE_PLATFORM = "pyemscripten_2026_0_wasm32"
PYODIDE_PYTHON = "3.14"
PYODIDE_ABI = "cp314"
# Marker environment of Pyodide 314, to check that the pins below satisfy every requirement.
PYODIDE_MARKERS = {
    "sys_platform": "emscripten", "platform_system": "Emscripten", "platform_machine": "wasm32",
    "os_name": "posix", "python_version": "3.14", "python_full_version": "3.14.2",
    "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": "",
}

# Exact versions of everything the site installs in the browser (py_agent's runtime deps).
# Keep them in step with pyproject.toml: the build checks that they satisfy py_agent's
# requirements and each other's, and stops with the fix if not.
SITE_PINS = [
    "typing-extensions==4.16.0",
    "annotated-types==0.8.0",
    "typing-inspection==0.4.5",
    "pydantic-core==2.50.4",   # binary: the pyemscripten_2026_0_wasm32 wheel from PyPI
    "pydantic==2.14.3",
    "markupsafe==3.0.4",       # no wasm wheel on PyPI: built pure from its sdist (see below)
    "jinja2==3.1.6",
    "sqlalchemy==2.1.9",
]
MICROPIP_PIN = "micropip==0.11.1"
# Extra pure wheels for running the pure-Python tests inside Pyodide under Node.
TEST_PINS = ["iniconfig==2.3.1", "packaging==26.3", "pluggy==1.7.0", "pygments==2.21.0", "pytest==9.2.0"]
FROM_SDIST = {"markupsafe"}
SITE_IMPORTS = ["sqlalchemy", "pydantic", "jinja2", "py_agent"]

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
COMPILER_VERSION = "4"   # bump when tools/compile_wheels.mjs changes its output
# Left out of python_stdlib.zip: tools for a terminal or a mail server, never used in a tab.
STDLIB_DROP = ["_pyrepl/", "pydoc.py", "pdb.py", "bdb.py", "doctest.py", "xmlrpc/", "imaplib.py",
               "poplib.py", "smtplib.py", "ftplib.py", "mailbox.py", "wsgiref/", "profile.py",
               "cProfile.py", "pstats.py", "tabnanny.py", "trace.py", "zipapp.py"]
STDLIB_VERSION = "1"     # bump when tools/compile_stdlib.mjs changes its output

PYODIDE_FILES = ["pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip",
                 "pyodide-lock.json"]
SQLJS_FILES = ["sql-wasm.js", "sql-wasm.wasm"]
COMPRESSIBLE = {".wasm", ".mjs", ".js", ".json", ".zip", ".whl", ".css", ".html", ".svg",
                ".txt", ".map", ".ico", ".webmanifest"}
CHROMIUM = "/usr/bin/chromium"


class BuildError(Exception):
    """A failure with a message that says what to do."""


# --------------------------------------------------------------------------- helpers

def log(msg: str) -> None:
    print(msg, flush=True)


def human(n: float) -> str:
    """Bytes as a short human string."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} GB"


def run(cmd: list[str], *, cwd: Path = ROOT, env: dict | None = None, check: bool = True,
        quiet: bool = False) -> subprocess.CompletedProcess:
    """Run a command, echoing it; raise BuildError if it fails and check is set."""
    log("  $ " + " ".join(str(c) for c in cmd))
    kw = {"capture_output": True, "text": True} if quiet else {}
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, **kw)
    if check and proc.returncode != 0:
        if quiet:
            sys.stdout.write(proc.stdout[-4000:])
            sys.stderr.write(proc.stderr[-4000:])
        raise BuildError(f"command failed with exit code {proc.returncode}: {' '.join(map(str, cmd))}")
    return proc


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()



def run_node_tool(script: str, job: object) -> None:
    """Run ``tools/<script>`` under Node with its job description in a temporary JSON file."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(job, f)
    try:
        run(["node", TOOLS / script, f.name])
    finally:
        os.unlink(f.name)

def norm_name(name: str) -> str:
    """PEP 503 normalised project name, with underscores (as in wheel file names)."""
    return name.lower().replace("-", "_").replace(".", "_")


def wheel_name_version(filename: str) -> tuple[str, str]:
    parts = Path(filename).name.split("-")
    return norm_name(parts[0]), parts[1]


def pin_parts(pin: str) -> tuple[str, str]:
    name, version = pin.split("==")
    return norm_name(name), version


def need_tool(name: str, fix: str) -> str:
    path = shutil.which(name)
    if not path:
        raise BuildError(f"`{name}` was not found on PATH. {fix}")
    return path


# --------------------------------------------------------------------------- node modules

def ensure_node_modules(force: bool = False) -> None:
    """Run `npm ci` when node_modules is missing or older than package-lock.json."""
    need_tool("node", "Install Node.js 20 or newer (e.g. `apt-get install -y nodejs npm`).")
    npm = need_tool("npm", "Install npm (it ships with Node.js).")
    lock = ROOT / "package-lock.json"
    if not lock.exists():
        raise BuildError("package-lock.json is missing: run `npm install` once and commit it.")
    stamp = NODE_MODULES / ".py-agent-lock.sha256"
    want = sha256_file(lock)
    if not force and stamp.exists() and stamp.read_text().strip() == want \
            and (NODE_MODULES / "pyodide" / "pyodide.mjs").exists():
        return
    log("installing npm packages (npm ci)…")
    run([npm, "ci", "--no-audit", "--no-fund"])
    stamp.write_text(want + "\n")


# --------------------------------------------------------------------------- Pyodide core

def copy_pyodide(dist: Path, stdlib: Path) -> None:
    """Copy the Pyodide core from node_modules, with our rebuilt python_stdlib.zip."""
    src = NODE_MODULES / "pyodide"
    out = dist / "pyodide"
    out.mkdir(parents=True, exist_ok=True)
    for name in PYODIDE_FILES:
        if not (src / name).exists():
            raise BuildError(f"node_modules/pyodide/{name} is missing: run `npm ci`.")
        shutil.copyfile(stdlib if name == "python_stdlib.zip" else src / name, out / name)


def stdlib_imports_of_py_agent() -> list[str]:
    """Standard-library modules named by `import` statements in py_agent's sources."""
    import ast
    names = set()
    for path in (ROOT / "py_agent").rglob("*.py"):
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


def build_stdlib(site_wheels: list[Path], micropip: Path) -> Path:
    """python_stdlib.zip with the modules a boot imports precompiled (tools/compile_stdlib.mjs).

    Cached by the original zip, the third-party wheels and the stdlib modules py_agent
    imports, so editing py_agent does not redo it unless it imports a new stdlib module.
    """
    src = NODE_MODULES / "pyodide" / "python_stdlib.zip"
    third_party = [w for w in site_wheels if not w.name.startswith("py_agent-")]
    extra = stdlib_imports_of_py_agent()
    dropped = [n for n in extra if any((n.replace(".", "/") + suffix).startswith(tuple(STDLIB_DROP))
                                       for suffix in ("/", ".py"))]
    if dropped:
        raise BuildError(f"py_agent imports {', '.join(dropped)}, which the site leaves out of the "
                         "standard library: remove it from STDLIB_DROP in build.py")
    key = sha256_bytes(json.dumps([sha256_file(src), [sha256_file(w) for w in third_party + [micropip]],
                                   extra, STDLIB_DROP, STDLIB_VERSION,
                                   sha256_file(TOOLS / "compile_stdlib.mjs")], sort_keys=True).encode())[:16]
    target = CACHE / "stdlib" / f"{key}-python_stdlib.zip"
    if target.exists():
        return target
    log(f"precompiling the standard library modules a boot imports (Pyodide {PYODIDE_VERSION} under Node)…")
    target.parent.mkdir(parents=True, exist_ok=True)
    wheels_dir = third_party[0].parent
    job = {"src": str(src), "dst": str(target), "drop": STDLIB_DROP, "wheels_dir": str(wheels_dir),
           "micropip": micropip.name, "wheels": [w.name for w in third_party], "extra_imports": extra}
    run_node_tool("compile_stdlib.mjs", job)
    return target


# --------------------------------------------------------------------------- wheels

def pip_download_dir(pins: list[str], dest: Path) -> list[Path]:
    """The wheels for `pins` in `dest`, downloading the missing ones for Pyodide's platform."""
    dest.mkdir(parents=True, exist_ok=True)
    have = {wheel_name_version(p.name): p for p in dest.glob("*.whl")}
    missing = [pin for pin in pins if pin_parts(pin) not in have and pin_parts(pin)[0] not in FROM_SDIST]
    if missing:
        log(f"downloading wheels from PyPI: {', '.join(missing)}…")
        run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
             "--only-binary=:all:", "--platform", PYODIDE_PLATFORM, "--platform", "any",
             "--python-version", PYODIDE_PYTHON, "--implementation", "cp",
             "--abi", PYODIDE_ABI, "--abi", "abi3", "--abi", "none", "-d", dest, *missing], quiet=True)
        have = {wheel_name_version(p.name): p for p in dest.glob("*.whl")}
        for pin in missing:
            if pin_parts(pin) in have:
                log(f"  saved {have[pin_parts(pin)].name} ({human(have[pin_parts(pin)].stat().st_size)})")
    for pin in pins:
        if pin_parts(pin)[0] in FROM_SDIST and pin_parts(pin) not in have:
            build_pure_from_sdist(pin, dest)
            have = {wheel_name_version(p.name): p for p in dest.glob("*.whl")}
    result = []
    for pin in pins:
        if pin_parts(pin) not in have:
            raise BuildError(f"no wheel for {pin} in {dest} after downloading; check the pin.")
        result.append(have[pin_parts(pin)])
    return result


def build_pure_from_sdist(pin: str, dest: Path) -> Path:
    """Build a py3-none-any wheel of a package whose C speedups are optional (markupsafe).

    MarkupSafe's setup.py has no switch to skip its C extension, so the unpacked sdist's
    `supports_speedups = ...` line is rewritten to False before `pip wheel`; markupsafe then
    falls back to its pure-Python implementation, which is what Pyodide can run.
    """
    log(f"building a pure-Python wheel of {pin} from its sdist…")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
             "--no-binary=:all:", "-d", tmp / "sdist", pin], quiet=True)
        sdist = next((tmp / "sdist").iterdir())
        shutil.unpack_archive(sdist, tmp / "src")
        src = next((tmp / "src").iterdir())
        setup_py = src / "setup.py"
        text = setup_py.read_text()
        marker = "supports_speedups = platform.python_implementation() not in"
        if marker not in text:
            raise BuildError(f"{sdist.name}: setup.py no longer has `{marker}`; update "
                             "build_pure_from_sdist() in build.py to switch the C extension off.")
        setup_py.write_text(text.replace(marker, "supports_speedups = False and None not in"))
        run([sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "--no-deps",
             "-w", tmp / "out", src], quiet=True)
        wheel = next((tmp / "out").glob("*.whl"))
        if not wheel.name.endswith("-py3-none-any.whl"):
            raise BuildError(f"{wheel.name} is not a pure wheel; the C speedups were not disabled.")
        shutil.copyfile(wheel, dest / wheel.name)
        return dest / wheel.name


def py_agent_sources() -> list[Path]:
    """The files that go into the py_agent wheel (for the cache key)."""
    files = [p for p in (ROOT / "py_agent").rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.suffix not in {".pyc", ".pyo"}]
    files += [p for p in (ROOT / "pyproject.toml", ROOT / "README.md", ROOT / "LICENSE",
                          ROOT / "setup.py", ROOT / "setup.cfg", ROOT / "MANIFEST.in") if p.exists()]
    return sorted(files)


def build_py_agent_wheel() -> Path:
    """Build the py_agent wheel with `pip wheel --no-deps` from a clean copy of the sources.

    Building from a temporary copy keeps build/ and *.egg-info out of the work tree (other
    tools may be using it at the same time). Cached by a hash of the sources.
    """
    h = hashlib.sha256()
    for p in py_agent_sources():
        h.update(str(p.relative_to(ROOT)).encode() + b"\0" + p.read_bytes() + b"\0")
    key = h.hexdigest()[:16]
    out = CACHE / "py_agent" / key
    found = list(out.glob("*.whl")) if out.exists() else []
    if found:
        return found[0]
    log("building the py_agent wheel (pip wheel --no-deps .)…")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "src"
        src.mkdir()
        for p in py_agent_sources():
            target = src / p.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, target)
        if not (src / "README.md").exists():
            log("  note: README.md does not exist yet; building with a placeholder")
            (src / "README.md").write_text("# py-agent\n")
        run([sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "--no-deps",
             "-w", tmp / "out", src], quiet=True)
        wheel = next((tmp / "out").glob("*.whl"))
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wheel, out / wheel.name)
        return out / wheel.name


def wheel_metadata(path: Path) -> email.message.Message:
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        return email.parser.BytesParser().parsebytes(z.read(name))


def install_order(wheels: list[Path]) -> list[Path]:
    """Check the wheels satisfy each other's requirements under Pyodide; dependencies first.

    Uses pip's vendored `packaging` to evaluate markers and version specifiers (pip is
    needed for the build anyway). Raises BuildError naming the missing or wrong pin.
    """
    try:
        from pip._vendor.packaging.requirements import Requirement
        from pip._vendor.packaging.version import Version
    except ImportError:   # pragma: no cover - pip without vendored packaging
        log("  note: cannot import pip's packaging; skipping the requirement check")
        return wheels
    by_name = {wheel_name_version(w.name)[0]: w for w in wheels}
    deps: dict[str, list[str]] = {}
    problems = []
    for name, wheel in by_name.items():
        deps[name] = []
        for line in wheel_metadata(wheel).get_all("Requires-Dist") or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate(PYODIDE_MARKERS):
                continue
            dep = norm_name(req.name)
            if dep not in by_name:
                problems.append(f"{name} requires `{line}` but build.py has no pin for it: add it to SITE_PINS")
                continue
            version = Version(wheel_name_version(by_name[dep].name)[1])
            if not req.specifier.contains(version, prereleases=True):
                problems.append(f"{name} requires `{line}` but SITE_PINS has {dep}=={version}")
            deps[name].append(dep)
    if problems:
        raise BuildError("the pinned wheels do not fit together:\n  " + "\n  ".join(problems))
    order: list[str] = []

    def visit(n: str, stack: tuple = ()) -> None:
        if n in order or n in stack:
            return
        for d in deps[n]:
            visit(d, stack + (n,))
        order.append(n)

    for name in by_name:
        visit(name)
    return [by_name[n] for n in order]


def compile_wheels(wheels: list[Path], out_dir: Path) -> list[Path]:
    """Repack wheels with bytecode compiled by Pyodide under Node (cached per input wheel)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs, results = [], []
    for wheel in wheels:
        name = wheel_name_version(wheel.name)[0]
        options = {"keep_source": name in KEEP_SOURCE, "strip_docstrings": name in STRIP_DOCSTRINGS,
                   "drop": DROP.get(name, [])}
        # The compiler script's own hash is part of the key, so editing it recompiles
        # (a stale cached wheel once broke `import sqlalchemy` in Pyodide).
        key = sha256_bytes(json.dumps([sha256_file(wheel), options, COMPILER_VERSION,
                                       sha256_file(TOOLS / "compile_wheels.mjs"),
                                       PYODIDE_VERSION], sort_keys=True).encode())
        target = out_dir / wheel.name
        stamp = out_dir / (wheel.name + ".key")
        if not (target.exists() and stamp.exists() and stamp.read_text() == key):
            jobs.append({"src": str(wheel), "dst": str(target), "stamp": str(stamp), "key": key, **options})
        results.append(target)
    if jobs:
        log(f"compiling {len(jobs)} wheel(s) to .pyc with Pyodide {PYODIDE_VERSION} under Node…")
        run_node_tool("compile_wheels.mjs", jobs)
        for job in jobs:
            Path(job["stamp"]).write_text(job["key"])
    return results


def prepare_wheels(dist: Path) -> tuple[dict, Path]:
    """Put the site's wheels in dist/wheels/, write manifest.json, build the stdlib zip.

    Returns the manifest and the path of the rebuilt python_stdlib.zip.
    """
    pypi = pip_download_dir(SITE_PINS + [MICROPIP_PIN], CACHE / "wheels" / "pypi")
    micropip_raw, site_raw = pypi[-1], pypi[:-1]
    ours = build_py_agent_wheel()
    ordered = install_order(site_raw + [ours])
    compiled = compile_wheels(ordered + [micropip_raw], CACHE / "wheels" / f"compiled-{PYODIDE_VERSION}")
    out = dist / "wheels"
    out.mkdir(parents=True, exist_ok=True)
    for w in compiled:
        shutil.copyfile(w, out / w.name)
    stdlib = build_stdlib(compiled[:-1], compiled[-1])
    manifest = {
        "micropip": compiled[-1].name,
        "wheels": [w.name for w in compiled[:-1]],
        "imports": SITE_IMPORTS,
        "pyodide": PYODIDE_VERSION,
        "sizes": {w.name: w.stat().st_size for w in compiled},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest, stdlib


def prepare_test_wheels() -> list[Path]:
    """Pure wheels for pytest inside Pyodide, listed in .cache/test-wheels/manifest.json."""
    dest = CACHE / "test-wheels"
    wheels = pip_download_dir(TEST_PINS, dest)
    (dest / "manifest.json").write_text(json.dumps({"wheels": [w.name for w in wheels]}, indent=2) + "\n")
    return wheels


# --------------------------------------------------------------------------- other assets

def copy_sqljs(dist: Path) -> None:
    out = dist / "sqljs"
    out.mkdir(parents=True, exist_ok=True)
    for name in SQLJS_FILES:
        src = NODE_MODULES / "sql.js" / "dist" / name
        if not src.exists():
            raise BuildError(f"node_modules/sql.js/dist/{name} is missing: run `npm ci`.")
        shutil.copyfile(src, out / name)


def copy_tree(src: Path, dst: Path) -> int:
    """Copy the files under src into dst (skipping caches); return how many."""
    n = 0
    for p in sorted(src.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith("."):
            target = dst / p.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, target)
            n += 1
    return n


def precompress(dist: Path) -> None:
    """Write .gz (Python) and .br (Node's zlib, quality 11) beside the large assets.

    Both are cached by content hash, so only new or changed files cost time. A variant is
    kept only if it saves at least 5%.
    """
    cache = CACHE / "compress"
    cache.mkdir(parents=True, exist_ok=True)
    todo_br = []
    candidates = [p for p in sorted(dist.rglob("*"))
                  if p.is_file() and p.suffix in COMPRESSIBLE and p.stat().st_size >= 1024]
    for p in candidates:
        digest = sha256_file(p)
        gz = cache / f"{digest}.gz"
        if not gz.exists():
            data = p.read_bytes()
            tmp = gz.with_suffix(".tmp")
            tmp.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
            tmp.replace(gz)
        br = cache / f"{digest}.br"
        if not br.exists():
            todo_br.append({"src": str(p), "dst": str(br)})
    if todo_br:
        total = sum(Path(j["src"]).stat().st_size for j in todo_br)
        log(f"brotli-compressing {len(todo_br)} file(s), {human(total)} (cached afterwards)…")
        run_node_tool("precompress.mjs", todo_br)
    for p in candidates:
        digest = sha256_file(p)
        size = p.stat().st_size
        for ext in (".gz", ".br"):
            variant = cache / f"{digest}{ext}"
            if variant.exists() and variant.stat().st_size <= 0.95 * size:
                shutil.copyfile(variant, p.with_name(p.name + ext))


def write_build_json(dist: Path) -> dict:
    """build.json: a content hash of the site and every file the service worker should precache."""
    files = []
    h = hashlib.sha256()
    for p in sorted(dist.rglob("*")):
        rel = p.relative_to(dist).as_posix()
        if not p.is_file() or rel == "build.json" or p.suffix in {".gz", ".br"} or rel.startswith("bench/"):
            continue
        files.append(rel)
        h.update(rel.encode() + b"\0" + sha256_file(p).encode() + b"\0")
    info = {"version": h.hexdigest()[:16], "pyodide": PYODIDE_VERSION, "files": files}
    (dist / "build.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def dist_report(dist: Path) -> None:
    """Sizes of the site: raw, and as sent with brotli where a .br exists."""
    raw = sent = 0
    for p in dist.rglob("*"):
        if p.is_file() and p.suffix not in {".gz", ".br"} and not p.relative_to(dist).as_posix().startswith("bench/"):
            size = p.stat().st_size
            raw += size
            br = p.with_name(p.name + ".br")
            sent += br.stat().st_size if br.exists() else size
    log(f"  site: {human(raw)} on disk, {human(sent)} if every file is fetched with brotli")


# --------------------------------------------------------------------------- commands

def build(args: argparse.Namespace | None = None) -> dict:
    """Build web/dist/ from scratch (heavy steps are cached)."""
    t0 = time.perf_counter()
    with build_lock():
        return _build(t0)


@contextlib.contextmanager
def build_lock():
    """Serialise builds: several people and tools share one work tree and one .cache/."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "build.lock", "w") as f:
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


def _build(t0: float) -> dict:
    log("building web/dist/…")
    ensure_node_modules()
    for leftover in list(CACHE.glob("dist-staging-*")) + list(CACHE.glob("dist-old-*")):
        shutil.rmtree(leftover, ignore_errors=True)   # from an interrupted build (we hold the lock)
    staging = CACHE / f"dist-staging-{os.getpid()}"
    staging.mkdir(parents=True)
    log("preparing wheels…")
    manifest, stdlib = prepare_wheels(staging)
    for w in manifest["wheels"] + [manifest["micropip"]]:
        log(f"  {w:70s} {human(manifest['sizes'][w]):>9}")
    log("copying the Pyodide core…")
    copy_pyodide(staging, stdlib)
    prepare_test_wheels()
    log("copying sql.js…")
    copy_sqljs(staging)
    if APP.is_dir():
        n = copy_tree(APP, staging)
        log(f"copying the app: {n} file(s) from web/app/")
    else:
        log("note: web/app/ does not exist yet; the site has no index.html")
    if BENCH_PAGES.is_dir():
        copy_tree(BENCH_PAGES, staging / "bench")
    precompress(staging)
    info = write_build_json(staging)
    # Swap directories with two renames, so a server running on web/dist/ barely notices.
    old = CACHE / f"dist-old-{os.getpid()}"
    DIST.parent.mkdir(parents=True, exist_ok=True)
    if DIST.exists():
        DIST.replace(old)
    staging.replace(DIST)
    shutil.rmtree(old, ignore_errors=True)
    dist_report(DIST)
    log(f"built web/dist/ (version {info['version']}, {len(info['files'])} files) "
        f"in {time.perf_counter() - t0:.1f} s")
    return info


def serve(args: argparse.Namespace) -> None:
    if not args.no_build:
        build()
    sys.path.insert(0, str(TOOLS))
    import devserver
    devserver.serve(DIST, host=args.host, port=args.port, isolation=not args.no_isolation)


def ensure_chromium() -> None:
    """Install Debian's chromium when /usr/bin/chromium is missing (only possible as root)."""
    if Path(CHROMIUM).exists():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BuildError(f"{CHROMIUM} is missing: install it with `sudo apt-get install -y chromium`.")
    log("installing chromium from Debian (apt-get)…")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update"], env=env)
    run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"], env=env)


def ensure_postgresql() -> None:
    """Install Debian's PostgreSQL server when its binaries are missing (only possible as root).

    The tests start and remove their own throwaway cluster (py_agent.testing.PostgresCluster).
    """
    sys.path.insert(0, str(ROOT))
    from py_agent.testing.postgres import find_pg_bin
    if find_pg_bin() is not None:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BuildError("PostgreSQL's server binaries are missing: install them with "
                         "`sudo apt-get install -y postgresql`.")
    log("installing postgresql from Debian (apt-get)…")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update"], env=env)
    # The package's own cluster is not needed (the tests make their own), so do not start it.
    run(["apt-get", "install", "-y", "--no-install-recommends", "postgresql"], env=env)


def test(args: argparse.Namespace) -> int:
    """Install what is needed, build, then run the three suites; non-zero if any fails."""
    results: list[tuple[str, str]] = []

    def step(name: str, fn) -> bool:
        log(f"\n== {name}")
        t0 = time.perf_counter()
        try:
            rc = fn()
        except BuildError as e:
            log(f"error: {e}")
            rc = 1
        except Exception:   # a bug in a step must still end in a summary and a failure
            traceback.print_exc()
            rc = 1
        took = f"{time.perf_counter() - t0:.1f} s"
        if rc == "skipped":
            results.append((name, "SKIPPED"))
        else:
            results.append((name, f"{'PASSED' if rc == 0 else 'FAILED'} ({took}{'' if rc == 0 else f', exit {rc}'})"))
        return rc == 0 or rc == "skipped"

    def setup() -> int:
        run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", "-e", ".[dev]"])
        ensure_node_modules()
        ensure_chromium()
        ensure_postgresql()
        return 0

    def do_build() -> int:
        build()
        return 0

    def pytest_cpython() -> int:
        # PostgreSQL tests must run here, not be skipped: the fixture starts its own cluster.
        env = dict(os.environ, PY_AGENT_REQUIRE_POSTGRES="1")
        rc = run([sys.executable, "-m", "pytest", "-q"], env=env, check=False).returncode
        if rc == 5:
            log("pytest collected no tests: that counts as a failure")
        return rc

    def pytest_pyodide() -> int:
        return run(["node", "--experimental-wasm-stack-switching",
                    ROOT / "tests" / "pyodide" / "run_pytest.mjs"], check=False).returncode

    def playwright() -> int | str:
        if not (ROOT / "playwright.config.ts").exists():
            log("playwright.config.ts does not exist yet: skipping the browser tests")
            return "skipped"
        env = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
        return run(["npx", "--no-install", "playwright", "test"], env=env, check=False).returncode

    ok = step("setup (pip install -e .[dev], npm ci, chromium, postgresql)", setup) and step("build", do_build)
    if ok:
        step("pytest on CPython", pytest_cpython)
        step("pytest inside Pyodide (Node)", pytest_pyodide)
        step("Playwright (Chromium)", playwright)
    log("\n== summary")
    for name, outcome in results:
        log(f"  {name:50s} {outcome}")
    failed = [n for n, o in results if o.startswith("FAILED")]
    log("all suites passed" if ok and not failed else f"FAILED: {', '.join(failed) or 'setup'}")
    return 0 if ok and not failed else 1


def build_bench_extras(dist: Path) -> None:
    """Bench-only files under dist/bench/ (never in build.json), for comparisons:

    * stock_python_stdlib.zip: Pyodide's own stdlib zip, for a bare loadPyodide() of stock
      Pyodide;
    * site-packages.zip + bundle.json: every pure wheel of the site merged into one stored
      zip that Python imports in place (zipimport) instead of installing, with the wheels
      that hold compiled extensions listed separately (they must be installed).
    """
    bench = dist / "bench"
    bench.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(NODE_MODULES / "pyodide" / "python_stdlib.zip", bench / "stock_python_stdlib.zip")
    manifest = json.loads((dist / "wheels" / "manifest.json").read_text())
    binary, seen = [], set()
    with zipfile.ZipFile(bench / "site-packages.zip", "w") as out:
        for name in manifest["wheels"]:
            with zipfile.ZipFile(dist / "wheels" / name) as z:
                if any(n.endswith(".so") for n in z.namelist()):
                    binary.append(name)
                    continue
                for info in z.infolist():
                    member = info.filename
                    if "/__pycache__/" in member:   # zipimport only reads pycs beside the source
                        folder, leaf = member.split("/__pycache__/")
                        member = f"{folder}/{leaf.split('.')[0]}.pyc"
                    if member in seen:
                        continue
                    seen.add(member)
                    entry = zipfile.ZipInfo(member, (1980, 1, 1, 0, 0, 0))
                    out.writestr(entry, z.read(info))
    (bench / "bundle.json").write_text(json.dumps({"zip": "site-packages.zip", "wheels": binary}) + "\n")
    precompress(bench)


def bench(args: argparse.Namespace) -> int:
    """Print benchmark figures: the core benchmark, then the browser boot benchmark."""
    rc = 0
    core = ROOT / "benchmarks" / "core.py"
    log("== core benchmark (benchmarks/core.py)")
    if core.exists():
        rc |= run([sys.executable, core], check=False).returncode
    else:
        log("benchmarks/core.py does not exist yet: skipped")
    if not args.no_build:
        build()
    build_bench_extras(DIST)
    ensure_chromium()
    log("\n== browser boot benchmark (benchmarks/browser_boot.mjs)")
    cmd = ["node", ROOT / "benchmarks" / "browser_boot.mjs", "--runs", str(args.runs)]
    rc |= run(cmd, check=False).returncode
    return rc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build the static site in web/dist/")
    p = sub.add_parser("serve", help="build, then serve web/dist/ on localhost")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--no-build", action="store_true", help="serve web/dist/ as it is")
    p.add_argument("--no-isolation", action="store_true", help="no COOP/COEP/CORP headers")
    sub.add_parser("test", help="install what is needed, build, run every test suite")
    p = sub.add_parser("bench", help="print benchmark figures")
    p.add_argument("--no-build", action="store_true", help="use web/dist/ as it is")
    p.add_argument("--runs", type=int, default=3, help="runs per browser measurement (median)")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            build(args)
            return 0
        if args.command == "serve":
            serve(args)
            return 0
        if args.command == "test":
            return test(args)
        return bench(args)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
