"""@llm_func: a typed signature whose body a model writes, checked and run in the sandbox,
with the result validated against the return type, post hooks, retries that tell the model
what failed, and the attempt history. Pure Python: also runs inside Pyodide under Node."""

from __future__ import annotations

import inspect

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel

from py_agent import ScriptedProvider
from py_agent.errors import ConfigurationError
from py_agent.llm_func import (
    BudgetExceededError,
    DepthLimitError,
    HookError,
    LLMFuncError,
    default_model,
    llm_func,
    usage_meter,
)
from py_agent.sync import run_sync
from py_agent.tools import Toolbox, as_tool


def reply(code: str, message: str = "Computing it.") -> dict[str, str]:
    return {"message": message, "code": code}


def ensure(condition: bool, message: str) -> None:
    """`assert condition, message` (written out: pytest rewrites the asserts of test modules,
    which would change the messages the model is shown)."""
    if not condition:
        raise AssertionError(message)


def is_sorted(result, words):
    "the same words, sorted by length"
    ensure(sorted(result) == sorted(words), "words were lost or added")
    ensure([len(w) for w in result] == sorted(len(w) for w in result), f"not sorted by length: {result}")


def test_first_reply_fails_an_assertion_second_passes_and_history_shows_both() -> None:
    model = ScriptedProvider([
        reply("result = sorted(words)"),  # alphabetical: the hook rejects it
        reply("result = sorted(words, key=lambda w: (len(w), w))", "Sorting by length."),
    ])

    @llm_func(model=model, post=[is_sorted])
    def by_length(words: list[str]) -> list[str]:
        """The words from the shortest to the longest; ties in alphabetical order."""

    assert by_length(["pear", "fig", "banana"]) == ["fig", "pear", "banana"]

    call = by_length.last_call
    assert call is not None and call.ok and call.result == ["fig", "pear", "banana"]
    assert [a.ok for a in call.attempts] == [False, True]
    first, second = call.attempts
    assert first.value == ["banana", "fig", "pear"] and first.has_value
    assert first.failure.kind == "post" and first.failure.hook == "is_sorted"
    assert first.failure.detail == "AssertionError: not sorted by length: ['banana', 'fig', 'pear']"
    assert first.feedback == (
        "Attempt 1 of 3 failed: the check `is_sorted` rejected the result.\n"
        "\n"
        "Your reply was:\n"
        '{"message": "Computing it.", "code": "result = sorted(words)"}\n'
        "\n"
        "Your code produced (the value of `result`): ['banana', 'fig', 'pear']\n"
        "\n"
        "The check `is_sorted` failed: AssertionError: not sorted by length: ['banana', 'fig', 'pear']\n"
        "\n"
        "Reply again with the whole snippet, corrected; it must set `result`."
    )
    assert second.message == "Sorting by length." and second.feedback == ""
    assert call.usage.output_tokens > 0 and call.usage == first.usage + second.usage

    # The model saw the contract, the arguments, then its own reply and exactly that feedback.
    ask_first, ask_again = model.requests
    assert "def by_length(words: list[str]) -> list[str]:" in ask_first.system
    assert "The words from the shortest to the longest" in ask_first.system
    assert "`is_sorted` (the same words, sorted by length)" in ask_first.system
    assert ask_first.messages[0].content.startswith("Compute by_length(words=['pear', 'fig', 'banana']).")
    assert [m.role for m in ask_again.messages] == ["user", "assistant", "user"]
    assert ask_again.messages[2].content == first.feedback


def test_an_async_model_function_is_awaited() -> None:
    model = ScriptedProvider([reply("result = a + b")])

    @llm_func(model=model)
    async def add(a: int, b: int) -> int:
        """The sum."""

    coroutine = add(2, 3)
    assert asyncio.iscoroutine(coroutine)
    assert run_sync(coroutine) == 5  # asyncio.run on CPython; stepped by hand inside Pyodide
    assert add.last_call.ok and as_tool(add).is_async


def test_the_result_is_validated_against_the_return_type() -> None:
    class Book(BaseModel):
        title: str
        year: int

    model = ScriptedProvider([
        reply("result = {'title': 'Dune'}"),  # no year
        reply("result = Book(title='Dune', year='1965')"),  # lax mode: '1965' is a valid int
    ])

    @llm_func(model=model)
    def find(title: str) -> Book:
        """The book."""

    book = find("dune")
    assert book == Book(title="Dune", year=1965)
    first = find.last_call.attempts[0]
    assert first.failure.kind == "type"
    assert "The return type `Book` refused it:\n- ['year']: Field required" in first.feedback
    assert "These classes are defined for your code: Book." in model.requests[0].system
    assert '"year"' in model.requests[0].system  # the JSON schema of the result


@pytest.mark.parametrize(
    ("code", "kind", "said"),
    [
        ("result = 1 / 0", "error", "ZeroDivisionError: division by zero"),
        ("x = 1", "no_result", "Your code did not set `result`."),
        ("result = open('/etc/passwd').read()", "refused", "Your code was refused before it ran"),
        ("import os\nresult = os.getcwd()", "refused", "Your code was refused before it ran"),
        ("", "no_code", "Your reply had no code."),
    ],
)
def test_model_failures_are_fed_back_and_retried(code: str, kind: str, said: str) -> None:
    model = ScriptedProvider([reply(code), reply("result = 42")])

    @llm_func(model=model)
    def answer() -> int:
        """The answer."""

    assert answer() == 42
    failed = answer.last_call.attempts[0]
    assert failed.failure.kind == kind and said in failed.feedback
    assert model.requests[1].messages[-1].content == failed.feedback


def test_a_malformed_reply_is_retried() -> None:
    model = ScriptedProvider(['{"message": "oops", "code": ', reply("result = 'ok'")])

    @llm_func(model=model)
    def status() -> str:
        """A status word."""

    assert status() == "ok"
    assert status.last_call.attempts[0].failure.kind == "malformed"
    assert "not valid JSON" in status.last_call.attempts[0].feedback


def test_every_attempt_failing_raises_with_the_history() -> None:
    model = ScriptedProvider([reply("result = 'seven'")] * 3)

    @llm_func(model=model, max_attempts=3)
    def count(words: list[str]) -> int:
        """How many words."""

    with pytest.raises(LLMFuncError) as caught:
        count(["a", "b"])
    call = caught.value.call
    assert call is count.last_call and not call.ok and len(call.attempts) == 3
    assert [a.failure.kind for a in call.attempts] == ["type", "type", "type"]
    assert "gave no valid result in 3 attempts: the result has the wrong type" in caught.value.message
    assert "error.call.attempts" in caught.value.hint
    assert call.attempts[-1].feedback == ""  # nobody was told after the last one


def test_a_broken_hook_fails_at_once() -> None:
    def broken(result):
        return result.upper()  # AttributeError on an int: a bug, not a rejection

    model = ScriptedProvider([reply("result = 1"), reply("result = 2")])

    @llm_func(model=model, post=[broken])
    def number() -> int:
        """A number."""

    with pytest.raises(HookError) as caught:
        number()
    assert "the post hook broken is broken: it raised AttributeError" in caught.value.message
    assert "assert" in caught.value.hint
    assert len(model.requests) == 1 and caught.value.call is number.last_call


def test_configuration_mistakes_fail_when_decorating_or_calling() -> None:
    with pytest.raises(ConfigurationError, match="no return type"):

        @llm_func(model=ScriptedProvider([]))
        def untyped(x: int):
            """?"""

    with pytest.raises(ConfigurationError, match="asks for wordz"):

        @llm_func(model=ScriptedProvider([]), post=[lambda result, wordz: True])
        def typo(words: list[str]) -> int:
            """?"""

    @llm_func
    def modelless() -> int:
        """No model named."""

    with pytest.raises(ConfigurationError, match="has no model"):
        modelless()
    with default_model(ScriptedProvider([reply("result = 7")])):
        assert modelless() == 7


def test_arguments_are_copies_so_every_attempt_starts_from_the_same_values() -> None:
    model = ScriptedProvider([
        reply("words.append('extra')\nresult = len(words)"),  # mutates its copy, then fails the hook
        reply("result = len(words)"),
    ])

    def unchanged(result, words):
        ensure(result == len(words), "the count must be of the words given")

    @llm_func(model=model, post=[unchanged])
    def count(words: list[str]) -> int:
        """How many words."""

    given = ["a", "b"]
    assert count(given) == 2 and given == ["a", "b"]


def test_hooks_receive_arguments_by_name_and_may_be_async() -> None:
    seen: list[Any] = []

    async def at_least(result, minimum):
        seen.append(minimum)
        ensure(result >= minimum, "too small")

    def everything(result, **arguments):
        seen.append(arguments)

    @llm_func(model=ScriptedProvider([reply("result = 10")]), post=[at_least, everything])
    def pick(minimum: int, label: str = "x") -> int:
        """A number at least `minimum`."""

    assert pick(3) == 10 and seen == [3, {"minimum": 3, "label": "x"}]


def test_a_model_id_and_provider_options_work() -> None:
    @llm_func(model="scripted:test", provider_options={"replies": [reply("result = 'hi'")]})
    def greet() -> str:
        """A greeting."""

    assert greet() == "hi" and greet.llm_func.provider.model == "scripted:test"


def test_model_functions_are_listed_and_disclosed_like_tools() -> None:
    @llm_func(model=ScriptedProvider([]))
    def genre(title: str, summary: str = "") -> str:
        """The most likely genre of a book, in one lower-case word."""

    toolbox = Toolbox([genre])
    # One calling convention in agent code: awaited, whether the function is a def or an async def.
    assert toolbox.listing() == "- genre: The most likely genre of a book, in one lower-case word. (model function: await genre(...))"
    assert inspect.iscoroutinefunction(toolbox.namespace()["genre"])
    disclosure = as_tool(genre).disclosure()
    assert disclosure.startswith("async def genre(title: str, summary: str = '') -> str")
    assert "a model computes the result" in disclosure and "Call it as: await genre(...)" in disclosure


def test_nested_calls_stop_at_the_depth_limit() -> None:
    @llm_func(model=ScriptedProvider([reply("result = 1")] * 3), max_depth=1)
    def inner() -> int:
        """One."""

    @llm_func(model=ScriptedProvider([reply("result = helper()"), reply("result = 2")]))
    def outer(helper: Any) -> int:
        """Two."""

    assert outer(inner) == 2
    failed = outer.last_call.attempts[0]
    assert failed.failure.kind == "error"
    assert "DepthLimitError: @llm_func inner was called 2 deep; the limit is 1" in failed.failure.detail
    with pytest.raises(DepthLimitError):
        _call_at_depth(inner, 1)


def _call_at_depth(function: Any, depth: int) -> None:
    from py_agent.llm_func import _DEPTH

    token = _DEPTH.set(depth)
    try:
        function()
    finally:
        _DEPTH.reset(token)


def test_a_usage_budget_stops_further_attempts() -> None:
    model = ScriptedProvider([reply("result = 'x'")] * 3)

    @llm_func(model=model)
    def number() -> int:
        """A number."""

    with usage_meter(max_tokens=1) as meter, pytest.raises(BudgetExceededError) as caught:
        number()
    assert len(model.requests) == 1 and meter.attempts == 1 and meter.usage.total_tokens > 1
    assert "the budget of 1 tokens is spent" in caught.value.message
    assert caught.value.call.attempts[0].failure.kind == "type"


def test_meters_count_every_call_they_see() -> None:
    @llm_func(model=ScriptedProvider([reply("result = 1"), reply("result = 2")], model="openai:gpt-4.1-mini"))
    def number() -> int:
        """A number."""

    with usage_meter() as outer:
        with usage_meter() as inner:
            number()
        number()
    assert (inner.attempts, outer.attempts) == (1, 2)
    assert outer.cost is not None and outer.cost > inner.cost > 0
    assert number.calls[-1].cost == pytest.approx(outer.cost - inner.cost)


@dataclass
class Point:
    x: int
    y: int


def test_dataclass_results_and_the_call_text() -> None:
    model = ScriptedProvider([reply("result = Point(x=p.x + 1, y=p.y)")])

    @llm_func(model=model)
    def shift(p: Point, note: str) -> Point:
        """Move one to the right."""

    assert shift(Point(1, 2), "n" * 5000) == Point(2, 2)
    text = model.requests[0].messages[0].content
    assert "- p: Point = Point(x=1, y=2)" in text
    assert "… (3,002 more characters; the variable holds all of it)" in text  # repr: 5 002 characters
