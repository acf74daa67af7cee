"""Model functions: a typed signature whose body a model writes, run in py-agent's sandbox.

::

    from py_agent import llm_func

    def sorted_and_complete(result, words):
        "the same words, sorted"
        assert result == sorted(result), "the list is not sorted"
        assert sorted(result) == sorted(words), "words were lost or added"

    @llm_func(model="openai:gpt-4.1-mini", post=[sorted_and_complete])
    def by_length(words: list[str]) -> list[str]:
        '''The words from the shortest to the longest; ties in alphabetical order.'''

    by_length(["pear", "fig", "banana"])        # ['fig', 'pear', 'banana']
    by_length.last_call.attempts                # what the model replied, each time

The signature, the type hints and the docstring are the contract. A call asks the model
for a short Python snippet that computes the result; the snippet is checked by the
validator and run by the executor with the run-time layer (never the host's ``exec``),
with the arguments bound as variables (deep copies, so every attempt starts from the
same values and the caller's objects are not changed). Its ``result`` is validated
against the return type (a pydantic ``TypeAdapter``, lax mode unless ``strict=True``),
then each ``post`` hook runs. When the reply cannot be read, the code is refused, raises,
sets no ``result``, returns the wrong type or fails a hook, the model is told exactly
what failed -- its reply, the value its code produced, the failing check and its
message -- and tries again, up to ``max_attempts``. Only such model-caused failures are
retried: a provider error, a broken hook (one that raises anything but
``AssertionError``) or a configuration mistake fails at once.

Post hooks take the result first, then, by name, any of the function's arguments they
want (``def check(result, words)``); ``**kwargs`` receives them all. A hook rejects a
result with ``assert`` (or by returning ``False``); hooks may be ``async``.

Every call keeps its history (:class:`Call`: the attempts, usage and cost):
``f.last_call``, ``f.calls`` (the last :data:`HISTORY` calls), and ``error.call`` on
the :class:`LLMFuncError` raised when every attempt failed.

A ``def`` is called synchronously (on CPython in its own event loop, or in a worker
thread when the caller's thread already runs one; inside Pyodide only with providers
that need no real I/O, as ``Agent.run``); an ``async def`` is awaited:
``await f(...)``. Any provider works: a model id, a provider object or a list of them.

Model functions are also tools: ``@llm_func`` functions carry the same ``Tool`` record
as ``@tool`` ones (``__py_agent_tool__``, with ``kind="model"``), so an agent lists and
discloses them like tools, gates them by their ``approval`` rule, and its code calls
them the same way, always awaited (``genre = await classify(book.title)``: a model
answers over the network, which synchronous code cannot wait for in the browser). A
model function without a model then uses the agent's. Calls nest at most ``max_depth``
deep (a model function whose snippet calls another), and every call charges the active
:func:`usage_meter` contexts, which can stop further attempts at a token or cost
budget; the agent counts them toward the turn (``turn_end.cost``).

Called from a step, the snippet runs under the step's time limit as well as its own:
when the step's time is up the call stops at once (StepTimeout) instead of asking the
model again.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import dataclasses
import enum
import functools
import inspect
import sys
import textwrap
import threading
import time
import types
import typing
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import pydantic
from pydantic import BaseModel, TypeAdapter

from . import pricing
from .ask import DEFAULT_MAX_REPLY_CHARS, CutShort, ask
from .errors import ConfigurationError, PyAgentError
from .gates import step_time_left
from .providers.base import ChatMessage, Completion, CompletionRequest, Provider, Usage
from .providers.registry import resolve
from .reply import MalformedReply, parse_reply, reply_model
from .sandbox.executor import Executor
from .sandbox.limits import Deadline, StepTimeout
from .sandbox.runtime import safe_builtins
from .sandbox.validator import Policy, check_parsed
from .sync import run_sync
from .tools import Rule, Tool

F = TypeVar("F", bound=Callable[..., Any])
Model = str | Provider | Sequence[str | Provider]

#: How many finished calls each function keeps in ``f.calls``.
HISTORY = 50
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_MAX_DEPTH = 3
DEFAULT_TIMEOUT = 10.0
#: Argument values and results are shown to the model up to this many characters each.
PREVIEW_CHARS = 2000
RESULT_NAME = "result"

FailureKind = Literal["cut_short", "malformed", "no_code", "refused", "error", "no_result", "type", "post"]


# --- records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """What was wrong with one attempt.

    ``kind``: ``"cut_short"`` (the reply was cut off or too long), ``"malformed"`` (it
    could not be read), ``"no_code"``, ``"refused"`` (by the validator), ``"error"`` (the
    code raised or ran too long), ``"no_result"`` (it set no ``result``), ``"type"`` (the
    result is not a valid return value) or ``"post"`` (a post hook rejected it; ``hook`` is
    its name). ``detail`` is the message, as the model was given it.
    """

    kind: FailureKind
    detail: str
    hook: str | None = None


@dataclass
class Attempt:
    """One reply of the model and what became of it."""

    number: int
    reply: str  # the raw reply text
    message: str = ""  # the reply's message field
    code: str = ""
    output: str = ""  # what the code printed
    value: Any = None  # what the code left in `result` (before validation)
    has_value: bool = False
    failure: Failure | None = None
    feedback: str = ""  # what the model was told next (empty for the last attempt)
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass
class Call:
    """One call of a model function: its arguments, its attempts and their outcome."""

    function: str
    arguments: dict[str, Any]
    attempts: list[Attempt] = field(default_factory=list)
    ok: bool = False
    result: Any = None  # the validated return value, when ok
    error: str | None = None  # why the call failed, when it did

    @property
    def usage(self) -> Usage:
        return sum((a.usage for a in self.attempts), Usage())

    @property
    def cost(self) -> float | None:
        total: float | None = None
        for attempt in self.attempts:
            total = pricing.add_costs(total, attempt.cost)
        return total


class LLMFuncError(PyAgentError):
    """A model function gave no valid result; ``call`` holds every attempt."""

    kind = "llm_func"

    def __init__(self, message: str, *, hint: str = "", call: Call | None = None) -> None:
        super().__init__(message, hint=hint)
        self.call = call


class HookError(LLMFuncError):
    """A post hook is broken (it raised something other than AssertionError): not retried."""

    kind = "hook"


class DepthLimitError(LLMFuncError):
    """Model functions called each other deeper than ``max_depth``."""

    kind = "depth_limit"


class BudgetExceededError(LLMFuncError):
    """A :func:`usage_meter` budget is spent; no further attempt is made."""

    kind = "budget"


# --- depth and budget ------------------------------------------------------------------------


_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("py_agent_llm_func_depth", default=0)
_METERS: contextvars.ContextVar[tuple[UsageMeter, ...]] = contextvars.ContextVar("py_agent_usage_meters", default=())
_DEFAULT_MODEL: contextvars.ContextVar[Provider | None] = contextvars.ContextVar("py_agent_llm_func_model", default=None)


@dataclass
class UsageMeter:
    """Counts the usage and cost of the model-function calls made while it is active.

    With ``max_tokens`` or ``max_cost`` (US dollars) it is also a budget: once spent, the
    next attempt of any model function raises :class:`BudgetExceededError` instead of
    asking the model (an attempt under way is finished).
    """

    max_tokens: int | None = None
    max_cost: float | None = None
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None
    attempts: int = 0

    def charge(self, usage: Usage, cost: float | None) -> None:
        self.usage = self.usage + usage
        self.cost = pricing.add_costs(self.cost, cost)
        self.attempts += 1

    def refusal(self) -> str | None:
        """Why no further attempt may be made, or ``None``."""
        if self.max_tokens is not None and self.usage.total_tokens >= self.max_tokens:
            return f"the budget of {self.max_tokens:,} tokens is spent ({self.usage.total_tokens:,} used)"
        if self.max_cost is not None and (self.cost or 0.0) >= self.max_cost:
            return f"the budget of {pricing.format_cost(self.max_cost)} is spent ({pricing.format_cost(self.cost)} used)"
        return None


@contextlib.contextmanager
def usage_meter(*, max_tokens: int | None = None, max_cost: float | None = None) -> Iterator[UsageMeter]:
    """Measure (and optionally limit) the model functions called inside the ``with`` block.

    Meters nest: a call charges every active meter. The agent loop can wrap a step in
    one to count the model functions its code calls toward the turn.
    """
    meter = UsageMeter(max_tokens=max_tokens, max_cost=max_cost)
    token = _METERS.set(_METERS.get() + (meter,))
    try:
        yield meter
    finally:
        _METERS.reset(token)


@contextlib.contextmanager
def metering(meter: UsageMeter) -> Iterator[UsageMeter]:
    """Charge ``meter`` (an existing one, e.g. a turn's budget) for the calls inside the block."""
    token = _METERS.set(_METERS.get() + (meter,))
    try:
        yield meter
    finally:
        _METERS.reset(token)


@contextlib.contextmanager
def default_model(model: Model, **provider_options: Any) -> Iterator[Provider]:
    """The model of the model functions called inside the ``with`` block that name none."""
    provider = resolve(model, **provider_options)
    token = _DEFAULT_MODEL.set(provider)
    try:
        yield provider
    finally:
        _DEFAULT_MODEL.reset(token)


@contextlib.contextmanager
def fallback_model(provider: Provider) -> Iterator[None]:
    """Like :func:`default_model` for a ready provider, unless a default is set already
    (the agent offers its own model to the model functions its code calls)."""
    if _DEFAULT_MODEL.get() is not None:
        yield
        return
    token = _DEFAULT_MODEL.set(provider)
    try:
        yield
    finally:
        _DEFAULT_MODEL.reset(token)


# --- the function ------------------------------------------------------------------------------


class LLMFunction:
    """The contract of one model function and the machinery of calling it.

    Made by :func:`llm_func`; reach it as ``f.llm_func``. ``acall``/``call`` run one
    call and return its :class:`Call` record without raising for model failures.
    """

    def __init__(
        self,
        function: Callable[..., Any],
        *,
        model: Model | None = None,
        post: Iterable[Callable[..., Any]] = (),
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        allowed_imports: Iterable[str] | None = None,
        policy: Policy | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        strict: bool = False,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_output_tokens: int | None = None,
        max_reply_chars: int = DEFAULT_MAX_REPLY_CHARS,
        provider_options: Mapping[str, Any] | None = None,
        name: str | None = None,
        approval: Rule = "never",
        localns: Mapping[str, Any] | None = None,
    ) -> None:
        self.function = function
        self.name = name or function.__name__
        where = f"@llm_func {self.name}"
        if max_attempts < 1:
            raise ConfigurationError(f"{where}: max_attempts must be at least 1, not {max_attempts}")
        if max_depth < 1:
            raise ConfigurationError(f"{where}: max_depth must be at least 1, not {max_depth}")
        self.signature = inspect.signature(function)
        try:
            hints = typing.get_type_hints(function, localns=dict(localns or {}), include_extras=True)
        except Exception as exc:
            raise ConfigurationError(
                f"{where}: its type hints cannot be evaluated ({type(exc).__name__}: {exc})",
                hint="define the types the annotations name before the function, or import them",
            ) from exc
        if "return" not in hints:
            raise ConfigurationError(
                f"{where} has no return type",
                hint="annotate it (e.g. `-> list[str]`): the result is checked against it",
            )
        self.return_type = hints["return"]
        self.hints = hints
        try:
            self.adapter: TypeAdapter[Any] = TypeAdapter(self.return_type)
        except pydantic.PydanticSchemaGenerationError as exc:
            raise ConfigurationError(
                f"{where}: its return type {type_name(self.return_type)} cannot be checked by pydantic",
                hint="use types pydantic can validate (builtins, dataclasses, pydantic models, TypedDicts, Enums)",
            ) from exc
        self.doc = inspect.getdoc(function) or ""
        self.hooks = [_Hook(hook, self.signature, where) for hook in post]
        self.max_attempts = max_attempts
        self.policy = policy or (Policy.with_imports(allowed_imports) if allowed_imports else Policy())
        self.timeout = timeout
        self.strict = strict
        self.max_depth = max_depth
        self.approval = approval
        self.max_output_tokens = max_output_tokens
        self.max_reply_chars = max_reply_chars
        self.model = model
        self.provider_options = dict(provider_options or {})
        self._provider: Provider | None = None
        self.classes = _classes_in(hints.values())
        self.calls: deque[Call] = deque(maxlen=HISTORY)
        self.on_call: Callable[[Call], None] | None = None  # told of each call as it starts
        self.system_prompt = self._system_prompt()
        self._reply_model = reply_model()
        self._schema = self._reply_model.model_json_schema()

    def __repr__(self) -> str:
        return f"<llm_func {self.name}{self.signature}>"

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.function)

    @property
    def last_call(self) -> Call | None:
        """The most recent call started (``None`` before the first)."""
        return self.calls[-1] if self.calls else None

    @property
    def provider(self) -> Provider:
        """The provider: resolved on first use (so importing a module needs no API key)."""
        if self.model is None:
            fallback = _DEFAULT_MODEL.get()
            if fallback is None:
                raise ConfigurationError(
                    f"@llm_func {self.name} has no model",
                    hint="pass model='provider:name' to @llm_func, or call it inside `with default_model(...)`",
                )
            return fallback
        if self._provider is None:
            self._provider = resolve(self.model, **self.provider_options)
        return self._provider

    def tool(self, function: Callable[..., Any]) -> Tool:
        """The :class:`Tool` record that lists and discloses this function like a tool."""
        doc = self.doc or f"Computes the {type_name(self.return_type)} of {self.name}."
        return Tool(
            self.name,
            function,
            f"{doc}\n\n(A model function: a model computes the result, checked against the return type.)",
            approval=self.approval,
            kind="model",
        )

    # -- calling ----------------------------------------------------------------------------

    def bind(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        bound = self.signature.bind(*args, **kwargs)  # a TypeError for a wrong call, as Python gives
        bound.apply_defaults()
        return dict(bound.arguments)

    async def acall(self, *args: Any, **kwargs: Any) -> Call:
        """Run one call; the record says whether it succeeded (raises only for non-model failures)."""
        arguments = self.bind(args, kwargs)
        record = Call(self.name, arguments)
        self.calls.append(record)
        if self.on_call is not None:
            self.on_call(record)
        depth = _DEPTH.get()
        if depth >= self.max_depth:
            raise DepthLimitError(
                f"@llm_func {self.name} was called {depth + 1} deep; the limit is {self.max_depth}",
                hint="model functions that call each other need a larger max_depth, or fewer levels",
                call=record,
            )
        token = _DEPTH.set(depth + 1)
        try:
            await self._attempts(record)
        except LLMFuncError as failed:
            failed.call = failed.call or record
            record.error = failed.message
            raise
        except PyAgentError as failed:  # the provider or the configuration: not the model's doing
            record.error = failed.message
            raise
        finally:
            _DEPTH.reset(token)
        return record

    def call(self, *args: Any, **kwargs: Any) -> Call:
        """:meth:`acall` from synchronous code."""
        return _run_blocking(lambda: self.acall(*args, **kwargs))

    async def _attempts(self, record: Call) -> None:
        provider = self.provider
        messages = [ChatMessage("user", self._call_text(record.arguments))]
        for number in range(1, self.max_attempts + 1):
            step = step_time_left()
            if step is not None and step[0] <= 0:  # the calling step's time is up
                raise StepTimeout(f"the step ran longer than {step[1]:g} s and was stopped")
            for meter in _METERS.get():
                refusal = meter.refusal()
                if refusal is not None:
                    raise BudgetExceededError(
                        f"@llm_func {self.name}: no further attempt, {refusal}",
                        hint="raise the budget of the usage_meter, or call fewer model functions",
                        call=record,
                    )
            started = time.perf_counter()
            completion = await self._ask(provider, messages)
            attempt = Attempt(number, completion.text, usage=completion.usage, cost=completion.cost)
            record.attempts.append(attempt)
            for meter in _METERS.get():
                meter.charge(completion.usage, completion.cost)
            value = await self._judge(attempt, completion, record.arguments)
            attempt.duration_ms = (time.perf_counter() - started) * 1000
            if attempt.failure is None:
                record.ok, record.result = True, value
                return
            if number < self.max_attempts:
                attempt.feedback = self._feedback(attempt)
                messages.append(ChatMessage("assistant", _as_reply_text(completion, attempt)))
                messages.append(ChatMessage("user", attempt.feedback))
        last = record.attempts[-1].failure
        assert last is not None
        record.error = f"{_FAILURE_TITLES[last.kind].format(hook=last.hook)}: {_first_line(last.detail)}"

    async def _ask(self, provider: Provider, messages: list[ChatMessage]) -> Completion:
        request = CompletionRequest(self.system_prompt, tuple(messages), self._schema, max_output_tokens=self.max_output_tokens)
        final: Completion | None = None
        async for item in ask(provider, request, 0, max_reply_chars=self.max_reply_chars):
            if isinstance(item, Completion):
                final = item
        if final is None:
            raise PyAgentError(f"the model {provider.model!r} ended its reply without finishing it", hint="try again")
        return final

    async def _judge(self, attempt: Attempt, completion: Completion, arguments: Mapping[str, Any]) -> Any:
        """Read, check and run the reply; set ``attempt.failure`` if anything is wrong; the valid result."""
        if isinstance(completion, CutShort):
            attempt.failure = Failure("cut_short", completion.problem)
            return None
        try:
            reply = parse_reply(completion.text, self._reply_model, completion.format)
        except MalformedReply as bad:
            attempt.failure = Failure("malformed", bad.problem)
            return None
        attempt.message, attempt.code = reply.message, reply.code  # type: ignore[attr-defined]
        if not attempt.code.strip():
            attempt.failure = Failure("no_code", f"Your reply had no code. Reply with code that sets `{RESULT_NAME}`.")
            return None
        violations, tree = check_parsed(attempt.code, self.policy)
        if violations:
            text = "\n".join(str(v) for v in violations)
            attempt.failure = Failure("refused", f"Your code was refused before it ran:\n{text}")
            return None
        namespace = self._namespace(arguments)
        outcome = await Executor(namespace, timeout=self._snippet_timeout()).run(attempt.code, filename=f"<{self.name}>", tree=tree)
        attempt.output = outcome.output
        step = step_time_left()
        if step is not None and step[0] <= 0:
            # The calling step's time is up: stop here rather than ask the model again.
            raise StepTimeout(f"the step ran longer than {step[1]:g} s and was stopped")
        if outcome.error is not None:
            attempt.failure = Failure("error", outcome.error)
            return None
        if RESULT_NAME in namespace:
            attempt.value, attempt.has_value = namespace[RESULT_NAME], True
        elif namespace.get("_") is not None:  # a last bare expression: the executor keeps its value in `_`
            attempt.value, attempt.has_value = namespace["_"], True
        else:
            attempt.failure = Failure("no_result", f"Your code did not set `{RESULT_NAME}`. Assign the return value to `{RESULT_NAME}`.")
            return None
        try:
            value = self.adapter.validate_python(attempt.value, strict=self.strict)
        except pydantic.ValidationError as exc:
            attempt.failure = Failure("type", _type_errors(exc))
            return None
        for hook in self.hooks:
            rejection = await hook.check(value, arguments)
            if rejection is not None:
                attempt.failure = Failure("post", rejection, hook.name)
                return None
        return value

    def _snippet_timeout(self) -> float | None:
        """The snippet's own time limit; none of its own inside a step on CPython's main thread,
        where a second timer would cancel the step's (``limits.Deadline`` keeps one interval
        timer); the step's limit still bounds it. A Deadline that nests lifts this."""
        step = step_time_left()
        if step is None or getattr(Deadline, "nests", False):
            return self.timeout
        if sys.platform != "emscripten" and threading.current_thread() is threading.main_thread():
            return None
        return self.timeout

    def _namespace(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        namespace: dict[str, Any] = {"__builtins__": safe_builtins(self.policy), "__name__": "llm_func"}
        namespace.update(self.classes)
        for name, value in arguments.items():
            try:
                namespace[name] = copy.deepcopy(value)  # every attempt starts from the caller's values
            except Exception:  # noqa: BLE001 - objects that cannot be copied (sessions, locks) are lent
                namespace[name] = value
        return namespace

    # -- what the model reads --------------------------------------------------------------

    def _system_prompt(self) -> str:
        header = f"{'async ' if self.is_async else ''}def {self.name}{_signature_text(self.signature, self.hints)}:"
        doc = textwrap.indent(f'"""{self.doc}"""' if self.doc else '"""(no docstring)"""', "    ")
        params = ", ".join(self.signature.parameters) or "(none)"
        rules = [
            f"The arguments are already defined as variables: {params}. Do not redefine them.",
            f"Assign the return value to a variable named `{RESULT_NAME}`. It must be a valid `{type_name(self.return_type)}`.",
        ]
        schema = _schema_text(self.adapter)
        if schema:
            rules.append(f"`{RESULT_NAME}` may be a dict or list of plain values in this JSON schema: {schema}")
        if self.classes:
            rules.append(f"These classes are defined for your code: {', '.join(sorted(self.classes))}.")
        rules.append(
            f"Only these modules can be imported: {self.policy.allowed_list()}. No files, network, input() or "
            "names with double underscores."
        )
        rules.append("Keep the code short. Compute the answer; do not print unless it helps (output is shown only on failure).")
        if self.hooks:
            listed = "; ".join(hook.summary for hook in self.hooks)
            rules.append(f"After the type check, these checks run on the result: {listed}.")
        rules.append("If a check fails you are told what failed and asked again.")
        return (
            "You compute the result of one Python function by writing a short Python snippet. "
            "Its signature, type hints and docstring are the contract:\n\n"
            f"{header}\n{doc}\n\nRules:\n" + "\n".join(f"- {rule}" for rule in rules) + "\n\n"
            'Reply with exactly one JSON object: {"message": "<one short sentence about your approach>", '
            '"code": "<the snippet>"}.'
        )

    def _call_text(self, arguments: Mapping[str, Any]) -> str:
        call = ", ".join(f"{name}={preview(value, 80)}" for name, value in arguments.items())
        lines = [f"Compute {self.name}({call}).", "", "The arguments:"]
        for name, value in arguments.items():
            hint = self.hints.get(name)
            typed = f": {type_name(hint)}" if hint is not None else ""
            lines.append(f"- {name}{typed} = {preview(value)}")
        if not arguments:
            lines.append("(none)")
        return "\n".join(lines)

    def _feedback(self, attempt: Attempt) -> str:
        failure = attempt.failure
        assert failure is not None
        title = _FAILURE_TITLES[failure.kind].format(hook=failure.hook)
        parts = [f"Attempt {attempt.number} of {self.max_attempts} failed: {title}.", "", "Your reply was:", _clip(attempt.reply)]
        if attempt.output.strip():
            parts += ["", "Your code printed:", _clip(attempt.output.rstrip())]
        if attempt.has_value:
            parts += ["", f"Your code produced (the value of `{RESULT_NAME}`): {preview(attempt.value)}"]
        if failure.kind == "post":
            parts += ["", f"The check `{failure.hook}` failed: {failure.detail}"]
        elif failure.kind == "type":
            parts += ["", f"The return type `{type_name(self.return_type)}` refused it:", failure.detail]
        else:
            parts += ["", failure.detail]
        parts += ["", f"Reply again with the whole snippet, corrected; it must set `{RESULT_NAME}`."]
        return "\n".join(parts)


class _Hook:
    """A post hook, with its calling convention worked out once."""

    def __init__(self, hook: Callable[..., Any], signature: inspect.Signature, where: str) -> None:
        if not callable(hook):
            raise ConfigurationError(f"{where}: post hooks must be functions, not {hook!r}")
        self.function = hook
        self.name = getattr(hook, "__name__", repr(hook))
        try:
            params = list(inspect.signature(hook).parameters.values())
        except (TypeError, ValueError):
            params = []
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if not positional and not any(p.kind is p.VAR_POSITIONAL for p in params):
            raise ConfigurationError(
                f"{where}: the post hook {self.name} takes no argument",
                hint="a post hook takes the result first: def check(result, <argument names>...)",
            )
        rest = params[1:] if positional else params
        self.all_arguments = any(p.kind is p.VAR_KEYWORD for p in rest)
        self.names = [p.name for p in rest if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        unknown = [
            p.name for p in rest
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in signature.parameters and p.default is p.empty
        ]
        if unknown:
            raise ConfigurationError(
                f"{where}: the post hook {self.name} asks for {', '.join(unknown)}, which the function has no argument for",
                hint=f"its arguments are: {', '.join(signature.parameters) or '(none)'}",
            )
        doc = inspect.getdoc(hook)
        self.summary = f"`{self.name}`" + (f" ({doc.splitlines()[0]})" if doc else "")

    async def check(self, value: Any, arguments: Mapping[str, Any]) -> str | None:
        """``None`` if the hook accepts ``value``; otherwise its message for the model."""
        if self.all_arguments:
            kwargs = dict(arguments)
        else:
            kwargs = {name: arguments[name] for name in self.names if name in arguments}
        try:
            verdict = self.function(value, **kwargs)
            if inspect.isawaitable(verdict):
                verdict = await verdict
        except AssertionError as rejected:
            return f"AssertionError: {rejected}" if str(rejected) else "AssertionError (the check gave no message)"
        except Exception as broken:
            raise HookError(
                f"the post hook {self.name} is broken: it raised {type(broken).__name__}: {broken}",
                hint="a post hook rejects a result with `assert`; any other exception is a bug in the hook",
            ) from broken
        if verdict is False:
            return "it returned False"
        return None


_FAILURE_TITLES: dict[str, str] = {
    "cut_short": "your reply was not whole",
    "malformed": "your reply could not be read",
    "no_code": "your reply had no code",
    "refused": "your code was refused before it ran",
    "error": "your code raised an error",
    "no_result": f"your code did not set `{RESULT_NAME}`",
    "type": "the result has the wrong type",
    "post": "the check `{hook}` rejected the result",
}


# --- the decorator ---------------------------------------------------------------------------


@typing.overload
def llm_func(function: F, /) -> F: ...
@typing.overload
def llm_func(
    *,
    model: Model | None = None,
    post: Iterable[Callable[..., Any]] = (),
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    allowed_imports: Iterable[str] | None = None,
    policy: Policy | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    strict: bool = False,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_output_tokens: int | None = None,
    max_reply_chars: int = DEFAULT_MAX_REPLY_CHARS,
    provider_options: Mapping[str, Any] | None = None,
    name: str | None = None,
    approval: Rule = "never",
) -> Callable[[F], F]: ...


def llm_func(function: Any = None, /, **options: Any) -> Any:
    """Make a typed function's body a model's job (see the module docstring).

    Options: ``model`` (a model id, provider or list of them; default: the one set by
    :func:`default_model`), ``post`` (hooks run on the result), ``max_attempts`` (3),
    ``allowed_imports``/``policy`` (what the snippet may import; the validator's
    defaults), ``timeout`` (seconds per snippet, 10), ``strict`` (strict type
    validation), ``max_depth`` (3), ``max_output_tokens``, ``max_reply_chars``,
    ``provider_options`` (for resolving ``model``), ``name``, ``approval`` (when agent
    code calls it: ``"never"``, ``"ask"``, ``"blocked"`` or a function of the arguments).

    The decorated function keeps its name, signature and docstring and gains
    ``llm_func`` (the :class:`LLMFunction`), ``calls`` and ``last_call``.
    """

    # The defining scope, for annotations that name classes defined inside a function
    # (with `from __future__ import annotations` they are strings, evaluated here).
    caller = sys._getframe(1)
    localns = dict(caller.f_locals) if caller.f_locals is not caller.f_globals else {}

    def decorate(fn: Callable[..., Any]) -> Any:
        spec = LLMFunction(fn, localns=localns, **options)
        if spec.is_async:

            @functools.wraps(fn)
            async def call_async(*args: Any, **kwargs: Any) -> Any:
                return _outcome(await spec.acall(*args, **kwargs))

            wrapper: Any = call_async
        else:

            @functools.wraps(fn)
            def call_sync(*args: Any, **kwargs: Any) -> Any:
                return _outcome(spec.call(*args, **kwargs))

            wrapper = call_sync
        wrapper.llm_func = spec
        wrapper.calls = spec.calls
        wrapper.last_call = None
        wrapper.__py_agent_tool__ = spec.tool(wrapper)
        spec.on_call = lambda record: setattr(wrapper, "last_call", record)
        return wrapper

    return decorate(function) if function is not None else decorate


def _outcome(record: Call) -> Any:
    if record.ok:
        return record.result
    tried = len(record.attempts)
    raise LLMFuncError(
        f"@llm_func {record.function} gave no valid result in {tried} attempt{'s' if tried != 1 else ''}: {record.error}",
        hint="see error.call.attempts for each reply and what was wrong with it; a clearer docstring or more attempts may help",
        call=record,
    )


def _run_blocking(make: Callable[[], Awaitable[Call]]) -> Call:
    """Run a call to completion from synchronous code, wherever that is."""
    if sys.platform == "emscripten":
        try:
            return run_sync(make())
        except RuntimeError as blocked:
            if "real I/O" not in str(blocked):
                raise
            raise ConfigurationError(  # the model's reply needs real I/O: nothing can block here
                "a `def` model function cannot wait for a model's reply over the network inside Pyodide",
                hint="declare it `async def` and `await` it",
            ) from blocked
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())  # type: ignore[arg-type]
    # This thread already runs an event loop (a notebook, or async code calling a sync model
    # function): run the call on its own loop in a worker thread, with this context (depth, meters).
    from concurrent.futures import ThreadPoolExecutor

    context = contextvars.copy_context()
    with ThreadPoolExecutor(1, thread_name_prefix="llm_func") as pool:
        return pool.submit(context.run, asyncio.run, make()).result()


# --- text helpers ----------------------------------------------------------------------------


def type_name(tp: Any) -> str:
    """A type as it is written in code, with bare class names: ``list[Book]``, ``Book | None``."""
    if tp is type(None) or tp is None:
        return "None"
    if tp is Ellipsis:
        return "..."
    if isinstance(tp, list):  # the parameters of a Callable
        return "[" + ", ".join(type_name(t) for t in tp) + "]"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(type_name(a) for a in args)
    if origin is not None and args:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_name(a) for a in args)}]"
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """``repr(value)``, cut to ``limit`` characters with a note of how much is left out."""
    try:
        text = repr(value)
    except Exception as exc:  # noqa: BLE001 - a broken __repr__ must not break the call
        text = f"<{type(value).__name__}: repr failed ({type(exc).__name__})>"
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters; the variable holds all of it)"


def _clip(text: str, limit: int = 4 * PREVIEW_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _signature_text(signature: inspect.Signature, hints: Mapping[str, Any]) -> str:
    params = []
    for parameter in signature.parameters.values():
        if parameter.name in hints:
            parameter = parameter.replace(annotation=_Annotation(type_name(hints[parameter.name])))
        params.append(parameter)
    returns = _Annotation(type_name(hints["return"])) if "return" in hints else inspect.Signature.empty
    return str(signature.replace(parameters=params, return_annotation=returns))


class _Annotation:
    """Prints as the given text inside a signature (``inspect`` uses ``repr`` of annotations)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _schema_text(adapter: TypeAdapter[Any]) -> str:
    """The JSON schema of structured return types (models, dataclasses, TypedDicts), else ''."""
    import json

    try:
        schema = adapter.json_schema()
    except Exception:  # noqa: BLE001 - types without a JSON schema are still checked, just not described
        return ""
    text = json.dumps(schema, ensure_ascii=False)
    return text if ("properties" in schema or "$defs" in schema) and len(text) <= 4000 else ""


def _type_errors(error: pydantic.ValidationError) -> str:
    lines = []
    for item in error.errors()[:10]:
        where = "".join(f"[{p!r}]" for p in item["loc"]) or "(the value)"
        lines.append(f"- {where}: {item['msg']}")
    if error.error_count() > 10:
        lines.append(f"- ... and {error.error_count() - 10} more")
    return "\n".join(lines)


def _classes_in(annotations: Iterable[Any]) -> dict[str, type]:
    """Classes the signature names that the snippet may need to build a result (models, dataclasses, enums)."""
    found: dict[str, type] = {}
    pending = list(annotations)
    while pending:
        tp = pending.pop()
        pending.extend(typing.get_args(tp))
        if not isinstance(tp, type) or tp.__module__ in ("builtins", "typing", "datetime", "decimal", "collections.abc"):
            continue
        if issubclass(tp, (BaseModel, enum.Enum)) or dataclasses.is_dataclass(tp) or typing.is_typeddict(tp):
            found[tp.__name__] = tp
    return found


def _as_reply_text(completion: Completion, attempt: Attempt) -> str:
    """The model's own reply, as it goes back into the conversation (a cut-off one shortened)."""
    return completion.excerpt() if isinstance(completion, CutShort) else completion.text


__all__ = [
    "Attempt",
    "BudgetExceededError",
    "Call",
    "DepthLimitError",
    "Failure",
    "HookError",
    "LLMFuncError",
    "LLMFunction",
    "UsageMeter",
    "default_model",
    "fallback_model",
    "llm_func",
    "metering",
    "usage_meter",
]
