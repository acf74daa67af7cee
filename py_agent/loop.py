"""The agent loop: ask the model, check its code, run it, feed the result back.

``Agent.arun`` is an async generator of events and the one implementation;
``Agent.run`` drives it synchronously on CPython. A turn ends when the model
replies with empty code (``done``), after ``max_loops`` steps (``exceeded``),
when a step waits for approval (``paused``), on abort, or on a provider error.
Every path leaves the state usable: the next call continues the conversation.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy
from pydantic import BaseModel

from . import events as ev
from .errors import ConfigurationError, PyAgentError
from .sandbox.executor import DEFAULT_MAX_OUTPUT, Executor, Outcome
from .messages import AssistantMessage, ResultMessage, UserMessage, to_chat
from .prompt import render_prompt
from .providers.base import Completion, CompletionRequest, Provider
from .providers.registry import resolve
from .ask import ask
from .reply import Extensions, MalformedReply, extensions_of, parse_reply, reply_model
from .sandbox.runtime import safe_builtins
from .schema import render_schema, schema_symbols
from .state import PendingStep, State
from .sync import iterate
from .tools import Toolbox
from .sandbox.validator import Policy, check_parsed

# SQLAlchemy names model code uses on almost every step; pre-imported to save a step.
SQL_HELPERS = ("select", "func", "and_", "or_", "not_", "insert", "update", "delete", "text", "desc", "asc")

Approve = bool | None | Callable[[PendingStep], "bool | Awaitable[bool]"]


class Agent:
    """A configured agent: schema, model, tools, policy and approval rule.

    One agent can serve many :class:`State` objects (conversations).
    """

    def __init__(
        self,
        *,
        base: Any,
        model: str | Provider | Sequence[str | Provider],
        tools: Iterable[Any] = (),
        allowed_imports: Iterable[str] | None = None,
        prompt_template: str | None = None,
        output_extensions: Extensions = None,
        approve: Approve = True,
        max_loops: int = 20,
        timeout: float | None = 30.0,
        max_output: int = DEFAULT_MAX_OUTPUT,
        policy: Policy | None = None,
        provider_options: Mapping[str, Any] | None = None,
    ) -> None:
        if max_loops < 1:
            raise ConfigurationError(f"max_loops must be at least 1, not {max_loops}", hint="pass max_loops=20 or so")
        if not (approve is True or approve is None or approve is False or callable(approve)):
            raise ConfigurationError("approve must be True, None or a function(step) -> bool")
        self.base = base
        self.provider = resolve(model, **dict(provider_options or {}))
        self.toolbox = Toolbox(tools)
        self.symbols = schema_symbols(base)
        policy = policy or (Policy.with_imports(allowed_imports) if allowed_imports else Policy())
        # A column may be called `engine` or `connection`: the schema's own attribute
        # names must never be refused as "reaching past the session".
        self.policy = dataclasses.replace(
            policy, allowed_attributes=policy.allowed_attributes | _attribute_names(self.symbols)
        )
        self.reply_model: type[BaseModel] = reply_model(output_extensions)
        self.approve = approve
        self.max_loops = max_loops
        self.timeout = timeout
        self.max_output = max_output
        self.helpers = {name: getattr(sqlalchemy, name) for name in SQL_HELPERS}
        self.system_prompt, self.prompt_warnings = render_prompt(
            schema=render_schema(base),
            symbols=self._symbol_listing(),
            tools=self.toolbox.listing(),
            imports=", ".join(sorted(self.policy.allowed_imports)),
            template=prompt_template,
        )
        self._schema = self.reply_model.model_json_schema()

    def _symbol_listing(self) -> str:
        names = ["session"] + list(self.symbols) + list(self.toolbox.tools) + ["disclose"]
        return ", ".join(names) + "; from sqlalchemy: " + ", ".join(SQL_HELPERS)

    # -- namespace ---------------------------------------------------------------------------
    def _prepare(self, state: State) -> Executor:
        ns = state.namespace
        ns["__builtins__"] = safe_builtins(self.policy)
        ns.setdefault("__name__", "agent")
        ns["session"] = state.db.session
        ns.update(self.helpers)
        ns.update(self.symbols)
        ns.update(self.toolbox.namespace())
        return Executor(ns, max_output=self.max_output, timeout=self.timeout)

    # -- the loop ----------------------------------------------------------------------------
    def run(self, state: State) -> Iterator[ev.Event]:
        """Synchronous wrapper of :meth:`arun` for CPython scripts and tests."""
        return iterate(self.arun(state))

    async def arun(self, state: State) -> AsyncIterator[ev.Event]:
        """Run the turn (or continue a paused one), yielding events as they happen."""
        state._aborted = False
        steps = 0
        try:
            executor = self._prepare(state)
            executor.steps = state.step
            yield state.publish(ev.SystemInstruction(self.system_prompt, list(self.prompt_warnings)))
            if state.pending is not None:
                if state._decision is None:
                    yield state.publish(
                        ev.ErrorEvent("approval", "a step is waiting for approval", "call state.resume(True) or state.resume(False) first", state.pending.step)
                    )
                    yield state.publish(self._end(state, "paused", steps))
                    return
                for event in self._decide(state, state._decision):
                    yield state.publish(event)
            elif state.messages and isinstance(state.messages[-1], UserMessage):
                yield state.publish(ev.UserMessageEvent(state.messages[-1].content))
            if not any(isinstance(m, UserMessage) for m in state.messages):
                raise ConfigurationError("there is no user message to answer", hint="append UserMessage('...') to state.messages")

            while True:
                if state._aborted:
                    yield state.publish(self._end(state, "aborted", steps))
                    return
                if steps >= self.max_loops:
                    yield state.publish(ev.SignalEvent(ev.Signal.EXCEEDED, state.step))
                    state.messages.append(ResultMessage(f"(Stopped: the limit of {self.max_loops} steps per request was reached.)"))
                    yield state.publish(self._end(state, "exceeded", steps))
                    return
                steps += 1
                state.step += 1
                step = state.step

                # 1. ask the model, streaming
                yield state.publish(ev.SignalEvent(ev.Signal.COMPLETION, step))
                completion: Completion | None = None
                request = CompletionRequest(self.system_prompt, to_chat(state.messages), self._schema)
                async for item in ask(self.provider, request, step, aborted=lambda: state._aborted):
                    if isinstance(item, Completion):
                        completion = item
                    else:
                        yield state.publish(item)
                if state._aborted:
                    yield state.publish(self._end(state, "aborted", steps))
                    return
                if completion is None:
                    raise PyAgentError(f"the model {self.provider.model!r} ended its reply without finishing it", hint="try again")
                state.usage = state.usage + completion.usage

                # 2. read the reply
                try:
                    reply = parse_reply(completion.text, self.reply_model, completion.format)
                except MalformedReply as bad:
                    state.messages.append(AssistantMessage("", "", raw=completion.text))
                    state.messages.append(ResultMessage(bad.problem))
                    yield state.publish(ev.MalformedReply(step, bad.problem, completion.text))
                    continue
                message, code = reply.message, reply.code  # type: ignore[attr-defined]
                extensions = extensions_of(reply)
                state.messages.append(AssistantMessage(message, code, extensions, raw=completion.text if completion.format == "json" else ""))
                yield state.publish(
                    ev.AssistantReply(step, message, code, extensions, completion.model, completion.usage.input_tokens, completion.usage.output_tokens)
                )
                state.last_reply = reply
                if not code.strip():
                    yield state.publish(self._end(state, "done", steps))
                    return

                # 3. check the code
                yield state.publish(ev.SignalEvent(ev.Signal.VALIDATION, step))
                violations, tree = check_parsed(code, self.policy)
                if violations:
                    text = "\n".join(str(v) for v in violations)
                    state.messages.append(ResultMessage(f"Your code was refused before it ran:\n{text}\nRewrite it without these."))
                    yield state.publish(ev.ValidationFailed(step, [_violation_dict(v) for v in violations], text))
                    continue

                # 4. run it in a transaction
                yield state.publish(ev.SignalEvent(ev.Signal.EXECUTION, step))
                outcome = await self._execute(state, executor, code, tree)
                yield state.publish(ev.ExecutionResult(step, outcome.output, outcome.error, round(outcome.duration_ms, 3), outcome.truncated))
                db = state.db
                tables = db.changes()
                if outcome.error is not None:
                    db.rollback_step()
                    if tables:
                        yield state.publish(ev.Changes(step, tables, "rolled_back"))
                    state.messages.append(ResultMessage(_feedback(outcome.output, outcome.error, tables, "rolled_back")))
                    continue
                if not tables:
                    db.commit_step()
                    state.messages.append(ResultMessage(_feedback(outcome.output, None, tables, "none")))
                    continue

                # 5. approval
                pending = PendingStep(step, code, tables, outcome.output)
                if self.approve is None:
                    state.pending = pending
                    state._decision = None
                    yield state.publish(ev.Changes(step, tables, "pending"))
                    yield state.publish(ev.SignalEvent(ev.Signal.APPROVAL, step))
                    yield state.publish(ev.ApprovalRequired(step, code, tables))
                    yield state.publish(self._end(state, "paused", steps))
                    return
                approved = await self._ask(pending)
                state.pending = pending
                for event in self._decide(state, approved, announce=self.approve is not True):
                    yield state.publish(event)
        except PyAgentError as exc:
            self._rollback_open_step(state)
            yield state.publish(ev.ErrorEvent(getattr(exc, "kind", "error"), exc.message, exc.hint, state.step))
            yield state.publish(self._end(state, "error", steps))
        except Exception as exc:
            self._rollback_open_step(state)
            yield state.publish(
                ev.ErrorEvent("internal", f"{type(exc).__name__}: {exc}", "this is a bug in py-agent or a tool; the conversation can continue", state.step)
            )
            yield state.publish(self._end(state, "error", steps))
        except BaseException:  # cancellation, GeneratorExit: undo the open step and let it through
            self._rollback_open_step(state)
            raise

    async def _execute(self, state: State, executor: Executor, code: str, tree: ast.Module | None) -> Outcome:
        db = state.db
        db.begin_step()
        db.deadline = time.monotonic() + self.timeout if self.timeout else None
        try:
            outcome = await executor.run(code, filename=f"<step {state.step}>", tree=tree)
            if outcome.error is None:
                try:
                    db.flush()
                except Exception as exc:  # constraint errors surface at flush
                    outcome = Outcome(outcome.output, f"{type(exc).__name__} when saving: {_first_line(exc)}", outcome.duration_ms)
        finally:
            db.deadline = None
        return outcome

    async def _ask(self, pending: PendingStep) -> bool:
        if self.approve is True:
            return True
        if self.approve is False:
            return False
        answer = self.approve(pending)  # type: ignore[operator]
        if inspect.isawaitable(answer):
            answer = await answer
        return bool(answer)

    def _decide(self, state: State, approved: bool, *, announce: bool = True) -> list[ev.Event]:
        """Commit or roll back the pending step and tell the model what happened."""
        pending = state.pending
        assert pending is not None
        db = state.db
        if approved:
            db.commit_step()
        else:
            db.rollback_step()
        state.pending = None
        state._decision = None
        status = "committed" if approved else "declined"
        state.messages.append(ResultMessage(_feedback(pending.output, None, pending.tables, status)))
        out: list[ev.Event] = []
        if announce:
            out.append(ev.ApprovalDecision(pending.step, approved))
        out.append(ev.Changes(pending.step, pending.tables, status))
        return out

    def _rollback_open_step(self, state: State) -> None:
        db = state._db
        if db is not None and db.in_step and state.pending is None:
            db.rollback_step()

    def _end(self, state: State, reason: str, steps: int) -> ev.TurnEnd:
        return ev.TurnEnd(reason, steps, state.usage.input_tokens, state.usage.output_tokens)


def _attribute_names(symbols: Mapping[str, Any]) -> frozenset[str]:
    from sqlalchemy import inspect as sa_inspect

    names: set[str] = set()
    for cls in symbols.values():
        if isinstance(cls, type):
            try:
                mapper = sa_inspect(cls)
            except Exception:  # enums and other non-mapped symbols
                continue
            names.update(mapper.attrs.keys())
            names.update(c.name for c in mapper.columns)
    return frozenset(n for n in names if not n.startswith("_"))


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _violation_dict(violation: Any) -> dict[str, Any]:
    return {"rule": violation.rule, "message": violation.message, "line": violation.line, "col": violation.col}


def summarize(tables: Mapping[str, Mapping[str, int]]) -> str:
    parts = []
    for table, counts in tables.items():
        done = [f"{n} {op}" for op, n in counts.items() if n]
        parts.append(f"{table}: {', '.join(done)}")
    return "; ".join(parts)


def _feedback(output: str, error: str | None, tables: Mapping[str, Mapping[str, int]], status: str) -> str:
    """The result message the model reads after a step."""
    lines = ["Output:", output.rstrip() or "(nothing printed)"]
    if error:
        lines += ["Error:", error]
    if status == "rolled_back":
        lines.append("The step failed, so its changes were rolled back" + (f" ({summarize(tables)})." if tables else "."))
    elif status == "committed":
        lines.append(f"Changes saved: {summarize(tables)}.")
    elif status == "declined":
        lines.append(f"The person declined these changes, so they were rolled back: {summarize(tables)}. Ask what they want instead, or try another way.")
    return "\n".join(lines)


# -- module-level conveniences --------------------------------------------------------------

def _agent(kwargs: dict[str, Any]) -> tuple[Agent, State]:
    state = kwargs.pop("state")
    return Agent(**kwargs), state


async def arun(*, state: State, **kwargs: Any) -> AsyncIterator[ev.Event]:
    """``Agent(**kwargs).arun(state)``: the async generator everything is built on."""
    agent, state = _agent({"state": state, **kwargs})
    async for event in agent.arun(state):
        yield event


def run(*, state: State, **kwargs: Any) -> Iterator[ev.Event]:
    """``Agent(**kwargs).run(state)``: synchronous, for CPython."""
    agent, state = _agent({"state": state, **kwargs})
    return agent.run(state)


def resume(approved: bool, *, state: State, **kwargs: Any) -> Iterator[ev.Event]:
    """Decide a paused step and continue the turn synchronously."""
    state.resume(approved)
    return run(state=state, **kwargs)
