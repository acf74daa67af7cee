"""Checked execution on its own: output capture, truncation, tracebacks, containment."""

from __future__ import annotations

import asyncio

import pytest

from py_agent.sync import run_sync

from py_agent.sandbox.executor import BoundedOutput, Executor
from py_agent.sandbox.runtime import safe_builtins
from py_agent.sandbox.validator import Policy


def run(code: str, ns: dict | None = None, **options) -> object:
    ns = ns if ns is not None else {"__builtins__": safe_builtins(Policy())}
    return run_sync(Executor(ns, **options).run(code))


def test_stdout_and_stderr_are_captured():
    out = run("print('a')\nprint('b')")
    assert out.output == "a\nb\n" and out.error is None


def test_output_before_an_error_is_kept_with_a_short_traceback():
    out = run("print('before')\ndef f(x):\n    return 1 / x\nf(0)")
    assert out.output == "before\n"
    assert out.error.splitlines() == [
        "Traceback (your code):",
        "  line 4: f(0)",
        "  line 3, in f: return 1 / x",
        "ZeroDivisionError: division by zero",
    ]


@pytest.mark.parametrize("code", ["raise SystemExit(3)", "raise KeyboardInterrupt", "raise GeneratorExit", "class E(BaseException): pass\nraise E('x')"])
def test_every_base_exception_is_contained(code):
    out = run("print('still here')\n" + code)
    assert out.output == "still here\n" and out.error


def test_huge_output_is_cut_with_a_note_and_bounded_memory():
    out = run("for i in range(200000):\n    print('line', i)", max_output=1000)
    assert out.truncated and len(out.output) < 1200
    assert "characters of output left out" in out.output
    assert out.output.startswith("line 0\n") and out.output.rstrip().endswith("line 199999")


def test_bounded_output_counts_everything():
    sink = BoundedOutput(10)
    sink.write("x" * 100)
    assert sink.total == 100 and sink.truncated


def test_last_expression_is_shown_like_a_repl():
    assert run("x = 2\nx * 21").output == "42\n"
    assert run("print('p')").output == "p\n"  # a call returning None shows nothing more


def test_namespace_persists_between_steps():
    ns = {"__builtins__": safe_builtins(Policy())}
    ex = Executor(ns)
    run_sync(ex.run("total = 40"))
    out = run_sync(ex.run("print(total + 2)"))
    assert out.output == "42\n"


def test_top_level_await():
    async def fetch_number():
        await asyncio.sleep(0)
        return 7

    ns = {"__builtins__": safe_builtins(Policy()), "fetch_number": fetch_number}
    assert run("print(await fetch_number())", ns).output == "7\n"


def test_syntax_errors_are_reported_not_raised():
    out = run("def broken(:\n    pass")
    assert out.error.startswith("SyntaxError") and "line 1" in out.error


@pytest.mark.cpython_only
def test_time_bound_stops_a_python_loop():
    out = run("print('start')\nwhile True:\n    pass", timeout=0.2)
    assert out.output == "start\n" and "StepTimeout" in out.error


@pytest.mark.cpython_only
def test_time_bound_is_not_swallowed_by_except_exception():
    # StepTimeout is a BaseException; `except BaseException` and bare `except:` are the
    # validator's job (rule "broad-except"), since no Python-level timer can escape them.
    code = "n = 0\nwhile True:\n    try:\n        while True:\n            n += 1\n    except Exception:\n        n += 1"
    out = run(code, timeout=0.2)
    assert "StepTimeout" in out.error


def test_output_is_passed_on_as_it_is_printed():
    pieces = []
    out = run("print('a')\nprint('b' * 5)", on_output=pieces.append, max_output=4)
    assert "".join(pieces) == "a\nbbbbb\n"  # everything, before the cut
    assert out.truncated


def test_finish_runs_inside_the_step_and_its_error_reaches_the_caller():
    ns = {"__builtins__": safe_builtins(Policy())}
    ex = Executor(ns)
    run_sync(ex.run("class K:\n    def __eq__(self, other):\n        return True\nk = K()"))
    seen = []
    out = run_sync(ex.run("x = 1", finish=lambda: seen.append(ns["k"] == 1)))
    assert out.error is None and seen == [True]  # model code may run during finish...
    with pytest.raises(RuntimeError, match="only run during its own step"):
        ns["k"] == 1  # ...but not afterwards
    with pytest.raises(ValueError, match="flush failed"):
        run_sync(ex.run("x = 2", finish=lambda: (_ for _ in ()).throw(ValueError("flush failed"))))


def test_model_exceptions_are_described_inside_the_limits():
    out = run("class E(Exception):\n    def __str__(self):\n        return 'from the model'\nraise E()")
    assert out.error.endswith("E: from the model")
