"""Extra packages installed the first time model code imports them (issue 13.3).

An app may allow pure-Python packages beyond the site's own (``allowed_packages``). The
build ships their wheels and lists them in ``wheels/manifest.json`` under ``on_demand``::

    [{"name": "tabulate", "version": "0.10.0", "imports": ["tabulate"],
      "wheels": ["tabulate-0.10.0-py3-none-any.whl"]}]

Nothing of them is installed at boot. Imports are synchronous and installing is not, so
the agent calls :meth:`OnDemandPackages.before_run` with each step's checked code before
running it: it finds the imports of packages not installed yet, awaits their installation
(``install``, given by ``glue.py``: micropip, offline, from the site's own origin) and
returns one :class:`~py_agent.events.PackageInstalled` event per package for the transcript.

Pure Python: the scan and the bookkeeping are tested on CPython with a fake ``install``.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..events import PackageInstalled


@dataclass(frozen=True)
class Package:
    """One entry of the manifest's ``on_demand`` list."""

    name: str
    version: str
    imports: tuple[str, ...]
    wheels: tuple[str, ...]

    @classmethod
    def from_manifest(cls, entry: Mapping[str, Any]) -> Package:
        return cls(str(entry["name"]), str(entry.get("version", "")), tuple(entry["imports"]), tuple(entry["wheels"]))


def imported_names(tree: ast.AST) -> set[str]:
    """Top-level names of the modules a piece of code imports (absolute imports only)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


class OnDemandPackages:
    """Installs a step's on-demand packages before the step runs; each at most once."""

    def __init__(self, packages: Iterable[Package], install: Callable[[Package], Awaitable[None]]) -> None:
        self.by_import = {name: package for package in packages for name in package.imports}
        self.install = install
        self.installed: set[str] = set()
        self.failed: dict[str, str] = {}

    @classmethod
    def from_manifest(cls, entries: Iterable[Mapping[str, Any]], install: Callable[[Package], Awaitable[None]]) -> OnDemandPackages:
        return cls([Package.from_manifest(entry) for entry in entries], install)

    @property
    def import_names(self) -> frozenset[str]:
        """Every import name the on-demand packages provide (for the import policy)."""
        return frozenset(self.by_import)

    def needed(self, tree: ast.AST | str) -> list[Package]:
        """The packages ``tree`` imports that are neither installed nor failed, in order."""
        if isinstance(tree, str):
            tree = ast.parse(tree)
        wanted: list[Package] = []
        for name in sorted(imported_names(tree)):
            package = self.by_import.get(name)
            if package and package.name not in self.installed and package.name not in self.failed and package not in wanted:
                wanted.append(package)
        return wanted

    async def before_run(self, step: int, tree: ast.AST | str) -> list[PackageInstalled]:
        """Install what the step's code needs; one event per package it tried."""
        events = []
        for package in self.needed(tree):
            started = time.perf_counter()
            error = None
            try:
                await self.install(package)
                self.installed.add(package.name)
            except Exception as exc:  # noqa: BLE001 - the person and the model must hear of it
                error = f"{type(exc).__name__}: {exc}"
                self.failed[package.name] = error
            events.append(PackageInstalled(step, package.name, package.version, round((time.perf_counter() - started) * 1000, 1), error))
        return events


__all__ = ["OnDemandPackages", "Package", "imported_names"]
