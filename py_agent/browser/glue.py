"""Pyodide glue: the only module of py-agent that imports ``js``/``pyodide``.

``web/app/worker.js`` calls :func:`start` once the wheels are installed and
then hands every message from the page to :meth:`JsRuntime.handle`.
"""

from __future__ import annotations

import json
from typing import Any

from ..sandbox.limits import StepTimeout, ignore_page_alarms
from .ondemand import OnDemandPackages, Package
from .runtime import Runtime

def start(
    post_js: Any, executing: Any = None, interrupt: Any = None, test_hooks: bool = False, on_demand: Any = None
) -> "JsRuntime":
    """Called by worker.js once the wheels are installed.

    ``post_js(text, data)`` posts a message (JSON text + optional Uint8Array).
    With cross-origin isolation, ``executing`` is an Int32Array over shared
    memory whose element 0 says "model code is running", and ``interrupt`` is
    Pyodide's interrupt buffer; both are None without it. ``on_demand`` is
    ``{"packages": manifest["on_demand"], "wheels": URL of wheels/, "micropip": its wheel}``
    (see :func:`on_demand_packages`); the runtime finds the installer in
    ``runtime.on_demand``.
    """
    from pyodide.ffi import to_js

    def post(message: dict[str, Any], data: bytes | None) -> None:
        post_js(json.dumps(message, default=str), to_js(data) if data is not None else None)

    def set_executing(flag: bool) -> None:
        if executing is None:
            return
        import js

        js.Atomics.store(executing, 0, 1 if flag else 0)
        if not flag and interrupt is not None:
            # An interrupt raised after the code finished must not fire somewhere else later.
            js.Atomics.store(interrupt, 0, 0)

    # The page writes SIGALRM into the interrupt buffer when a step passes its time limit;
    # during a step the core's Deadline turns it into StepTimeout, outside one it is ignored.
    ignore_page_alarms()
    _refuse_javascript_objects()
    runtime = Runtime(post, set_executing=set_executing, test_hooks=bool(test_hooks))
    runtime.on_demand = on_demand_packages(on_demand)  # type: ignore[attr-defined]
    return JsRuntime(runtime)


def _refuse_javascript_objects() -> None:
    """Model code may never read or hold a JavaScript object (the run-time layer refuses any
    JsProxy, whatever module it came from)."""
    from pyodide.ffi import JsProxy

    from ..sandbox.runtime import register_unsafe_type

    register_unsafe_type(JsProxy, "a JavaScript object", "work with Python values only")


def on_demand_packages(config: Any) -> OnDemandPackages:
    """The installer of the app's extra packages: micropip, from the site's own wheels/.

    micropip itself is loaded the first time a package is needed, not at boot.
    """
    config = config.to_py() if hasattr(config, "to_py") else dict(config or {})
    wheels = str(config.get("wheels") or "")
    state: dict[str, Any] = {"micropip": None}

    async def install(package: Package) -> None:
        import importlib

        if state["micropip"] is None:
            import pyodide_js

            await pyodide_js.loadPackage(wheels + str(config["micropip"]))
            state["micropip"] = importlib.import_module("micropip")
        await state["micropip"].install([wheels + w for w in package.wheels], deps=False)
        importlib.invalidate_caches()
        for name in package.imports:  # micropip can report success when a download failed
            importlib.import_module(name)

    return OnDemandPackages.from_manifest(config.get("packages") or [], install)


class JsRuntime:
    """What worker.js holds: ``handle(text, data)`` for each message from the page."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def handle(self, text: str, data: Any = None) -> None:
        try:
            message = json.loads(text)
            payload = data.to_bytes() if data is not None and hasattr(data, "to_bytes") else data
            self.runtime.receive(message, payload)
        except (KeyboardInterrupt, StepTimeout):
            # A late interrupt hit while handling a message: end the turn rather than crash.
            self.runtime.executing = False
            self.runtime.on_abort({}, None)


# -- boot hooks (web/app/boot.js) --------------------------------------------------------------
#
# A boot from the site's packages ends with prepare_boot(), then a memory snapshot of the
# heap; a later boot restores that heap and calls after_restore(). Whatever prepare_boot()
# leaves in memory is in every later visit, so it must hold nothing of a visit: no database
# file, no conversation, no settings, no reference to a JavaScript object.


def prepare_boot(schema: str, warm_up: bool = True) -> None:
    """Import the app's schema and, with ``warm_up``, do once what every first request would do.

    The warm-ups (mappers, the SQLite dialect, an agent over an in-memory database) import
    lazily loaded modules and fill the caches that are global to a process, so they are in
    the snapshot; their objects are dropped again. A warm-up that fails costs time later,
    never the boot. A boot that makes no snapshot skips them: the person is waiting, and
    the first request does that work anyway.
    """
    import gc
    import importlib

    module = importlib.import_module(schema)
    try:  # the app as the runtime opens it (cached, so in the snapshot too)
        from ..app import load_site_app

        load_site_app(schema)
    except Exception as exc:  # noqa: BLE001 - the runtime's open says what is wrong, in the page
        print(f"py-agent: the app {schema!r} could not be described at boot ({type(exc).__name__}: {exc})")
    if not warm_up:
        return
    base = getattr(module, "Base", None)
    if base is not None:
        try:
            _warm_up(base)
        except Exception as exc:  # noqa: BLE001 - a failed warm-up must not stop the boot
            print(f"py-agent: a boot warm-up failed ({type(exc).__name__}: {exc}); continuing")
    gc.collect()


def _warm_up(base: Any) -> None:
    from sqlalchemy import create_engine, inspect, select
    from sqlalchemy.orm import Session, configure_mappers

    from .. import Agent, ScriptedProvider
    from ..state import State

    configure_mappers()
    engine = create_engine("sqlite://")
    try:
        base.metadata.create_all(engine)
        with Session(engine) as session:
            for mapper in list(base.registry.mappers)[:1]:
                session.scalars(select(mapper.class_).limit(1)).all()
        inspect(engine).get_table_names()
        state = State(engine=engine)
        Agent(base=base, model=ScriptedProvider([]))
        state.close()
    finally:
        engine.dispose()


def after_restore(schema: str) -> None:
    """Called once a boot restored the snapshot: what must differ between visits.

    Raises if the snapshot does not hold what a boot from the packages would (the worker then
    boots from the packages instead).
    """
    import random
    import sys
    import tempfile

    random.seed()  # else every visit would draw the same numbers
    tempfile._name_sequence = None  # type: ignore[attr-defined]  # reseeded on first use
    missing = [name for name in (schema, "py_agent.browser.runtime", "sqlalchemy.orm", "pydantic") if name not in sys.modules]
    if missing:
        raise RuntimeError(f"the snapshot lacks {', '.join(missing)}")


__all__ = ["JsRuntime", "after_restore", "on_demand_packages", "prepare_boot", "start"]
