"""Load an app in a process of its own and report what a site needs to know about it.

    python -m py_agent.site.inspect_app APP [--demo FILE] [--provided a,b,c]

Prints one JSON object: ``{"ok": true, ...}`` with the app's description, the files of its
module to pack, its data file and demo, the seeded table counts and warnings; or
``{"ok": false, "error": {"message", "hint"}}``. The builder runs it in a subprocess so
that an app's import side effects, a seed that runs for ever or a module name that clashes
with another app's stay out of the builder's process.

Checks beyond :func:`py_agent.app.load_app`: the seed (or ``DATA``) fills an empty
database without raising, and every module the app imports exists in the browser: the
standard library, the site's own packages, or files of the app (packed with it).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any


def _module_files(module: ModuleType) -> tuple[Path, dict[str, Path]]:
    """The folder that holds a top-level module, and its files (archive name → path)."""
    paths = list(getattr(module, "__path__", []) or [])
    name = module.__name__
    if paths:   # a package: every file under it, except caches and hidden files
        folder = Path(paths[0]).resolve()
        files = {}
        for p in sorted(folder.rglob("*")):
            rel = p.relative_to(folder)
            if p.is_file() and "__pycache__" not in rel.parts and not any(part.startswith(".") for part in rel.parts) \
                    and p.suffix not in {".pyc", ".pyo"}:
                files[f"{name}/{rel.as_posix()}"] = p
        return folder.parent, files
    file = Path(module.__file__ or "").resolve()
    return file.parent, {f"{name}.py": file}


class _Imports(ast.NodeVisitor):
    """Top-level names a module imports: those at import time (module level, not under try) and the rest."""

    def __init__(self) -> None:
        self.eager: dict[str, int] = {}
        self.lazy: dict[str, int] = {}
        self._depth = 0
        self._try = 0

    def _add(self, name: str, line: int) -> None:
        target = self.lazy if (self._depth or self._try) else self.eager
        target.setdefault(name.split(".")[0], line)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and not node.level:
            self._add(node.module, node.lineno)

    def _nested(self, node: ast.AST) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _nested

    def visit_Try(self, node: ast.Try) -> None:
        self._try += 1
        for child in node.body:
            self.visit(child)
        self._try -= 1
        for child in [*node.handlers, *node.orelse, *node.finalbody]:
            self.visit(child)

    visit_TryStar = visit_Try

    def visit_If(self, node: ast.If) -> None:
        # `if TYPE_CHECKING:` imports never run.
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)


def inspect(spec: str, demo: str | None, provided: set[str]) -> dict[str, Any]:
    from ..app import load_app
    from ..browser.recovery import schema_enums
    from ..recording import Demo

    app = load_app(spec, overrides={"DEMO": str(Path(demo).resolve())} if demo else None)
    if app.source is None:
        raise _Failure(f"{app.name} has no source file to pack", "pass a .py file, a package folder or an importable module")
    top = app.name.split(".")[0]
    folder, files = _module_files(sys.modules[top])
    warnings = list(app.warnings)

    # Every module the app imports must exist in the browser; sibling modules come along.
    on_demand = {name.split("==")[0].split("[")[0].split(">")[0].split("<")[0].strip().lower().replace("-", "_")
                 for name in app.allowed_packages}
    checked: set[str] = {top}
    todo = [p for name, p in files.items() if name.endswith(".py")]
    while todo:
        path = todo.pop()
        visitor = _Imports()
        try:
            visitor.visit(ast.parse(path.read_bytes(), str(path)))
        except SyntaxError:
            continue   # only reachable for files the app never imports (load_app imported the rest)
        for name, line in [*visitor.eager.items(), *visitor.lazy.items()]:
            if name in checked or name in sys.stdlib_module_names or name in provided or name == "__future__":
                continue
            checked.add(name)
            module = sys.modules.get(name)
            location = Path(getattr(module, "__file__", None) or "").resolve() if module else None
            if location and folder in location.parents:
                _, more = _module_files(module)  # type: ignore[arg-type]
                files.update(more)
                todo.extend(p for n, p in more.items() if n.endswith(".py"))
                continue
            where = f"{path}:{line}"
            if name in visitor.eager:
                hint = (f"{name} is installed on demand for the model's code only: import it inside the function "
                        "that uses it" if name.lower() in on_demand else
                        "the browser has the standard library, SQLAlchemy, pydantic, jinja2 and py_agent; "
                        f"move the import of {name} into the function that needs it, or drop it")
                raise _Failure(f"{where}: the app imports {name}, which the browser site does not have", hint)
            warnings.append(f"{where}: `import {name}` will fail in the browser (the site does not have {name})")

    demo_path = app.demo_path
    if demo and demo_path is None:
        raise _Failure(f"there is no demo file {demo}", "check the path given to --demo")
    if app.data is not None and app.data.stat().st_size > 50_000_000:
        warnings.append(f"DATA ({app.data}) is {app.data.stat().st_size / 1e6:.0f} MB: every first visit downloads it")

    # The seed (or DATA) must fill an empty database: the browser does exactly this on a first visit.
    from sqlalchemy import func, select

    engine = app.open_database("sqlite://")
    try:
        with engine.connect() as connection:
            tables = {t.name: connection.scalar(select(func.count()).select_from(t)) for t in app.base.metadata.sorted_tables}
    finally:
        engine.dispose()
    return {
        "ok": True,
        "app": app.manifest(),
        "module": app.name,
        "top": top,
        "files": {name: str(p) for name, p in sorted(files.items())},
        "data": str(app.data) if app.data else None,
        "demo": str(demo_path) if demo_path else None,
        "demo_requests": Demo.load(demo_path).requests if demo_path else [],
        "enums": schema_enums(app.base),
        "tables": tables,
        "warnings": warnings,
    }


class _Failure(Exception):
    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m py_agent.site.inspect_app")
    parser.add_argument("app")
    parser.add_argument("--demo")
    parser.add_argument("--provided", default="", help="comma-separated import names the site has")
    args = parser.parse_args(argv)
    from ..errors import PyAgentError

    try:
        result = inspect(args.app, args.demo, {n for n in args.provided.split(",") if n})
    except (PyAgentError, _Failure) as exc:
        result = {"ok": False, "error": {"message": exc.message, "hint": exc.hint}}
    except Exception as exc:  # noqa: BLE001 - the builder reports it
        result = {"ok": False, "error": {"message": f"{type(exc).__name__}: {exc}", "hint": "this may be a py-agent bug"}}
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
