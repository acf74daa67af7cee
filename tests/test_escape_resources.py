"""Hostile corpus, family 7: steps that would hang or crash the interpreter.

The time limit is checked between bytecodes, so one long C call cannot be stopped in the
process; inside Pyodide, deep recursion through C exhausts the JavaScript stack and kills
the interpreter. The run-time layer refuses the usual C-level runaways (huge integer
powers and factorials) and hands out large ranges and infinite iterators as Python-level
iterators the limit can stop; the executor keeps recursion shallow enough in the browser.
Each payload must end quickly with an error, never hang or crash.
"""

from __future__ import annotations

import time

import pytest
from sandbox_harness import Harness, for_each_payload, payload_ids

# Refused at once, whatever the platform (no time limit needed).
REFUSED = [
    ("huge power", "x = 10 ** 10 ** 8"),
    ("huge pow()", "x = pow(7, 10 ** 9)"),
    ("augmented power", "x = 3\nx **= 10 ** 9"),
    ("factorial", "import math\nmath.factorial(10 ** 7)"),
    ("comb", "from math import comb\ncomb(10 ** 7, 5 * 10 ** 6)"),
]

# Deep recursion through C: a RecursionError, not a dead interpreter.
RECURSION = [
    ("repr", "class A:\n    def __repr__(self):\n        return repr(self)\nrepr(A())"),
    ("eq", "class A:\n    def __eq__(self, other):\n        return self == other\nA() == 1"),
    ("format", "class A:\n    def __format__(self, spec):\n        return format(self, spec)\nf'{A()}'"),
    ("str", "class A:\n    def __str__(self):\n        return str(self)\nstr(A())"),
    ("sorted", "class A:\n    def __lt__(self, other):\n        return sorted([self, other])[0] is self\nsorted([A(), A()])"),
    ("property", "class A:\n    @property\n    def x(self):\n        return self.x\nA().x"),
    ("plain", "def f(n):\n    return f(n + 1)\nf(0)"),
]

# Recursion in C alone, over deeply nested data: CPython raises RecursionError; Pyodide 314's
# C-stack check does not see the JavaScript stack, and the interpreter dies at a few thousand
# levels (pyodide/pyodide#5959). In the browser the page restores the worker from the last
# commit; see SECURITY.md.
NESTED = [
    ("repr of nested lists", "l = []\nfor _ in range(100000):\n    l = [l]\nprint(repr(l))"),
    ("json of nested lists", "import json\nl = []\nfor _ in range(100000):\n    l = [l]\njson.dumps(l)"),
]

# C loops over huge or endless iterators: stopped by the time limit (CPython here; in the
# browser the page's interrupt plays the timer's part).
STOPPED_BY_THE_LIMIT = [
    ("sum of a huge range", "print(sum(range(10 ** 12)))"),
    ("max of a huge range", "print(max(range(10 ** 13)))"),
    ("list of repeat", "import itertools\nprint(len(list(itertools.repeat(1))))"),
    ("sum of count", "import itertools\nprint(sum(itertools.count()))"),
    ("any over a map of repeat", "import itertools\nprint(any(map(bool, itertools.repeat(0))))"),
    ("sorted cycle", "from itertools import cycle\nprint(sorted(cycle([1, 2])))"),
    ("reduce over a huge range", "import functools, operator\nprint(functools.reduce(operator.add, range(10 ** 12)))"),
    ("the range class itself", "R = type(range(1))\nprint(sum(R(10 ** 12)))"),
    ("deque drain", "import collections, itertools\ncollections.deque(itertools.count(), maxlen=0)"),
]


@for_each_payload(REFUSED, ["both", "runtime-only"])
def test_c_level_runaways_are_refused(harness: Harness, layers: str, name: str, code: str) -> None:
    started = time.perf_counter()
    result = harness.run(code, layers, timeout=30)
    assert result.failed and "TooLarge" in result.text, result.text
    assert time.perf_counter() - started < 10


@for_each_payload(RECURSION, ["both", "validator-only", "runtime-only"])
def test_deep_recursion_is_an_error_not_a_crash(harness: Harness, layers: str, name: str, code: str) -> None:
    result = harness.run(code, layers, timeout=30)
    if result.refused:  # the validator alone refuses special methods (they could run later)
        assert layers == "validator-only"
        return
    assert result.outcome is not None and "RecursionError" in (result.outcome.error or ""), result.text


@pytest.mark.cpython_only  # see NESTED
@pytest.mark.parametrize(("name", "code"), NESTED, ids=payload_ids(NESTED))
def test_nested_data_recursion_is_an_error(harness: Harness, name: str, code: str) -> None:
    result = harness.run(code, "both", timeout=30)
    assert result.outcome is not None and "RecursionError" in (result.outcome.error or ""), result.text


@pytest.mark.cpython_only  # needs the time limit (under Node, no page raises the alarm)
@for_each_payload(STOPPED_BY_THE_LIMIT, ["both", "runtime-only"])
def test_c_loops_stop_at_the_time_limit(harness: Harness, layers: str, name: str, code: str) -> None:
    started = time.perf_counter()
    result = harness.run(code, layers, timeout=0.5)
    assert result.outcome is not None and "StepTimeout" in (result.outcome.error or ""), result.text
    assert time.perf_counter() - started < 10


def test_ranges_still_behave_like_ranges(harness: Harness) -> None:
    result = harness.run(
        "r = range(10 ** 9)\nprint(len(r), r[5], r[-1], 10 ** 8 in r, isinstance(r, range), r.step)\n"
        "print(list(range(3)), list(reversed(range(3))), type(range(2)) is range, 2 ** 10, pow(3, 4, 5))"
    )
    result.assert_ran()
    assert result.outcome is not None
    assert result.outcome.output.splitlines() == ["1000000000 5 999999999 True True 1", "[0, 1, 2] [2, 1, 0] True 1024 1"]
