"""Wheels for the browser: from PyPI for Pyodide's platform, checked, compiled, and the app's own.

Pyodide 314 is CPython 3.14 on ``pyemscripten_2026_0_wasm32``: a package runs in the
browser if it has a pure (``py3-none-any``) wheel or a wheel for that platform. pip
downloads them (``--platform``), :func:`install_order` checks that the pins satisfy each
other under Pyodide's markers, and :func:`compile_wheels` repacks them with bytecode
compiled by Pyodide itself under Node (``tools/compile_wheels.mjs``).
"""

from __future__ import annotations

import base64
import email.message
import email.parser
import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from .common import Log, SiteError, human, print_log, python, run, run_node_tool, sha256_bytes, sha256_file

PYODIDE_VERSION = "314.0.7"
# What Pyodide 314 is, for pip: the platform tag of its binary wheels, its Python and ABI.
PYODIDE_PLATFORM = "pyemscripten_2026_0_wasm32"
PYODIDE_PYTHON = "3.14"
PYODIDE_ABI = "cp314"
# Marker environment of Pyodide 314, to check that the pins satisfy every requirement.
PYODIDE_MARKERS = {
    "sys_platform": "emscripten", "platform_system": "Emscripten", "platform_machine": "wasm32",
    "os_name": "posix", "python_version": "3.14", "python_full_version": "3.14.2",
    "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": "",
}
# Packages built as pure wheels from their sdist (no wasm wheel on PyPI; the C part is optional).
FROM_SDIST = {"markupsafe"}
COMPILER_VERSION = "4"   # bump when tools/compile_wheels.mjs changes its output
EPOCH = (1980, 1, 1, 0, 0, 0)


def norm_name(name: str) -> str:
    """PEP 503 normalised project name, with underscores (as in wheel file names)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def wheel_name_version(filename: str) -> tuple[str, str]:
    parts = Path(filename).name.split("-")
    return norm_name(parts[0]), parts[1]


def pin_parts(pin: str) -> tuple[str, str]:
    name, version = pin.split("==")
    return norm_name(name), version


def is_pure(wheel: Path | str) -> bool:
    return Path(wheel).name.endswith("-none-any.whl")


def _pip_download(requirements: Sequence[str], dest: Path, log: Log) -> None:
    run([python(), "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
         "--only-binary=:all:", "--platform", PYODIDE_PLATFORM, "--platform", "any",
         "--python-version", PYODIDE_PYTHON, "--implementation", "cp",
         "--abi", PYODIDE_ABI, "--abi", "abi3", "--abi", "none", "-d", dest, *requirements], log=log,
        what=f"downloading {', '.join(requirements)} from PyPI")


def pip_download_dir(pins: list[str], dest: Path, *, log: Log = print_log) -> list[Path]:
    """The wheels for ``pins`` (``name==version``) in ``dest``, downloading the missing ones."""
    dest.mkdir(parents=True, exist_ok=True)
    have = {wheel_name_version(p.name): p for p in dest.glob("*.whl")}
    missing = [pin for pin in pins if pin_parts(pin) not in have and pin_parts(pin)[0] not in FROM_SDIST]
    if missing:
        log(f"downloading wheels from PyPI: {', '.join(missing)}…")
        _pip_download(missing, dest, log)
        have = {wheel_name_version(p.name): p for p in dest.glob("*.whl")}
        for pin in missing:
            if pin_parts(pin) in have:
                log(f"  saved {have[pin_parts(pin)].name} ({human(have[pin_parts(pin)].stat().st_size)})")
    for pin in pins:
        if pin_parts(pin)[0] in FROM_SDIST and pin_parts(pin) not in have:
            build_pure_from_sdist(pin, dest, log=log)
            have = {wheel_name_version(p.name): p for p in dest.glob("*.whl")}
    result = []
    for pin in pins:
        if pin_parts(pin) not in have:
            raise SiteError(f"no wheel for {pin} in {dest} after downloading", hint="check the pin")
        result.append(have[pin_parts(pin)])
    return result


def build_pure_from_sdist(pin: str, dest: Path, *, log: Log = print_log) -> Path:
    """Build a py3-none-any wheel of a package whose C speedups are optional (markupsafe).

    MarkupSafe's setup.py has no switch to skip its C extension, so the unpacked sdist's
    `supports_speedups = ...` line is rewritten to False before `pip wheel`; markupsafe then
    falls back to its pure-Python implementation, which is what Pyodide can run.
    """
    log(f"building a pure-Python wheel of {pin} from its sdist…")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        run([python(), "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
             "--no-binary=:all:", "-d", tmp / "sdist", pin], log=log, what=f"downloading the sdist of {pin}")
        sdist = next((tmp / "sdist").iterdir())
        shutil.unpack_archive(sdist, tmp / "src")
        src = next((tmp / "src").iterdir())
        setup_py = src / "setup.py"
        text = setup_py.read_text()
        marker = "supports_speedups = platform.python_implementation() not in"
        if marker not in text:
            raise SiteError(f"{sdist.name}: setup.py no longer has `{marker}`",
                            hint="update build_pure_from_sdist() in py_agent/site/wheels.py to switch the C extension off")
        setup_py.write_text(text.replace(marker, "supports_speedups = False and None not in"))
        run([python(), "-m", "pip", "wheel", "--disable-pip-version-check", "--no-deps",
             "-w", tmp / "out", src], log=log, what=f"building a wheel of {pin}")
        wheel = next((tmp / "out").glob("*.whl"))
        if not is_pure(wheel):
            raise SiteError(f"{wheel.name} is not a pure wheel; the C speedups were not disabled")
        shutil.copyfile(wheel, dest / wheel.name)
        return dest / wheel.name


def wheel_metadata(path: Path) -> email.message.Message:
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        return email.parser.BytesParser().parsebytes(z.read(name))


def requirements_of(path: Path) -> list[str]:
    """The Requires-Dist lines of a wheel that apply under Pyodide."""
    from pip._vendor.packaging.requirements import Requirement

    found = []
    for line in wheel_metadata(path).get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(PYODIDE_MARKERS):
            found.append(line)
    return found


def install_order(wheels: list[Path]) -> list[Path]:
    """Check the wheels satisfy each other's requirements under Pyodide; dependencies first.

    Uses pip's vendored `packaging` to evaluate markers and version specifiers (pip is
    needed for the build anyway). Raises SiteError naming the missing or wrong pin.
    """
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.version import Version

    by_name = {wheel_name_version(w.name)[0]: w for w in wheels}
    deps: dict[str, list[str]] = {}
    problems = []
    for name, wheel in by_name.items():
        deps[name] = []
        for line in requirements_of(wheel):
            req = Requirement(line)
            dep = norm_name(req.name)
            if dep not in by_name:
                problems.append(f"{name} requires `{line}` but build.py has no pin for it: add it to SITE_PINS")
                continue
            version = Version(wheel_name_version(by_name[dep].name)[1])
            if not req.specifier.contains(version, prereleases=True):
                problems.append(f"{name} requires `{line}` but SITE_PINS has {dep}=={version}")
            deps[name].append(dep)
    if problems:
        raise SiteError("the pinned wheels do not fit together:\n  " + "\n  ".join(problems))
    order: list[str] = []

    def visit(n: str, stack: tuple[str, ...] = ()) -> None:
        if n in order or n in stack:
            return
        for d in deps[n]:
            visit(d, stack + (n,))
        order.append(n)

    for name in by_name:
        visit(name)
    return [by_name[n] for n in order]


# --------------------------------------------------------------------------- compiling

def compile_wheels(wheels: list[Path], out_dir: Path, *, compiler: Path, pyodide_dir: Path | None = None,
                   keep_source: Iterable[str] = (), strip_docstrings: Iterable[str] = (),
                   drop: dict[str, list[str]] | None = None, log: Log = print_log) -> list[Path]:
    """Repack wheels with bytecode compiled by Pyodide under Node (cached per input wheel).

    ``compiler`` is tools/compile_wheels.mjs; ``pyodide_dir`` a Pyodide to run it with
    (default: the checkout's node_modules/pyodide).
    """
    keep, strip, drop = set(keep_source), set(strip_docstrings), drop or {}
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs, results = [], []
    for wheel in wheels:
        name = wheel_name_version(wheel.name)[0]
        options = {"keep_source": name in keep, "strip_docstrings": name in strip, "drop": drop.get(name, [])}
        # The compiler script's own hash is part of the key, so editing it recompiles
        # (a stale cached wheel once broke `import sqlalchemy` in Pyodide).
        key = sha256_bytes(json.dumps([sha256_file(wheel), options, COMPILER_VERSION, sha256_file(compiler),
                                       PYODIDE_VERSION], sort_keys=True).encode())
        target = out_dir / wheel.name
        stamp = out_dir / (wheel.name + ".key")
        if not (target.exists() and stamp.exists() and stamp.read_text() == key):
            jobs.append({"src": str(wheel), "dst": str(target), "stamp": str(stamp), "key": key, **options})
        results.append(target)
    if jobs:
        log(f"compiling {len(jobs)} wheel(s) to .pyc with Pyodide {PYODIDE_VERSION} under Node…")
        env = dict(os.environ, PY_AGENT_PYODIDE=str(pyodide_dir)) if pyodide_dir else None
        run_node_tool(compiler, jobs, log=log, env=env)
        for job in jobs:
            Path(job["stamp"]).write_text(job["key"])
    return results


# --------------------------------------------------------------------------- the app's wheel

def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def write_wheel(path_dir: Path, name: str, files: dict[str, bytes], *, summary: str = "") -> Path:
    """A wheel of ``files`` (archive name → bytes), stored (not deflated), reproducible.

    Its version is ``0+<hash of the files>``, so the file name changes exactly when the
    content does (a server may then cache it for ever). Members are stored because the
    page's boot unpacks it itself (web/app/boot.js reads stored zips).
    """
    dist = norm_name(name)
    content = hashlib.sha256()
    for member in sorted(files):
        content.update(member.encode() + b"\0" + files[member] + b"\0")
    version = f"0+site.{content.hexdigest()[:12]}"
    info = f"{dist}-{version}.dist-info"
    entries = dict(files)
    entries[f"{info}/METADATA"] = (f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n"
                                   + (f"Summary: {summary}\n" if summary else "")).encode()
    entries[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: py-agent\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    lines = [_record_line(n, d) for n, d in sorted(entries.items())] + [f"{info}/RECORD,,"]
    entries[f"{info}/RECORD"] = ("\n".join(lines) + "\n").encode()
    path_dir.mkdir(parents=True, exist_ok=True)
    target = path_dir / f"{dist}-{version}-py3-none-any.whl"
    tmp = target.with_name(target.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as z:
        for member in sorted(entries, key=lambda n: (n.startswith(info), n)):
            entry = zipfile.ZipInfo(member, EPOCH)
            entry.compress_type = zipfile.ZIP_STORED
            entry.external_attr = 0o644 << 16
            z.writestr(entry, entries[member])
    tmp.replace(target)
    return target


# --------------------------------------------------------------------------- on-demand packages

def resolve_on_demand(requirements: Sequence[str], provided: dict[str, str], dest: Path, *,
                      log: Log = print_log) -> list[tuple[str, list[Path]]]:
    """Pure wheels for an app's ``allowed_packages`` and their dependencies.

    ``provided`` maps the site's own packages (normalised name → version): a dependency
    they satisfy is not shipped again. Returns ``[(requirement, [wheel, …its dependencies'
    wheels first])]``. Raises SiteError when a package (or a dependency) has no wheel that
    runs in the browser, or only a compiled one.
    """
    from pip._vendor.packaging.requirements import InvalidRequirement, Requirement
    from pip._vendor.packaging.version import Version

    dest.mkdir(parents=True, exist_ok=True)
    chosen: dict[str, Path] = {}

    def fetch(req: Requirement, wanted_by: str) -> Path:
        name = norm_name(req.name)
        if name in chosen:
            return chosen[name]
        cached = sorted((p for p in dest.glob("*.whl") if wheel_name_version(p.name)[0] == name
                         and req.specifier.contains(Version(wheel_name_version(p.name)[1]), prereleases=True)),
                        key=lambda p: Version(wheel_name_version(p.name)[1]))
        exact = any(s.operator in ("==", "===") and "*" not in s.version for s in req.specifier)
        if not (cached and exact):
            before = set(dest.glob("*.whl"))
            try:
                _pip_download([str(req)], dest, log)
            except SiteError:
                raise SiteError(
                    f"{req}{wanted_by} has no wheel that runs in the browser (pure Python, or built for {PYODIDE_PLATFORM})",
                    hint="remove it from allowed_packages, pick a version that has a py3-none-any wheel on PyPI, "
                         "or check the name and your connection to PyPI") from None
            new = sorted(set(dest.glob("*.whl")) - before) or cached
            cached = sorted((p for p in dest.glob("*.whl") if wheel_name_version(p.name)[0] == name
                             and req.specifier.contains(Version(wheel_name_version(p.name)[1]), prereleases=True)),
                            key=lambda p: Version(wheel_name_version(p.name)[1]))
            if not cached and new:
                cached = new
        if not cached:
            raise SiteError(f"no wheel for {req}{wanted_by} was found", hint="check the requirement in allowed_packages")
        wheel = cached[-1]
        if not is_pure(wheel):
            raise SiteError(f"{req}{wanted_by} is available for the browser only as a compiled wheel ({wheel.name}); "
                            "packages installed on demand must be pure Python",
                            hint="choose a pure-Python package, or ask for it to be added to the site's own packages")
        chosen[name] = wheel
        return wheel

    result: list[tuple[str, list[Path]]] = []
    for text in requirements:
        try:
            top = Requirement(text)
        except InvalidRequirement as exc:
            raise SiteError(f"allowed_packages: {text!r} is not a requirement ({exc})",
                            hint="write it like 'tabulate' or 'python-dateutil==2.9.0.post0'") from None
        if norm_name(top.name) in provided:
            raise SiteError(f"allowed_packages lists {top.name}, which the site already has ({provided[norm_name(top.name)]})",
                            hint=f"remove it from allowed_packages and list its modules in allowed_imports")
        order: list[Path] = []

        def visit(req: Requirement, wanted_by: str) -> None:
            name = norm_name(req.name)
            if name in provided:
                if not req.specifier.contains(Version(provided[name]), prereleases=True):
                    raise SiteError(f"{top.name} needs {req}, but the site has {req.name} {provided[name]}",
                                    hint=f"choose a version of {top.name} that works with {req.name} {provided[name]}")
                return
            wheel = fetch(req, wanted_by)
            if wheel in order:
                return
            for line in requirements_of(wheel):
                visit(Requirement(line), f" (needed by {wheel_name_version(wheel.name)[0]})")
            order.append(wheel)

        visit(top, "")
        result.append((text, order))
    return result


def top_level_names(wheel: Path) -> list[str]:
    """The importable top-level names a wheel installs."""
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    tops = set()
    for n in names:
        first = n.split("/")[0]
        if first.endswith((".dist-info", ".data")):
            continue
        if "/" in n:
            tops.add(first)
        elif n.endswith((".py", ".pyc")):
            tops.add(n.rsplit(".", 1)[0])
    return sorted(tops)


__all__ = ["FROM_SDIST", "PYODIDE_MARKERS", "PYODIDE_PLATFORM", "PYODIDE_VERSION", "build_pure_from_sdist",
           "compile_wheels", "install_order", "is_pure", "norm_name", "pin_parts", "pip_download_dir",
           "requirements_of", "resolve_on_demand", "top_level_names", "wheel_metadata", "wheel_name_version",
           "write_wheel"]
