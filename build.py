#!/usr/bin/env python3
"""py-agent's own task runner: build the demo site, serve it, run every test, print benchmarks.

    python3 build.py build            # the bookshop demo (examples/bookshop) as a site in web/dist/
    python3 build.py serve [--port 8000] [--host 127.0.0.1] [--no-build] [--no-isolation]
    python3 build.py test             # installs what it needs, builds, runs all three suites
    python3 build.py bench            # core benchmark + browser boot benchmark
    python3 build.py kit --out DIR    # the runtime kit alone (for PY_AGENT_KIT)
    python3 build.py wheel            # a release wheel of py-agent that carries the kit (dist/)

Sites are built by `py_agent.site`, exactly as `py-agent build APP --out DIR` does for any
app; this file only chooses the app (examples/bookshop, with its recorded demo), the folder
(web/dist/, or $PY_AGENT_DIST) and adds what the project's own tests and benchmarks need
(precompressed files for tools/devserver.py, the benchmark pages, the test wheels).

Needs Python 3.11+ and Node 20+ (npm). Downloads come from PyPI and npm only and are cached
under .cache/ and node_modules/, so a re-build is offline and fast. What a site holds:
py_agent/site/builder.py; where its runtime comes from: py_agent/site/kit.py.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# PY_AGENT_DIST lets several people (or helpers) build and test side by side in one tree.
DIST = Path(os.environ["PY_AGENT_DIST"]).resolve() if os.environ.get("PY_AGENT_DIST") else ROOT / "web" / "dist"
DEMO_APP = ROOT / "examples" / "bookshop" / "bookshop.py"
BENCH_PAGES = ROOT / "benchmarks" / "bench"
CACHE = ROOT / ".cache"
CHROMIUM = "/usr/bin/chromium"
# Extra pure wheels for running the pure-Python tests inside Pyodide under Node.
TEST_PINS = ["iniconfig==2.3.1", "packaging==26.3", "pluggy==1.7.0", "pygments==2.21.0", "pytest==9.2.0"]

# Names older scripts and tests import from build.py; they live in py_agent.site now
# (imported on first use: py_agent needs its dependencies, which `ensure_python_deps` installs).
_MOVED = {
    "py_agent.site.kit": ["SITE_PINS", "MICROPIP_PIN", "SITE_IMPORTS", "PYODIDE_FILES", "VENDOR_FILES", "BUNDLE_DROP",
                          "build_site_bundle", "build_py_agent_wheel", "py_agent_sources"],
    "py_agent.site.wheels": ["PYODIDE_VERSION", "PYODIDE_PLATFORM", "install_order", "norm_name", "pin_parts",
                             "wheel_name_version", "pip_download_dir"],
    "py_agent.site.builder": ["seal_boot_key", "embed_integrity", "write_build_json", "precompress", "dist_report"],
    "py_agent.site.common": ["human", "sha256_file"],
}


def __getattr__(name: str):
    if name == "BuildError":
        return importlib.import_module("py_agent.site.common").SiteError
    for module, names in _MOVED.items():
        if name in names:
            return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'build' has no attribute {name!r}")


class TaskError(Exception):
    """A failure of one of this file's own steps, with a message that says what to do."""


def log(msg: str) -> None:
    print(msg, flush=True)


def run(cmd: list, *, cwd: Path = ROOT, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command, echoing it; raise TaskError if it fails and check is set."""
    log("  $ " + " ".join(str(c) for c in cmd))
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env)
    if check and proc.returncode != 0:
        raise TaskError(f"command failed with exit code {proc.returncode}: {' '.join(map(str, cmd))}")
    return proc


def ensure_python_deps() -> None:
    """py_agent's own dependencies in this Python (a fresh machine has none): `pip install -e .`."""
    try:
        import jinja2, pydantic, sqlalchemy  # noqa: E401,F401
    except ImportError:
        log("installing py-agent and its dependencies into this Python (pip install -e .)…")
        run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", "-e", "."])
        importlib.invalidate_caches()


# --------------------------------------------------------------------------- build

def build(args: argparse.Namespace | None = None) -> dict:
    """Build the demo site (examples/bookshop) in web/dist/ (or $PY_AGENT_DIST)."""
    ensure_python_deps()
    from py_agent.site import build_site
    from py_agent.site.builder import dist_report

    report = build_site(DEMO_APP, DIST, compress=True, embed_origins=["*"],
                        extra_dirs={"bench": BENCH_PAGES} if BENCH_PAGES.is_dir() else None)
    prepare_test_wheels()
    dist_report(DIST)
    return json.loads((DIST / "build.json").read_text()) | {"report": report}


def prepare_test_wheels() -> list[Path]:
    """Pure wheels for pytest inside Pyodide, listed in .cache/test-wheels/manifest.json."""
    from py_agent.site.wheels import pip_download_dir

    dest = CACHE / "test-wheels"
    wheels = pip_download_dir(TEST_PINS, dest)
    (dest / "manifest.json").write_text(json.dumps({"wheels": [w.name for w in wheels]}, indent=2) + "\n")
    return wheels


def kit(args: argparse.Namespace) -> int:
    """The runtime kit alone, copied to --out (point PY_AGENT_KIT at it)."""
    ensure_python_deps()
    from py_agent.site.kit import export_kit, make_kit

    made = make_kit(ROOT)
    out = Path(args.out).resolve()
    export_kit(made, out)
    log(f"kit {made.info['key']} in {out} (PY_AGENT_KIT={out} py-agent build APP --out DIR)")
    return 0


def wheel(args: argparse.Namespace) -> int:
    """A release wheel of py-agent with the runtime kit inside (py_agent/site/kit/): with it,
    `pip install py-agent` is all `py-agent build` needs, no Node and no checkout."""
    ensure_python_deps()
    from py_agent.site.kit import export_kit, make_kit, py_agent_sources

    made = make_kit(ROOT)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        src = Path(tmp_name) / "src"
        for p in py_agent_sources(ROOT):
            target = src / p.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, target)
        export_kit(made, src / "py_agent" / "site" / "kit")
        # setuptools takes package data it is told about: add the kit to the copy's pyproject.
        pyproject = src / "pyproject.toml"
        text = pyproject.read_text()
        marker = 'py_agent = ["prompts/*.jinja", "demo/*.json", "py.typed"'
        if marker not in text:
            raise TaskError("pyproject.toml's [tool.setuptools.package-data] changed: update wheel() in build.py")
        pyproject.write_text(text.replace(marker, marker + ', "site/kit/**/*"'))
        run([sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "--no-deps", "-w", out, src])
    log(f"release wheel with the runtime kit in {out}")
    return 0


def serve(args: argparse.Namespace) -> None:
    if not args.no_build:
        build()
    sys.path.insert(0, str(ROOT / "tools"))
    import devserver
    devserver.serve(DIST, host=args.host, port=args.port, isolation=not args.no_isolation)


# --------------------------------------------------------------------------- test

def ensure_chromium() -> None:
    """Install Debian's chromium when /usr/bin/chromium is missing (only possible as root)."""
    if Path(CHROMIUM).exists():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise TaskError(f"{CHROMIUM} is missing: install it with `sudo apt-get install -y chromium`.")
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
        raise TaskError("PostgreSQL's server binaries are missing: install them with "
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
        except Exception as e:   # a failed step (or a bug in one) must still end in a summary and a failure
            if isinstance(e, TaskError) or type(e).__name__ == "SiteError":
                log(f"error: {e}")
            else:
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
        from py_agent.site.kit import ensure_node_modules
        ensure_node_modules(ROOT)
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


# --------------------------------------------------------------------------- bench

def build_bench_extras(dist: Path) -> None:
    """Bench-only files under dist/bench/ (never in build.json): stock_python_stdlib.zip,
    Pyodide's own standard library, for a bare loadPyodide() of stock Pyodide; core.py, the
    step benchmark, run inside the browser's agent worker."""
    from py_agent.site.builder import precompress

    bench = dist / "bench"
    bench.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "node_modules" / "pyodide" / "python_stdlib.zip", bench / "stock_python_stdlib.zip")
    shutil.copyfile(ROOT / "benchmarks" / "core.py", bench / "core.py")
    precompress(bench)


def bench(args: argparse.Namespace) -> int:
    """Print benchmark figures: the core benchmarks on CPython and inside Pyodide (Node), then
    the browser boot benchmark. ``--server`` runs only the server benchmark (PostgreSQL)."""
    bench_dir = ROOT / "benchmarks"
    if args.server:
        return run([sys.executable, bench_dir / "server.py"], check=False).returncode
    rc = 0
    for script, what in (("core.py", "core benchmark"), ("trust.py", "trust benchmark")):
        log(f"== {what} (benchmarks/{script})")
        if (bench_dir / script).exists():
            rc |= run([sys.executable, bench_dir / script], check=False).returncode
        else:
            log(f"benchmarks/{script} does not exist yet: skipped")
    if not args.no_build:
        build()
    if (bench_dir / "core_pyodide.mjs").exists():
        log("\n== core benchmark inside Pyodide 314 under Node (benchmarks/core_pyodide.mjs)")
        rc |= run(["node", "--experimental-wasm-stack-switching", bench_dir / "core_pyodide.mjs"], check=False).returncode
    build_bench_extras(DIST)
    ensure_chromium()
    log("\n== browser boot benchmark (benchmarks/browser_boot.mjs)")
    cmd = ["node", bench_dir / "browser_boot.mjs", "--runs", str(args.runs)]
    rc |= run(cmd, check=False).returncode
    log("\n== site build benchmark (py-agent build of a new app, runtime kit cached)")
    rc |= bench_site_build()
    return rc


def bench_site_build() -> int:
    """Seconds `py-agent build` takes for an app it has not seen (kit cached, app wheel not)."""
    from py_agent.site import build_site
    from py_agent.site.common import quiet_log

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        name = f"bench_app_{os.getpid()}"
        (tmp / f"{name}.py").write_text(
            "from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column\n"
            f"class Base(DeclarativeBase): pass\nclass Note(Base):\n    __tablename__ = 'notes'\n"
            f"    id: Mapped[int] = mapped_column(primary_key=True)\n    text: Mapped[str] = mapped_column(default='{time.time()}')\n")
        build_site(tmp / f"{name}.py", tmp / "warm", log=quiet_log)          # the kit, made or found
        t0 = time.perf_counter()
        report = build_site(tmp / f"{name}.py", tmp / "site", log=quiet_log)
        log(f"  py-agent build of a one-table app: {time.perf_counter() - t0:.1f} s "
            f"({report.files} files, {report.bytes / 1e6:.1f} MB; app wheel {'compiled' if report.compiled else 'as source'})")
    return 0


# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build the demo site (examples/bookshop) in web/dist/")
    p = sub.add_parser("serve", help="build, then serve web/dist/ on localhost")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--no-build", action="store_true", help="serve web/dist/ as it is")
    p.add_argument("--no-isolation", action="store_true", help="no COOP/COEP/CORP headers")
    sub.add_parser("test", help="install what is needed, build, run every test suite")
    p = sub.add_parser("bench", help="print benchmark figures")
    p.add_argument("--no-build", action="store_true", help="use web/dist/ as it is")
    p.add_argument("--runs", type=int, default=3, help="runs per browser measurement (median)")
    p.add_argument("--server", action="store_true", help="only the server benchmark (benchmarks/server.py, PostgreSQL)")
    p = sub.add_parser("kit", help="make the runtime kit and copy it to --out")
    p.add_argument("--out", required=True)
    p = sub.add_parser("wheel", help="build a release wheel of py-agent that carries the runtime kit")
    p.add_argument("--out", default=str(ROOT / "dist"))
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
        if args.command == "kit":
            return kit(args)
        if args.command == "wheel":
            return wheel(args)
        return bench(args)
    except TaskError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        if type(e).__name__ != "SiteError":
            raise
        print(f"error: {e.message}\n  {e.hint}" if getattr(e, "hint", "") else f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
