"""Hostile corpus, family 5: code that would run after its step (issue 7.4).

Special methods of objects left in the namespace (``__del__``, comparison and hashing
hooks), generator finalisers (``finally``/``with`` run when the garbage collector closes a
half-consumed generator), SQLAlchemy event listeners, weakref finalizers and exit hooks.
The harness does what host code does later (flush, compare, hash, print the namespace's
values, drop it and collect garbage) with no step running; the ``record`` tool tells if
model code ran then. Exceptions and last values are formatted inside the step's limits.
"""

from __future__ import annotations

import decimal

import pytest

# Model code refusing to run during garbage collection is reported as "unraisable": that
# refusal is what these tests provoke.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning", "ignore::RuntimeWarning")

from sandbox_harness import Harness, for_each_payload

PAYLOADS = [
    ("__del__", "class A:\n    def __del__(self):\n        record('del')\nkeep = A()\nprint('ESCAPED')"),
    ("__del__ by setattr", "class A:\n    pass\nsetattr(A, '__d' + 'el__', lambda self: record('del'))\nkeep = A()\nprint('ESCAPED')"),
    ("__del__ by type()", "A = type('A', (), {'__del__': lambda self: record('del')})\nkeep = A()\nprint('ESCAPED')"),
    (
        "__del__ by make_dataclass",
        "import dataclasses\nn = '_' * 2 + 'del' + '_' * 2\nA = dataclasses.make_dataclass('A', [], namespace={n: lambda self: record('del')})\n"
        "keep = A()\nprint('ran', keep)",
    ),
    ("__eq__ and __hash__ left behind", "class K:\n    def __eq__(self, other):\n        record('eq')\n        return True\n    def __hash__(self):\n        record('hash')\n        return 1\nkeep = K()\nprint('ran')"),
    ("__repr__ and __str__ left behind", "class K:\n    def __repr__(self):\n        record('repr')\n        return 'k'\n    __str__ = __repr__\nkeep = K()\nprint('ran')"),
    ("__bool__ left behind", "class K:\n    def __bool__(self):\n        record('bool')\n        return True\nkeep = K()\nprint('ran')"),
    (
        "__eq__ in a column value, compared at a later flush",
        "class S(str):\n    def __eq__(self, other):\n        record('eq')\n        return False\n    def __hash__(self):\n        return 1\n"
        "b = session.scalars(select(Book)).first()\nb.title = S('new title')\nprint('ran')",
    ),
    (
        "generator finally",
        "def g():\n    try:\n        yield 1\n        yield 2\n    finally:\n        record('finally')\nit = g()\nnext(it)\nprint('ran')",
    ),
    (
        "generator with-block",
        "class CM:\n    def __enter__(self):\n        return self\n    def __exit__(self, *exc):\n        record('exit')\n"
        "def g():\n    with CM():\n        yield 1\n        yield 2\nit = g()\nnext(it)\nprint('ran')",
    ),
    (
        "generator catching GeneratorExit",
        "def g():\n    while True:\n        try:\n            yield 1\n        except GeneratorExit:\n            record('closed')\n            raise\nit = g()\nnext(it)\nprint('ran')",
    ),
    (
        "async generator finally",
        "async def ag():\n    try:\n        yield 1\n    finally:\n        record('afinally')\nit = ag()\nawait anext(it)\nprint('ran')",
    ),
    ("session event listener", "from sqlalchemy import event\nevent.listen(session, 'after_begin', lambda *a: record('listener'))\nprint('ESCAPED')"),
    ("listener via the package", "import sqlalchemy\nsqlalchemy.event.listen(session, 'after_flush', lambda *a: record('listener'))\nprint('ESCAPED')"),
    ("listener computed", "import sqlalchemy\ne = getattr(sqlalchemy, 'ev' + 'ent')\ne.listen(session, 'after_flush', lambda *a: record('listener'))\nprint('ESCAPED')"),
    ("listens_for decorator", "from sqlalchemy.event import listens_for\n@listens_for(Book, 'load')\ndef on_load(target, context):\n    record('load')\nprint('ESCAPED')"),
    ("dispatch append", "session.dispatch.after_flush.append(lambda *a: record('listener'))\nprint('ESCAPED')"),
    ("dispatch computed", "d = getattr(session, 'dis' + 'patch')\nd.after_flush.append(lambda *a: record('listener'))\nprint('ESCAPED')"),
    ("class-level dispatch", "from sqlalchemy.orm import Session\nSession.dispatch.after_flush.append(lambda *a: record('listener'))\nprint('ESCAPED')"),
    ("mutable association", "from sqlalchemy.ext.mutable import MutableDict\nMutableDict.associate_with(type(Book.title.type))\nprint('ESCAPED')"),
    ("compiles hook", "from sqlalchemy.ext.compiler import compiles\nfrom sqlalchemy.sql.expression import Select\n@compiles(Select)\ndef c(element, compiler, **kw):\n    record('compile')\n    return 'select 1'\nprint('ESCAPED')"),
    ("weakref finalizer", "import weakref\nclass A:\n    pass\nkeep = A()\nweakref.finalize(keep, record, 'finalize')\nprint('ESCAPED')"),
    ("atexit hook", "import atexit\natexit.register(record, 'atexit')\nprint('ESCAPED')"),
    ("contextvars and threads", "import threading\nthreading.Timer(0.01, record, ['timer']).start()\nprint('ESCAPED')"),
    ("init_subclass hook", "class A:\n    def __init_subclass__(cls):\n        record('subclass')\nprint('ESCAPED')"),
    ("getattr hook", "class A:\n    def __getattr__(self, name):\n        record('getattr')\n        return 1\nkeep = A()\nprint('ESCAPED')"),
    ("set_name hook", "class D:\n    def __set_name__(self, owner, name):\n        record('set_name')\nprint('ESCAPED')"),
    ("class_getitem hook", "class A:\n    def __class_getitem__(cls, item):\n        record('getitem')\nprint('ESCAPED')"),
]


@for_each_payload(PAYLOADS)
def test_nothing_runs_after_its_step(harness: Harness, layers: str, name: str, code: str) -> None:
    result = harness.run(code, layers)
    # With the run-time layer, model-defined special methods are allowed (they refuse to run
    # outside their step): such payloads may run to their end, but record() must never have
    # run later. Everything else must fail.
    harmless_with_runtime = layers != "validator-only" and name in RUN_BUT_INERT
    result.assert_safe(must_fail=not harmless_with_runtime)


# Payloads that define special methods or generators: ordinary code with the run-time layer.
RUN_BUT_INERT = {
    "__eq__ and __hash__ left behind",
    "__repr__ and __str__ left behind",
    "__bool__ left behind",
    "__eq__ in a column value, compared at a later flush",
    "generator finally",
    "generator with-block",
    "generator catching GeneratorExit",
    "async generator finally",
    "__del__ by make_dataclass",
}


def test_model_functions_refuse_outside_the_step(harness: Harness) -> None:
    # The host calling a model function later gets a clear error, not the function's effect.
    result = harness.run("def f():\n    record('called')\nkeep = f\nf()", later=False)
    result.assert_ran()
    from sandbox_harness import RECORDED

    assert RECORDED == [("called", "step")]


@pytest.mark.cpython_only  # needs the time limit (in the browser the page's interrupt does it)
@pytest.mark.parametrize(
    "code",
    [
        "class E(Exception):\n    def __str__(self):\n        while True:\n            pass\nraise E()",
        "class R:\n    def __repr__(self):\n        while True:\n            pass\nR()",
        "def g():\n    try:\n        yield 1\n    finally:\n        while True:\n            pass\nit = g()\nnext(it)\ndel it",
    ],
    ids=["exception __str__", "repr of the last value", "finaliser during the step"],
)
def test_what_runs_in_the_step_runs_under_its_time_limit(harness: Harness, code: str) -> None:
    result = harness.run(code, "both", timeout=0.3)
    assert result.outcome is not None and result.outcome.duration_ms < 5000
    if "finally" not in code:  # a finaliser's exception is unraisable: the loop stops, silently
        assert result.outcome.error is not None and "StepTimeout" in result.outcome.error, result.outcome.error


def test_exception_messages_are_formatted_inside_the_step(harness: Harness) -> None:
    result = harness.run("class E(Exception):\n    def __str__(self):\n        record('str')\n        return 'custom'\nraise E()")
    assert result.outcome is not None and result.outcome.error.endswith("E: custom")
    assert not result.outside


def test_a_broken_exception_message_does_not_break_the_report(harness: Harness) -> None:
    result = harness.run("class E(Exception):\n    def __str__(self):\n        raise ValueError('nope')\nraise E()")
    assert result.outcome is not None and "E: (its message could not be shown: ValueError)" in result.outcome.error


def test_the_decimal_context_does_not_outlive_the_step(harness: Harness) -> None:
    before = decimal.getcontext().prec
    harness.run("import decimal\ndecimal.getcontext().prec = 2\nprint(decimal.Decimal(1) / 3)").assert_ran()
    assert decimal.getcontext().prec == before
