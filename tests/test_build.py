"""Cheap tests of the build tooling: the dev server's headers (py_agent/site/server.py, run by
tools/devserver.py) and the build's helpers (py_agent/site/, reached through build.py too).

The last group checks web/dist/ and is skipped when the site has not been built
(`python build.py build`).
"""

from __future__ import annotations

import gzip
import http.client
import importlib.util
import json
import os
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.cpython_only   # sockets and threads; build tooling is CPython-side

ROOT = Path(__file__).resolve().parent.parent
DIST = Path(os.environ["PY_AGENT_DIST"]).resolve() if os.environ.get("PY_AGENT_DIST") else ROOT / "web" / "dist"
sys.path.insert(0, str(ROOT / "tools"))
import devserver  # noqa: E402


def load_build_module():
    spec = importlib.util.spec_from_file_location("py_agent_build", ROOT / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = load_build_module()
from py_agent.site.common import SiteError  # noqa: E402


# --------------------------------------------------------------------------- devserver

@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    files = {
        "index.html": b"<!doctype html><title>x</title>",
        "worker.js": b"// worker",
        "lib/extra.worker.js": b"// another worker",
        "app.mjs": b"export const x = 1;\n" * 100,
        "sw.js": b"// service worker",
        "build.json": b'{"version": "1", "files": []}',
        "pyodide/pyodide.asm.wasm": b"\0asm" + b"\1" * 5000,
        "pyodide/python_stdlib.zip": b"PK" + b"\0" * 100,
        "wheels/manifest.json": b'{"wheels": []}',
        "wheels/sqlalchemy-2.1.9-py3-none-any.whl": b"PK sqlalchemy",
        "wheels/py_agent-0.1.0-py3-none-any.whl": b"PK py_agent",
        "sub/index.html": b"<p>sub</p>",
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    wasm = root / "pyodide" / "pyodide.asm.wasm"
    (root / "pyodide" / "pyodide.asm.wasm.gz").write_bytes(gzip.compress(wasm.read_bytes()))
    (root / "pyodide" / "pyodide.asm.wasm.br").write_bytes(b"fake brotli body")
    (root / "app.mjs.gz").write_bytes(gzip.compress((root / "app.mjs").read_bytes()))
    return root


@pytest.fixture(scope="module")
def server(site):
    srv, base = devserver.serve_in_thread(site)
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def plain_server(site):
    srv, base = devserver.serve_in_thread(site, isolation=False)
    yield srv
    srv.shutdown()
    srv.server_close()


def get(srv, path, headers=None, method="GET"):
    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request(method, path, headers={"Accept-Encoding": "identity", **(headers or {})})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, body


@pytest.mark.parametrize("path", ["/", "/index.html", "/worker.js", "/pyodide/pyodide.asm.wasm", "/missing"])
def test_isolation_headers_on_every_response(server, path):
    resp, _ = get(server, path)
    assert resp.getheader("Cross-Origin-Opener-Policy") == "same-origin"
    # credentialless, not require-corp: still isolated, and a no-cors probe of a local model
    # server works (web/app/diagnose.js).
    assert resp.getheader("Cross-Origin-Embedder-Policy") == "credentialless"
    assert resp.getheader("Cross-Origin-Resource-Policy") == "same-origin"


def test_no_isolation_flag_drops_coop_coep(plain_server):
    resp, _ = get(plain_server, "/index.html")
    assert resp.status == 200
    assert resp.getheader("Cross-Origin-Opener-Policy") is None
    assert resp.getheader("Cross-Origin-Embedder-Policy") is None
    assert "default-src 'self'" in resp.getheader("Content-Security-Policy")


def test_page_csp(server):
    resp, _ = get(server, "/index.html")
    csp = resp.getheader("Content-Security-Policy")
    assert csp == devserver.PAGE_CSP
    assert "script-src 'self' 'wasm-unsafe-eval'" in csp
    assert "connect-src 'self' https: http:;" in csp   # the shim still allows only the configured endpoint
    assert "frame-ancestors 'self'" in csp
    assert "worker-src 'self'" in csp


@pytest.mark.parametrize("path", ["/worker.js", "/lib/extra.worker.js"])
def test_worker_scripts_get_the_strict_csp(server, path):
    resp, _ = get(server, path)
    assert resp.status == 200
    csp = resp.getheader("Content-Security-Policy")
    assert csp == devserver.WORKER_CSP
    directives = {d.split()[0]: d.split()[1:] for d in csp.split("; ")}
    assert directives["connect-src"] == ["'self'"]
    assert "'wasm-unsafe-eval'" in directives["script-src"]
    assert "https:" not in csp and "localhost" not in csp


@pytest.mark.parametrize("path, mime", [
    ("/index.html", "text/html"),
    ("/worker.js", "text/javascript"),
    ("/app.mjs", "text/javascript"),
    ("/pyodide/pyodide.asm.wasm", "application/wasm"),
    ("/pyodide/python_stdlib.zip", "application/octet-stream"),
    ("/wheels/sqlalchemy-2.1.9-py3-none-any.whl", "application/octet-stream"),
    ("/wheels/manifest.json", "application/json"),
])
def test_mime_types(server, path, mime):
    resp, _ = get(server, path)
    assert resp.getheader("Content-Type").split(";")[0] == mime


def test_gzip_is_served_when_accepted(server, site):
    resp, body = get(server, "/app.mjs", {"Accept-Encoding": "gzip, deflate"})
    assert resp.getheader("Content-Encoding") == "gzip"
    assert resp.getheader("Vary") == "Accept-Encoding"
    assert resp.getheader("Content-Type").startswith("text/javascript")
    assert gzip.decompress(body) == (site / "app.mjs").read_bytes()


def test_brotli_preferred_then_gzip_then_identity(server, site):
    resp, body = get(server, "/pyodide/pyodide.asm.wasm", {"Accept-Encoding": "gzip, deflate, br, zstd"})
    assert resp.getheader("Content-Encoding") == "br"
    assert body == b"fake brotli body"
    resp, body = get(server, "/pyodide/pyodide.asm.wasm", {"Accept-Encoding": "gzip;q=1, br;q=0"})
    assert resp.getheader("Content-Encoding") == "gzip"
    resp, body = get(server, "/pyodide/pyodide.asm.wasm")
    assert resp.getheader("Content-Encoding") is None
    assert body == (site / "pyodide" / "pyodide.asm.wasm").read_bytes()
    assert resp.getheader("Content-Length") == str(len(body))


def test_head_has_headers_and_no_body(server):
    resp, body = get(server, "/app.mjs", {"Accept-Encoding": "gzip"}, method="HEAD")
    assert resp.status == 200 and body == b""
    assert resp.getheader("Content-Encoding") == "gzip"


@pytest.mark.parametrize("path, expected", [
    ("/pyodide/pyodide.asm.wasm", devserver.IMMUTABLE),
    ("/wheels/sqlalchemy-2.1.9-py3-none-any.whl", devserver.IMMUTABLE),
    ("/wheels/py_agent-0.1.0-py3-none-any.whl", "no-cache"),   # changes without a version bump
    ("/wheels/manifest.json", "no-cache"),
    ("/index.html", "no-cache"),
    ("/", "no-cache"),
    ("/sw.js", "no-cache"),
    ("/build.json", "no-cache"),
])
def test_cache_control(server, path, expected):
    resp, _ = get(server, path)
    assert resp.getheader("Cache-Control") == expected


def test_etag_revalidation_gives_304_with_headers(server):
    resp, _ = get(server, "/index.html")
    etag = resp.getheader("ETag")
    assert etag
    resp, body = get(server, "/index.html", {"If-None-Match": etag})
    assert resp.status == 304 and body == b""
    assert resp.getheader("Cross-Origin-Embedder-Policy") == "credentialless"
    # the gzip variant has its own validator
    resp, _ = get(server, "/app.mjs", {"Accept-Encoding": "gzip"})
    resp2, _ = get(server, "/app.mjs")
    assert resp.getheader("ETag") != resp2.getheader("ETag")


def test_directories_and_missing_files(server):
    resp, body = get(server, "/sub")
    assert resp.status == 301 and resp.getheader("Location") == "/sub/"
    resp, body = get(server, "/sub/")
    assert resp.status == 200 and body == b"<p>sub</p>"
    resp, _ = get(server, "/nope.js")
    assert resp.status == 404
    resp, _ = get(server, "/../../etc/passwd")
    assert resp.status == 404


def test_accepted_encodings_parsing():
    assert devserver.accepted_encodings("gzip, deflate, br, zstd") == {"gzip", "deflate", "br", "zstd"}
    assert devserver.accepted_encodings("br;q=0, gzip;q=0.5") == {"gzip"}
    assert devserver.accepted_encodings(None) == set()


def test_is_worker_script():
    assert devserver.is_worker_script("/worker.js")
    assert devserver.is_worker_script("/a/b/sql.worker.js")
    assert not devserver.is_worker_script("/worker.mjs.map")
    assert not devserver.is_worker_script("/app.js")


def test_make_server_refuses_a_missing_directory(tmp_path):
    with pytest.raises(SystemExit, match="build the site first"):
        devserver.make_server(tmp_path / "nope", port=0)


# --------------------------------------------------------------------------- build.py helpers

def make_wheel(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    path = folder / f"{name}-{version}-py3-none-any.whl"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}/__init__.py", "")
        z.writestr(f"{name}-{version}.dist-info/METADATA", meta)
        z.writestr(f"{name}-{version}.dist-info/RECORD", "")
    return path


def test_install_order_puts_dependencies_first(tmp_path):
    app = make_wheel(tmp_path, "app", "1.0", ["lib>=2", "win; sys_platform == 'win32'", "dev; extra == 'dev'"])
    lib = make_wheel(tmp_path, "lib", "2.1", ["base"])
    base = make_wheel(tmp_path, "base", "0.1", [])
    order = build.install_order([app, lib, base])
    assert [p.name.split("-")[0] for p in order] == ["base", "lib", "app"]


def test_install_order_names_a_missing_pin(tmp_path):
    app = make_wheel(tmp_path, "app", "1.0", ["lib>=2"])
    with pytest.raises(SiteError, match="no pin for it"):
        build.install_order([app])


def test_install_order_names_a_wrong_version(tmp_path):
    app = make_wheel(tmp_path, "app", "1.0", ["lib>=3"])
    lib = make_wheel(tmp_path, "lib", "2.1", [])
    with pytest.raises(SiteError, match="lib==2.1"):
        build.install_order([app, lib])


def test_pins_are_exact_and_unique():
    pins = build.SITE_PINS + [build.MICROPIP_PIN] + build.TEST_PINS
    names = [build.pin_parts(p)[0] for p in pins]
    assert len(names) == len(set(names))
    assert all("==" in p for p in pins)


def test_wheel_name_version():
    assert build.wheel_name_version("pydantic_core-2.50.4-cp314-cp314-pyemscripten_2026_0_wasm32.whl") == (
        "pydantic_core", "2.50.4")
    assert build.norm_name("Typing-Extensions") == "typing_extensions"


def test_write_build_json_lists_files_but_not_variants_or_bench(tmp_path):
    for name in ["index.html", "index.html.gz", "pyodide/pyodide.mjs", "pyodide/pyodide.mjs.br",
                 "bench/bare.html", "wheels/manifest.json"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    info = build.write_build_json(tmp_path)
    assert info["files"] == ["index.html", "pyodide/pyodide.mjs", "wheels/manifest.json"]
    assert json.loads((tmp_path / "build.json").read_text()) == info
    (tmp_path / "index.html").write_text("changed")
    assert build.write_build_json(tmp_path)["version"] != info["version"]


def test_package_json_pins_exact_versions():
    pkg = json.loads((ROOT / "package.json").read_text())
    assert pkg["dependencies"]["pyodide"] == "314.0.7" and pkg["dependencies"]["sql.js"] == "1.16.0"
    for name, version in {**pkg["dependencies"], **pkg["devDependencies"]}.items():   # --save-exact
        assert version[0].isdigit(), f"{name} is not pinned to an exact version: {version}"
    assert pkg["devDependencies"]["@playwright/test"] == "1.65.1"
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/pyodide"]["version"] == "314.0.7"


# --------------------------------------------------------------------------- the built site

needs_dist = pytest.mark.skipif(not (DIST / "wheels" / "manifest.json").exists(),
                                reason="web/dist not built (python build.py build)")


@needs_dist
def test_dist_layout_and_manifest():
    manifest = json.loads((DIST / "wheels" / "manifest.json").read_text())
    assert manifest["imports"] == ["sqlalchemy", "pydantic", "jinja2", "py_agent"]
    assert manifest["micropip"].startswith("micropip-") and manifest["micropip"].endswith(".whl")
    names = [w.split("-")[0] for w in manifest["wheels"]]
    assert names[-1] == "py_agent"
    for dep in ["sqlalchemy", "pydantic", "pydantic_core", "jinja2", "markupsafe", "typing_extensions"]:
        assert dep in names
    assert names.index("pydantic_core") < names.index("pydantic")
    assert names.index("markupsafe") < names.index("jinja2")
    for w in manifest["wheels"] + [manifest["micropip"]]:
        assert (DIST / "wheels" / w).is_file()
    for f in ["pyodide/pyodide.mjs", "pyodide/pyodide.asm.mjs", "pyodide/pyodide.asm.wasm",
              "pyodide/python_stdlib.zip", "pyodide/pyodide-lock.json", "sqljs/sql-wasm.js",
              "sqljs/sql-wasm.wasm", "build.json"]:
        assert (DIST / f).is_file(), f


@needs_dist
def test_build_json_lists_existing_files():
    info = json.loads((DIST / "build.json").read_text())
    assert len(info["version"]) == 16
    assert "pyodide/pyodide.mjs" in info["files"] and "wheels/manifest.json" in info["files"]
    for rel in info["files"]:
        assert (DIST / rel).is_file(), rel
        assert not rel.endswith((".gz", ".br")) and not rel.startswith("bench/")


@needs_dist
def test_wheels_carry_bytecode():
    manifest = json.loads((DIST / "wheels" / "manifest.json").read_text())
    for w in manifest["wheels"]:
        with zipfile.ZipFile(DIST / "wheels" / w) as z:
            names = z.namelist()
        modules = [n for n in names if n.endswith(".py") and ".dist-info/" not in n]
        pycs = [n for n in names if n.endswith(".pyc")]
        if w.startswith("py_agent-"):
            assert modules and pycs and all("/__pycache__/" in n for n in pycs)   # sources kept
        elif w.startswith(("sqlalchemy-", "pydantic-", "jinja2-")):
            assert pycs and not modules, w                                        # sourceless
