"""Hostile corpus, family 6: objects of the browser bridge (issue 7.2, 7.5).

Inside Pyodide, ``js.globalThis`` is the worker's JavaScript global: from it, Cache Storage,
IndexedDB and ``fetch``. Model code must never hold one. Here a tool hands one over (as a
careless app's tool might); the run-time layer refuses it at the tool's return, and any
attribute of it anyway. On CPython the same is checked with a stand-in proxy class
registered the way the browser adapter registers ``pyodide.ffi.JsProxy``.
"""

from __future__ import annotations

import sys

import pytest
import sandbox_harness
from sandbox_harness import JS_SECRET, LAYERS, Harness, for_each_payload

from py_agent.sandbox.runtime import register_unsafe_type
from py_agent.tools import Toolbox


class StandInProxy:
    """What a JsProxy looks like from Python: attributes and items lead to JavaScript."""

    def __init__(self) -> None:
        self.pyAgentCanary = JS_SECRET

    def __getitem__(self, key: str) -> str:
        return JS_SECRET

    def __repr__(self) -> str:
        return "[object global]"


if sys.platform == "emscripten":
    import js

    def js_global():
        """Returns the worker's JavaScript global object."""
        return js.globalThis

else:
    register_unsafe_type(StandInProxy, "a JavaScript object", "work with Python values only")

    def js_global():
        """Returns a stand-in for the worker's JavaScript global object."""
        return StandInProxy()


def js_in_a_list():
    """Returns a list holding the JavaScript global."""
    return [js_global()]


PAYLOADS = [
    ("attribute", "g = js_global()\nprint('ESCAPED', g.pyAgentCanary)"),
    ("getattr", "g = js_global()\nprint('ESCAPED', getattr(g, 'pyAgent' + 'Canary'))"),
    ("item", "g = js_global()\nprint('ESCAPED', g['pyAgentCanary'])"),
    ("format field", "print('ESCAPED', '{0.pyAgentCanary}'.format(js_global()))"),
    ("vars", "print('ESCAPED', vars(js_global()))"),
    ("in a list", "g = js_in_a_list()[0]\nprint('ESCAPED', g['pyAgentCanary'])"),
    ("attrgetter", "from operator import attrgetter\nprint('ESCAPED', attrgetter('pyAgentCanary')(js_global()))"),
    ("type of it", "t = type(js_global())\nprint('ESCAPED', t)"),
    ("frame to js module", "g = numbers()\nprint('ESCAPED', g.gi_frame.f_globals['sys'].modules['js'].globalThis.pyAgentCanary)"),
    ("import js", "import js\nprint('ESCAPED', js.globalThis.pyAgentCanary)"),
    ("import pyodide", "from pyodide.ffi import to_js\nprint('ESCAPED', to_js)"),
    ("js through a module view", "import sqlalchemy\nprint('ESCAPED', getattr(sqlalchemy, 'j' + 's'))"),
]


@pytest.fixture(scope="module")
def harness():
    h = Harness()
    h.toolbox = Toolbox([*sandbox_harness.TOOLS, js_global, js_in_a_list])
    yield h
    h.close()


@for_each_payload(PAYLOADS, [name for name in LAYERS if name != "validator-only"])
def test_no_javascript_object_reaches_model_code(harness: Harness, layers: str, name: str, code: str) -> None:
    # The validator alone cannot know what a tool returns; with the run-time layer, no layer
    # combination hands model code a JavaScript object.
    harness.run(code, layers).assert_safe()


def test_the_tool_result_refusal_says_why(harness: Harness) -> None:
    result = harness.run("g = js_global()")
    assert result.failed and "JavaScript object" in result.text
