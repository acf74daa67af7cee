"""Pyodide glue: the only module of py-agent that imports ``js``/``pyodide``.

``web/app/worker.js`` calls :func:`start` once the wheels are installed and
then hands every message from the page to :meth:`JsRuntime.handle`.
"""

from __future__ import annotations

import json
from typing import Any

from .runtime import Runtime

def start(post_js: Any, executing: Any = None, interrupt: Any = None, test_hooks: bool = False) -> "JsRuntime":
    """Called by worker.js once the wheels are installed.

    ``post_js(text, data)`` posts a message (JSON text + optional Uint8Array).
    With cross-origin isolation, ``executing`` is an Int32Array over shared
    memory whose element 0 says "model code is running", and ``interrupt`` is
    Pyodide's interrupt buffer; both are None without it.
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

    return JsRuntime(Runtime(post, set_executing=set_executing, test_hooks=bool(test_hooks)))


class JsRuntime:
    """What worker.js holds: ``handle(text, data)`` for each message from the page."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def handle(self, text: str, data: Any = None) -> None:
        try:
            message = json.loads(text)
            payload = data.to_bytes() if data is not None and hasattr(data, "to_bytes") else data
            self.runtime.receive(message, payload)
        except KeyboardInterrupt:
            # A late interrupt hit while handling a message: end the turn rather than crash.
            self.runtime.executing = False
            self.runtime.on_abort({}, None)


__all__ = ["JsRuntime", "start"]
