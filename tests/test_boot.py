"""Boot speed (issue 13): the site bundle, the snapshot key, on-demand packages.

The browser side (a boot from a snapshot, a stale or corrupt one, an install while offline)
is in tests/e2e/boot-snapshot.spec.ts; these are the pure parts.
"""

from __future__ import annotations

import ast
import asyncio
import json
import zipfile
from pathlib import Path

import pytest

import build
from py_agent.browser.ondemand import OnDemandPackages, Package, imported_names
from py_agent.events import PackageInstalled, event_from_dict

# --------------------------------------------------------------------------- on-demand packages

TABULATE = {"name": "tabulate", "version": "0.10.0", "imports": ["tabulate"], "wheels": ["tabulate-0.10.0-py3-none-any.whl"]}
DATEUTIL = {"name": "python_dateutil", "version": "2.9.0", "imports": ["dateutil"], "wheels": ["python_dateutil.whl", "six.whl"]}


def test_imported_names_are_top_level_and_absolute():
    tree = ast.parse("import tabulate\nimport os.path as p\nfrom dateutil.parser import parse\nfrom . import x\n")
    assert imported_names(tree) == {"tabulate", "os", "dateutil"}


def test_before_run_installs_each_package_once_and_reports_it():
    installed: list[str] = []

    async def install(package: Package) -> None:
        installed.append(package.name)

    packages = OnDemandPackages.from_manifest([TABULATE, DATEUTIL], install)
    assert packages.import_names == {"tabulate", "dateutil"}
    events = asyncio.run(packages.before_run(3, "from tabulate import tabulate\nimport dateutil\nprint(1)"))
    assert installed == ["python_dateutil", "tabulate"]
    assert [(e.step, e.name, e.version, e.error) for e in events] == [(3, "python_dateutil", "2.9.0", None), (3, "tabulate", "0.10.0", None)]
    # A later step importing them again installs nothing; code without them needs nothing.
    assert asyncio.run(packages.before_run(4, "import tabulate")) == []
    assert asyncio.run(packages.before_run(5, "x = 1")) == []
    assert installed == ["python_dateutil", "tabulate"]


def test_a_failed_install_is_reported_and_not_retried_every_step():
    calls = []

    async def install(package: Package) -> None:
        calls.append(package.name)
        raise OSError("wheels/tabulate-0.10.0-py3-none-any.whl: HTTP 404")

    packages = OnDemandPackages.from_manifest([TABULATE], install)
    tree = ast.parse("import tabulate")
    (event,) = asyncio.run(packages.before_run(1, tree))
    assert event.error == "OSError: wheels/tabulate-0.10.0-py3-none-any.whl: HTTP 404"
    assert asyncio.run(packages.before_run(2, tree)) == [] and calls == ["tabulate"]


def test_package_installed_event_round_trips():
    event = PackageInstalled(2, "tabulate", "0.10.0", 412.5)
    assert event_from_dict(json.loads(json.dumps(event.to_dict()))) == event


# --------------------------------------------------------------------------- the site bundle

def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def test_site_bundle_merges_pure_wheels_and_leaves_compiled_ones(tmp_path):
    pure = _wheel(tmp_path / "pure-1.0-py3-none-any.whl", {
        "pure/__init__.py": b"x = 1\n",
        "pure/__pycache__/__init__.cpython-314.pyc": b"PYC",
        "pure-1.0.dist-info/METADATA": b"Name: pure\n",
        "pure-1.0.dist-info/RECORD": b"...",
    })
    binary = _wheel(tmp_path / "core-1.0-cp314-cp314-pyemscripten_2026_0_wasm32.whl", {
        "core/__init__.py": b"", "core/_core.cpython-314-wasm32-emscripten.so": b"\0asm",
    })
    out = tmp_path / "out"
    out.mkdir()
    boot = build.build_site_bundle([pure, binary], out)
    assert boot == {"zip": "site-packages.zip", "unpack": [binary.name]}
    with zipfile.ZipFile(out / "site-packages.zip") as z:
        names = z.namelist()
        # zipimport reads a pyc only beside its source; installers' RECORD is left out.
        assert names == ["pure/__init__.py", "pure/__init__.pyc", "pure-1.0.dist-info/METADATA"]
        assert z.read("pure/__init__.pyc") == b"PYC"
        assert all(info.compress_type == zipfile.ZIP_STORED for info in z.infolist())


def test_boot_key_changes_with_what_a_snapshot_depends_on(tmp_path):
    dist = tmp_path
    (dist / "pyodide").mkdir()
    for name in build.PYODIDE_FILES:
        (dist / "pyodide" / name).write_bytes(name.encode())
    (dist / "wheels").mkdir()
    (dist / "wheels" / "site-packages.zip").write_bytes(b"zip")
    (dist / "wheels" / "core.whl").write_bytes(b"whl")
    (dist / "worker.js").write_text("worker")
    (dist / "boot.js").write_text("boot")
    (dist / "app.js").write_text("app")
    manifest = {"boot": {"zip": "site-packages.zip", "unpack": ["core.whl"]}}
    (dist / "wheels" / "manifest.json").write_text(json.dumps(manifest))
    first = build.seal_boot_key(dist)
    assert json.loads((dist / "wheels" / "manifest.json").read_text())["boot"]["key"] == first
    (dist / "app.js").write_text("another page")       # the page is not in the snapshot
    assert build.seal_boot_key(dist) == first
    (dist / "boot.js").write_text("another boot")      # the boot code is
    second = build.seal_boot_key(dist)
    assert second != first
    (dist / "wheels" / "site-packages.zip").write_bytes(b"other zip")
    assert build.seal_boot_key(dist) not in {first, second}


def _built_with_boot_bundle() -> bool:
    path = build.DIST / "wheels" / "manifest.json"
    return path.exists() and "boot" in json.loads(path.read_text())


needs_dist = pytest.mark.skipif(not _built_with_boot_bundle(), reason="site not built, or built before boot bundles (python build.py build)")


@needs_dist
def test_built_manifest_has_the_boot_bundle_and_on_demand_packages():
    manifest = json.loads((build.DIST / "wheels" / "manifest.json").read_text())
    boot = manifest["boot"]
    assert len(boot["key"]) == 32
    assert (build.DIST / "wheels" / boot["zip"]).is_file()
    # pydantic_core (compiled code) and the app's own wheel (its data files must be real files).
    assert [w.split("-")[0] for w in boot["unpack"]] == ["pydantic_core", manifest["app"]["name"]]
    assert manifest["app"]["wheel"] == boot["unpack"][-1]
    with zipfile.ZipFile(build.DIST / "wheels" / boot["zip"]) as z:
        names = set(z.namelist())
    assert {"sqlalchemy/__init__.pyc", "pydantic/__init__.pyc", "jinja2/__init__.pyc", "py_agent/__init__.py"} <= names
    assert not any(n.startswith("pydantic_core/") for n in names)
    for entry in manifest["on_demand"]:
        assert entry["imports"] and all((build.DIST / "wheels" / w).is_file() for w in entry["wheels"])
        assert entry["name"] not in " ".join(manifest["wheels"] + [boot["zip"]])  # never installed at boot


# --------------------------------------------------------------------------- what a boot does


@pytest.mark.parametrize("warm_up", [False, True])
def test_only_the_snapshot_boot_warms_up(monkeypatch, warm_up):
    """The agent's own boot skips the warm-up (the person is waiting); the background boot
    that makes the snapshot does it, so the snapshot holds what a first request needs."""
    from py_agent.browser import glue
    from py_agent.demo import Base

    seen = []
    monkeypatch.setattr(glue, "_warm_up", seen.append)
    glue.prepare_boot("py_agent.demo", warm_up)
    assert seen == ([Base] if warm_up else [])
