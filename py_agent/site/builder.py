"""``py-agent build APP --out DIR``: a self-contained static site for one app.

The site is the runtime kit (:mod:`py_agent.site.kit`: Pyodide, the site's wheels, sql.js,
the page) plus the app:

* ``wheels/<app>-0+site.<hash>-py3-none-any.whl``: the app's module (file or package, with
  the sibling modules it imports) and ``_py_agent_site/`` (its ``DATA`` file and recorded
  demo, and ``site.json`` naming them), unpacked by the page before Python starts;
* the app's ``allowed_packages`` as pure wheels, installed the first time model code
  imports one (``wheels/manifest.json`` → ``on_demand``);
* ``app.json`` (title, description, suggestions, tools, enums: what a page or an embedding
  shows before Python has started), and ``index.html`` with the same;
* the headers: ``_headers`` for Netlify/Cloudflare Pages, and the service worker's copy
  (``sw-headers.js``) for hosts that send none;
* ``local-servers.json`` (what the page says when a local model server cannot be reached);
* ``build.json`` (what the service worker keeps for offline use) and every file's hash in
  ``sw.js``.

Nothing is written to DIR until the whole site is ready: it is built beside DIR and
swapped in with two renames. A broken app (syntax error, no Base, a seed that raises, an
import the browser does not have, a package with no wheel for the browser) stops the
build with a message naming the file and line, and DIR stays as it was.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import Log, SiteError, cache_dir, checkout_root, human, link_or_copy, node, print_log, run_node_tool, sha256_file
from .headers import SHARED_SCRIPTS, headers_file, headers_for
from .kit import PROVIDED_IMPORTS, PYODIDE_FILES, Kit, find_kit
from .page import app_page
from .wheels import compile_wheels, norm_name, resolve_on_demand, top_level_names, write_wheel

COMPRESSIBLE = {".wasm", ".mjs", ".js", ".json", ".zip", ".whl", ".css", ".html", ".svg", ".txt", ".map", ".ico",
                ".webmanifest"}
# Big files that never change once in a site: hard-linked from the kit instead of copied.
_LINKED = (".wasm", ".whl", ".zip", ".mjs")
# Never precached by the service worker, never in build.json (e.g. benchmark pages).
UNCACHED_DIRS = ("bench/",)


@dataclass
class SiteReport:
    """What a build made."""

    out: Path
    app: str
    version: str
    files: int
    bytes: int
    seconds: float
    warnings: list[str] = field(default_factory=list)
    compiled: bool = True


def build_site(app: str | os.PathLike[str], out: str | os.PathLike[str], *, demo: str | os.PathLike[str] | None = None,
               embed_origins: Sequence[str] = (), compress: bool = False, headers_prefix: str = "",
               extra_dirs: dict[str, Path] | None = None, kit: Kit | None = None, log: Log = print_log) -> SiteReport:
    """Build the static site of ``app`` (module name, .py file or package folder) in ``out``.

    ``demo``: a recorded demo to replay when no model is set (default: the app's ``DEMO``).
    ``embed_origins``: other origins whose pages may show the site in a frame (``*`` for any).
    ``compress``: also write ``.gz`` (and ``.br`` with Node) beside the large files, for a
    server that sends precompressed files (``py-agent serve`` does). ``extra_dirs`` are copied
    in as they are and never cached offline (e.g. ``{"bench": path}``).
    """
    t0 = time.perf_counter()
    target = Path(out).expanduser().resolve()
    _check_target(target)
    spec = os.fspath(app)
    log(f"checking the app {spec}…")
    info = _inspect(spec, demo, set(PROVIDED_IMPORTS))   # before the kit: a broken app fails fast
    for warning in info["warnings"]:
        log(f"warning: {warning}")
    counts = ", ".join(f"{name} {n}" for name, n in info["tables"].items())
    log(f"  {info['app']['title']} ({info['module']}): {len(info['files'])} file(s); seeded rows: {counts or 'none'}")
    kit = kit or find_kit(log=log)

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        copied = _copy_kit(kit, staging)
        log(f"  the runtime: {copied} file(s)")
        app_wheel, compiled = _app_wheel(info, kit, log)
        shutil.copyfile(app_wheel, staging / "wheels" / app_wheel.name)
        on_demand = _on_demand(info["app"]["allowed_packages"], kit, staging / "wheels", log)
        manifest = kit.manifest
        manifest["app"] = {"name": info["module"], "wheel": app_wheel.name}
        manifest["boot"]["unpack"] = [*manifest["boot"]["unpack"], app_wheel.name]
        manifest["on_demand"] = on_demand
        manifest["sizes"] = {**manifest["sizes"], app_wheel.name: app_wheel.stat().st_size}
        _write(staging / "wheels" / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        _write_app_files(staging, info, embed_origins, headers_prefix)
        for name, source in (extra_dirs or {}).items():
            shutil.copytree(source, staging / name, dirs_exist_ok=True)
        seal_boot_key(staging)     # after the worker's code and the app's wheel are in place
        embed_integrity(staging)   # after every file is in place, before .br/.gz of sw.js are made
        if compress:
            precompress(staging, log=log)
        build = write_build_json(staging)
        _swap(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    raw = sum(p.stat().st_size for p in target.rglob("*") if p.is_file() and p.suffix not in {".gz", ".br"})
    report = SiteReport(target, info["module"], build["version"], len(build["files"]), raw,
                        time.perf_counter() - t0, info["warnings"], compiled)
    log(f"built {target} for {info['module']} (version {report.version}, {report.files} files, {human(raw)}) "
        f"in {report.seconds:.1f} s")
    return report


# --------------------------------------------------------------------------- steps

def _check_target(target: Path) -> None:
    """Refuse to replace a folder that is not a site of ours (it could be anything)."""
    if target.exists() and not target.is_dir():
        raise SiteError(f"{target} is a file, not a folder", hint="choose a folder for the site")
    if target.is_dir() and any(target.iterdir()) and not (target / "build.json").is_file():
        raise SiteError(f"{target} exists and is not a py-agent site, so it is not replaced",
                        hint="choose a new or empty folder (the build replaces the whole folder)")


def provided_imports(kit: Kit) -> set[str]:
    """The module names the kit's packages install (a test checks PROVIDED_IMPORTS against it)."""
    names: set[str] = set()
    for wheel in kit.info["manifest"]["wheels"] + [kit.info["manifest"]["micropip"]]:
        names.update(top_level_names(kit.site / "wheels" / wheel))
    return names


def _inspect(spec: str, demo: str | os.PathLike[str] | None, provided: set[str]) -> dict[str, Any]:
    """Load the app in a subprocess (py_agent.site.inspect_app) and return its report."""
    command = [sys.executable, "-m", "py_agent.site.inspect_app", spec, "--provided", ",".join(sorted(provided))]
    if demo:
        command += ["--demo", os.fspath(Path(demo).expanduser().resolve())]
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    try:
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    except subprocess.TimeoutExpired:
        raise SiteError(f"loading the app {spec} (and running its seed) took more than 10 minutes",
                        hint="check the seed for a loop, or start from a DATA file") from None
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise SiteError(f"loading the app {spec} failed without a report (exit code {proc.returncode})",
                        hint=(proc.stderr.strip() or proc.stdout.strip())[-2000:] or "run `py-agent check APP` to see why")
    result = json.loads(lines[-1])
    if not result["ok"]:
        raise SiteError(result["error"]["message"], hint=result["error"]["hint"])
    return result


def _copy_kit(kit: Kit, staging: Path) -> int:
    n = 0
    for src in sorted(kit.site.rglob("*")):
        if not src.is_file():
            continue
        dst = staging / src.relative_to(kit.site)
        if src.suffix in _LINKED:
            link_or_copy(src, dst)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        n += 1
    return n


def _app_wheel(info: dict[str, Any], kit: Kit, log: Log) -> tuple[Path, bool]:
    """The app's wheel: its module's files and ``_py_agent_site/``; compiled when Node is there."""
    from ..app import SITE_FOLDER

    files = {name: Path(path).read_bytes() for name, path in info["files"].items()}
    site: dict[str, Any] = {"app": info["module"]}
    if info["data"]:
        data = Path(info["data"])
        files[f"{SITE_FOLDER}/{data.name}"] = data.read_bytes()
        site["DATA"] = data.name
    if info["demo"]:
        files[f"{SITE_FOLDER}/demo.json"] = Path(info["demo"]).read_bytes()
        site["DEMO"] = "demo.json"
    files[f"{SITE_FOLDER}/site.json"] = (json.dumps(site, indent=2) + "\n").encode()
    cache = cache_dir() / "app-wheels"
    raw = write_wheel(cache / "raw", info["top"], files, summary=f"{info['app']['title']}, packed by py-agent for its site")
    if node() is None:
        log("note: Node.js is not installed, so the app's module ships as source (compiled in the browser on "
            "first import, a little slower); install Node.js 20+ to precompile it")
        return raw, False
    root = checkout_root()
    pyodide_dir = root / "node_modules" / "pyodide" if root and (root / "node_modules" / "pyodide").is_dir() else kit.site / "pyodide"
    try:
        [compiled] = compile_wheels([raw], cache / "compiled", compiler=kit.compiler, pyodide_dir=pyodide_dir,
                                    keep_source=[norm_name(info["top"])], log=log)
    except SiteError as exc:
        log(f"note: the app's module could not be precompiled ({exc.message.splitlines()[0]}); it ships as source")
        return raw, False
    return compiled, True


def _on_demand(requirements: list[str], kit: Kit, wheels: Path, log: Log) -> list[dict[str, Any]]:
    """The app's allowed_packages: pure wheels in wheels/, described for the worker's installer."""
    if not requirements:
        return []
    log(f"resolving allowed_packages: {', '.join(requirements)}…")
    entries = []
    for requirement, order in resolve_on_demand(requirements, kit.provided, cache_dir() / "wheels" / "pypi", log=log):
        for wheel in order:
            shutil.copyfile(wheel, wheels / wheel.name)
        own = order[-1]
        name, version = own.name.split("-")[:2]
        entries.append({"name": norm_name(name), "version": version, "imports": top_level_names(own),
                        "wheels": [w.name for w in order], "requirement": requirement})
        log(f"  {requirement}: {', '.join(w.name for w in order)} (installed when model code imports "
            f"{', '.join(top_level_names(own))})")
    return entries


def _write(path: Path, text: str) -> None:
    """Write a file anew (never through a hard link into the kit)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    path.write_text(text, encoding="utf-8")


def _write_app_files(staging: Path, info: dict[str, Any], embed_origins: Sequence[str], prefix: str) -> None:
    from ..local_servers import table

    described = info["app"]
    suggestions = described["suggestions"] or info["demo_requests"]
    config = {
        "name": info["module"],
        "title": described["title"],
        "description": described["description"],
        "suggestions": suggestions,
        "tools": described["tools"],
        "allowed_imports": described["allowed_imports"],
        "allowed_packages": described["allowed_packages"],
        "demo": bool(info["demo"]),
        "enums": info["enums"],
        "embed_origins": list(embed_origins),
    }
    _write(staging / "app.json", json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    index = staging / "index.html"
    _write(index, app_page(index.read_text(encoding="utf-8"), module=info["module"], title=described["title"],
                           description=described["description"], suggestions=suggestions))
    _write(staging / "local-servers.json", json.dumps(table(), indent=2) + "\n")
    _write(staging / "_headers", headers_file(embed_origins, prefix))
    sw_headers = staging / "sw-headers.js"
    if sw_headers.exists():
        marker = "const POLICIES = {}; // build: headers"
        text = sw_headers.read_text(encoding="utf-8")
        if marker not in text:
            raise SiteError(f"web/app/sw-headers.js no longer contains {marker!r}", hint="update _write_app_files in py_agent/site/builder.py")
        policies = {"page": headers_for("/index.html", embed_origins=embed_origins),
                    "worker": headers_for("/worker.js"),
                    "shared": headers_for(f"/{SHARED_SCRIPTS[0]}", embed_origins=embed_origins),
                    "shared_scripts": list(SHARED_SCRIPTS)}
        _write(sw_headers, text.replace(marker, f"const POLICIES = {json.dumps(policies, indent=1)};"))


def _swap(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging`` with two renames, so a server on ``target`` barely notices."""
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        target.replace(old)
    staging.replace(target)
    shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- sealing

def _site_files(dist: Path) -> list[Path]:
    return [p for p in sorted(dist.rglob("*"))
            if p.is_file() and p.suffix not in {".gz", ".br"} and not p.relative_to(dist).as_posix().startswith(UNCACHED_DIRS)]


def seal_boot_key(dist: Path) -> str:
    """Add ``boot.key`` to the manifest: a hash of everything a memory snapshot depends on.

    The Pyodide runtime and standard library, the site bundle, the unpacked wheels (the
    app's among them) and the worker's boot code. A snapshot made by another build carries
    another key and is never restored (web/app/boot.js): it is replaced by one of this build.
    """
    path = dist / "wheels" / "manifest.json"
    manifest = json.loads(path.read_text())
    parts = [dist / "pyodide" / name for name in PYODIDE_FILES]
    parts += [dist / "wheels" / manifest["boot"]["zip"]] + [dist / "wheels" / w for w in manifest["boot"]["unpack"]]
    parts += [dist / name for name in ("worker.js", "boot.js") if (dist / name).exists()]
    h = hashlib.sha256()
    for part in parts:
        h.update(part.relative_to(dist).as_posix().encode() + b"\0" + sha256_file(part).encode() + b"\0")
    manifest["boot"]["key"] = h.hexdigest()[:32]
    _write(path, json.dumps(manifest, indent=2) + "\n")
    return str(manifest["boot"]["key"])


def embed_integrity(dist: Path) -> None:
    """Write the SHA-256 of every file the service worker may serve into dist/sw.js.

    The service worker checks each file against these before caching it and again before
    serving it offline, so a cache entry changed by a script of the origin is never served
    (web/app/sw.js). Same file set as build.json; sw.js itself is kept by the browser.
    """
    sw = dist / "sw.js"
    marker = "const INTEGRITY = {}; // build: integrity"
    if not sw.exists():
        return
    text = sw.read_text()
    if marker not in text:
        raise SiteError(f"web/app/sw.js no longer contains {marker!r}", hint="update embed_integrity in py_agent/site/builder.py")
    hashes = {p.relative_to(dist).as_posix(): sha256_file(p) for p in _site_files(dist)
              if p.relative_to(dist).as_posix() not in {"sw.js", "build.json"}}
    _write(sw, text.replace(marker, f"const INTEGRITY = {json.dumps(hashes, indent=1)};"))


def write_build_json(dist: Path) -> dict[str, Any]:
    """build.json: a content hash of the site and every file the service worker should precache."""
    files = []
    h = hashlib.sha256()
    for p in _site_files(dist):
        rel = p.relative_to(dist).as_posix()
        if rel == "build.json":
            continue
        files.append(rel)
        h.update(rel.encode() + b"\0" + sha256_file(p).encode() + b"\0")
    from .wheels import PYODIDE_VERSION

    info = {"version": h.hexdigest()[:16], "pyodide": PYODIDE_VERSION, "files": files}
    _write(dist / "build.json", json.dumps(info, indent=2) + "\n")
    return info


def precompress(dist: Path, *, log: Log = print_log) -> None:
    """Write .gz (Python) and, with Node, .br (quality 11) beside the large files.

    Both are cached by content hash, so only new or changed files cost time. A variant is
    kept only if it saves at least 5%.
    """
    cache = cache_dir() / "compress"
    cache.mkdir(parents=True, exist_ok=True)
    root = checkout_root()
    brotli = root / "tools" / "precompress.mjs" if root and node() else None
    todo_br = []
    candidates = [p for p in sorted(dist.rglob("*")) if p.is_file() and p.suffix in COMPRESSIBLE and p.stat().st_size >= 1024]
    digests = {p: sha256_file(p) for p in candidates}
    for p, digest in digests.items():
        gz = cache / f"{digest}.gz"
        if not gz.exists():
            tmp = gz.with_name(f"{gz.name}.{os.getpid()}.tmp")
            tmp.write_bytes(gzip.compress(p.read_bytes(), compresslevel=9, mtime=0))
            tmp.replace(gz)
        br = cache / f"{digest}.br"
        if brotli and not br.exists():
            todo_br.append({"src": str(p), "dst": str(br)})
    if todo_br and brotli:
        total = sum(Path(j["src"]).stat().st_size for j in todo_br)
        log(f"brotli-compressing {len(todo_br)} file(s), {human(total)} (cached afterwards)…")
        run_node_tool(brotli, todo_br, log=log)
    for p, digest in digests.items():
        size = p.stat().st_size
        for ext in (".gz", ".br"):
            variant = cache / f"{digest}{ext}"
            if variant.exists() and variant.stat().st_size <= 0.95 * size:
                link_or_copy(variant, p.with_name(p.name + ext))


def dist_report(dist: Path, log: Log = print_log) -> None:
    """Sizes of the site: raw, and as sent with brotli where a .br exists."""
    raw = sent = 0
    for p in _site_files(dist):
        size = p.stat().st_size
        raw += size
        br = p.with_name(p.name + ".br")
        sent += br.stat().st_size if br.exists() else size
    log(f"  site: {human(raw)} on disk, {human(sent)} if every file is fetched with brotli")


__all__ = ["SiteReport", "build_site", "dist_report", "embed_integrity", "precompress", "seal_boot_key", "write_build_json"]
