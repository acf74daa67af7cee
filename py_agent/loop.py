"""The agent loop: ask the model, check its code, run it, feed the result back.

``Agent.arun`` is an async generator of events and the one implementation;
``Agent.run`` drives it synchronously on CPython. A turn ends when the model
replies with empty code (``done``), after ``max_loops`` steps (``exceeded``),
when a step waits for approval (``paused``), on abort, or on a provider error.
Every path leaves the state usable: the next call continues the conversation.

The loop reaches the namespace, the executor and the database only through the
state's :class:`~py_agent.workspace.Workspace`. A step that wrote anything (however
the SQL was spelled: the database engine reports it) needs approval unless
``approve`` says otherwise; what is approved is exactly what is committed.

Around that core: tools and model functions the code calls go through the state's
:class:`~py_agent.gates.Gate` (a call that needs the person pauses the step, which runs
again once decided); messages the person sends meanwhile are given to the model at the
next step (``state.steer``) or start the next turn (``state.follow_up``); and older steps
are compacted (:mod:`py_agent.compaction`) when the conversation nears the model's
context window.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import os
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import Any

import sqlalchemy
from pydantic import BaseModel

from . import compaction, pricing
from . import events as ev
from .ask import DEFAULT_MAX_REPLY_CHARS, CutShort, ask, output_limit
from .database import ChangeSet, CommitRefused, ImportRefused
from .errors import ConfigurationError, PyAgentError
from .gates import CallRequest
from .llm_func import UsageMeter, fallback_model, metering
from .messages import AssistantMessage, ResultMessage, UserMessage, to_chat
from .prompt import render_prompt
from .providers.base import Completion, CompletionRequest, Provider
from .providers.errors import ContextTooLongError
from .providers.models import context_window
from .providers.registry import resolve
from .reply import Extensions, MalformedReply, extensions_of, parse_reply, reply_model
from .sandbox.executor import DEFAULT_MAX_OUTPUT
from .sandbox.limits import DEFAULT_MEMORY_MB
from .sandbox.runtime import safe_builtins
from .sandbox.validator import Policy, check_parsed
from .schema import render_schema, schema_symbols
from .state import PendingStep, State
from .sync import iterate
from .tools import Rule, Toolbox
from .workspace import StepRun, Workspace

# SQLAlchemy names model code uses on almost every step; pre-imported to save a step.
SQL_HELPERS = ("select", "func", "and_", "or_", "not_", "insert", "update", "delete", "text", "desc", "asc")

Approve = bool | None | Callable[[PendingStep], "bool | Awaitable[bool]"]
BeforeRun = Callable[[int, ast.Module], Awaitable[Sequence[ev.Event]]]


class Agent:
    """A configured agent: schema, model, tools, policy and approval rule.

    One agent can serve many :class:`State` objects (conversations).

    ``approve`` decides steps that wrote to the database: True (commit), False
    (decline), None (pause for the person) or a function of the :class:`PendingStep`.
    Calls of gated tools (``approval="ask"``) always pause for the person unless
    ``approve`` is a function, which then decides them too (``step.kind == "call"``).
    ``approvals`` overrides the tools' own approval rules by name. ``max_call_tokens``
    and ``max_call_cost`` are a per-turn budget for the model functions agent code calls.
    ``context_window`` (tokens) overrides what is known of the model; older steps are
    compacted when the conversation nears it. ``before_run(step, tree)`` runs after the
    code was checked and before it runs; the events it returns are published.
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
        memory_limit: float | None = DEFAULT_MEMORY_MB,
        policy: Policy | None = None,
        provider_options: Mapping[str, Any] | None = None,
        history: bool = True,
        allow_schema_changes: bool = False,
        max_reply_chars: int = DEFAULT_MAX_REPLY_CHARS,
        approvals: Mapping[str, Rule] | None = None,
        max_call_tokens: int | None = None,
        max_call_cost: float | None = None,
        context_window: int | None = None,
        before_run: BeforeRun | None = None,
    ) -> None:
        if max_loops < 1:
            raise ConfigurationError(f"max_loops must be at least 1, not {max_loops}", hint="pass max_loops=20 or so")
        if not (approve is True or approve is None or approve is False or callable(approve)):
            raise ConfigurationError("approve must be True, None or a function(step) -> bool")
        if context_window is not None and context_window < 1000:
            raise ConfigurationError(f"context_window must be at least 1000 tokens, not {context_window}")
        self.base = base
        self.provider = resolve(model, **dict(provider_options or {}))
        self.toolbox = Toolbox(tools, approvals=approvals)
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
        self.memory_limit = memory_limit  # MB a step may add (CPython on Linux; see sandbox/limits.py)
        self.history = history  # keep history points (and undo) in the database
        self.allow_schema_changes = allow_schema_changes  # DDL in steps (then it needs approval)
        self.max_reply_chars = max_reply_chars
        self.max_call_tokens = max_call_tokens
        self.max_call_cost = max_call_cost
        self.context_window = context_window or _window_of(self.provider)
        self.before_run = before_run
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

    # -- the workspace ----------------------------------------------------------------------
    def _prepare(self, state: State) -> Workspace:
        workspace = state.open_workspace(allow_schema_changes=self.allow_schema_changes, history=self.history)
        state.gate.on_event = state.publish  # tool_call events reach subscribers as they happen
        names: dict[str, Any] = {"__builtins__": safe_builtins(self.policy)}
        names.update(self.helpers)
        names.update(self.symbols)
        names.update(self.toolbox.namespace(state.gate))
        options: dict[str, Any] = {}
        if "gate" in inspect.signature(workspace.configure).parameters:
            options["gate"] = state.gate  # a workspace that builds the tools itself (another process)
        workspace.configure(
            names=names,
            timeout=self.timeout,
            max_output=self.max_output,
            memory_limit=self.memory_limit,
            on_output=lambda text: state.publish(ev.OutputDelta(state.step, text)) and None,
            **options,
        )
        workspace.ensure_schema(self.base.metadata)
        return workspace

    # -- the loop ----------------------------------------------------------------------------
    def run(self, state: State) -> Iterator[ev.Event]:
        """Synchronous wrapper of :meth:`arun` for CPython scripts and tests."""
        return iterate(self.arun(state))

    async def arun(self, state: State) -> AsyncIterator[ev.Event]:
        """Run the turn (or continue a paused one), yielding events as they happen.

        A follow-up queued with :meth:`State.follow_up` starts the next turn when this one
        ends (done or at its step limit): its ``user_message`` (``mode="follow_up"``) and
        its own ``turn_end`` follow in the same stream.
        """
        reason = ""
        async for event in self._turn(state):
            if isinstance(event, ev.TurnEnd):
                reason = event.reason
            yield event
        while reason in ("done", "exceeded") and state.pending is None:
            text = state.take_follow_up()
            if text is None:
                return
            state.messages.append(UserMessage(text, mode="follow_up"))
            async for event in self._turn(state):
                if isinstance(event, ev.TurnEnd):
                    reason = event.reason
                yield event

    async def _turn(self, state: State) -> AsyncIterator[ev.Event]:
        """One turn (or the rest of a paused one)."""
        state._aborted = False
        steps = 0
        cost = _TurnCost()
        budget = UsageMeter(max_tokens=self.max_call_tokens, max_cost=self.max_call_cost)
        rerun: str | None = None  # code to run again (a gated call was decided), same step
        try:
            workspace = self._prepare(state)
            yield state.publish(ev.SystemInstruction(self.system_prompt, list(self.prompt_warnings)))
            if state.pending is not None:
                if state._decision is None:
                    yield state.publish(
                        ev.ErrorEvent("approval", "a step is waiting for approval", "call state.resume(True) or state.resume(False) first", state.pending.step)
                    )
                    yield state.publish(self._end(state, "paused", steps, cost.turn))
                    return
                kind = state.pending.kind
                if kind == "call":
                    rerun = state.pending.code
                    yield state.publish(self._decide_call(state, state._decision, remember=state._remember))
                else:
                    for event in self._decide(state, workspace, state._decision, remember=state._remember):
                        yield state.publish(event)
                    if kind == "import":  # nothing for the model to do: it hears of it next turn
                        yield state.publish(self._end(state, "done", steps, cost.turn))
                        return
            elif self._next_request(state):
                self._start_turn(state, workspace)
                last = state.messages[-1]
                assert isinstance(last, UserMessage)
                yield state.publish(ev.UserMessageEvent(last.content, last.mode))
            if not any(isinstance(m, UserMessage) for m in state.messages):
                raise ConfigurationError("there is no user message to answer", hint="append UserMessage('...') to state.messages")

            while True:
                if state._aborted:
                    yield state.publish(self._end(state, "aborted", steps, cost.turn))
                    return
                if rerun is not None:
                    code, rerun = rerun, None
                    step = state.step
                else:
                    # 0. what the person sent while the model worked
                    for text in state.take_steering():
                        state.messages.append(UserMessage(text, mode="steer"))
                        yield state.publish(ev.UserMessageEvent(text, "steer"))
                    if steps >= self.max_loops:
                        for text in state.take_steering():  # too late for this turn: it starts the next
                            state.follow_up(text)
                        yield state.publish(ev.SignalEvent(ev.Signal.EXCEEDED, state.step))
                        state.messages.append(ResultMessage(f"(Stopped: the limit of {self.max_loops} steps per request was reached.)"))
                        yield state.publish(self._end(state, "exceeded", steps, cost.turn))
                        return
                    steps += 1
                    state.step += 1
                    step = state.step

                    # 1. ask the model, streaming (older steps compacted first if the window is near)
                    yield state.publish(ev.SignalEvent(ev.Signal.COMPLETION, step))
                    completion: Completion | None = None
                    request, compacted = self._request(state, step)
                    if compacted is not None:
                        yield state.publish(compacted)
                    overflowed = False
                    while True:
                        try:
                            async for item in ask(self.provider, request, step, aborted=lambda: state._aborted, max_reply_chars=self.max_reply_chars):
                                if isinstance(item, Completion):
                                    completion = item
                                else:
                                    yield state.publish(item)
                        except ContextTooLongError:
                            # The server knows better than the estimate: compact harder, once.
                            if overflowed:
                                raise
                            overflowed = True
                            request, compacted = self._request(state, step, overflow=request)
                            if compacted is None:
                                raise
                            yield state.publish(compacted)
                            continue
                        break
                    if state._aborted:
                        yield state.publish(self._end(state, "aborted", steps, cost.turn))
                        return
                    if completion is None:
                        raise PyAgentError(f"the model {self.provider.model!r} ended its reply without finishing it", hint="try again")
                    self._learn_tokens(state, request, completion)
                    cost.charge(state, completion.usage, completion.cost)

                    # 2. read the reply
                    if isinstance(completion, CutShort):  # cut off or too long: none of it is run
                        state.messages.append(AssistantMessage("", "", raw=completion.excerpt()))
                        state.messages.append(ResultMessage(completion.problem))
                        continue
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
                        if state.steering_waiting:
                            continue  # the person said more while the model answered: it reads it next
                        yield state.publish(self._end(state, "done", steps, cost.turn))
                        return

                # 3. check the code
                yield state.publish(ev.SignalEvent(ev.Signal.VALIDATION, step))
                violations, tree = check_parsed(code, self.policy)
                if violations:
                    text = "\n".join(str(v) for v in violations)
                    state.messages.append(ResultMessage(f"Your code was refused before it ran:\n{text}\nRewrite it without these."))
                    yield state.publish(ev.ValidationFailed(step, [_violation_dict(v) for v in violations], text))
                    continue
                if self.before_run is not None and tree is not None:
                    for event in await self.before_run(step, tree):
                        yield state.publish(event)

                # 4. run it in a transaction (the tools it calls go through the gate)
                yield state.publish(ev.SignalEvent(ev.Signal.EXECUTION, step))
                run = await self._execute(state, workspace, code, step, tree, budget, cost)
                for event in state.gate.take_events():
                    yield event  # already published to subscribers as it happened
                request_call = state.gate.pending
                if request_call is not None:
                    # A call needs a decision: the step was rolled back; it runs again once decided.
                    pending = PendingStep(step, code, {}, "", kind="call", detail=request_call.to_dict())
                    if callable(self.approve):
                        state.pending = pending
                        approved = await self._ask(pending)
                        yield state.publish(self._decide_call(state, approved))
                        rerun = code
                        continue
                    state.pending = pending
                    state._decision = None
                    yield state.publish(ev.SignalEvent(ev.Signal.APPROVAL, step))
                    yield state.publish(ev.ApprovalRequired(step, code, {}, {}, "call", request_call.to_dict(), []))
                    yield state.publish(self._end(state, "paused", steps, cost.turn))
                    return
                outcome = run.outcome
                yield state.publish(ev.ExecutionResult(step, outcome.output, outcome.error, round(outcome.duration_ms, 3), outcome.truncated))
                for shown in run.displays:  # show()/chart(): the person's tables and charts
                    yield state.publish(ev.Display(step, **shown.event_fields()))
                changes = run.changes
                if not run.open:
                    if changes:
                        yield state.publish(ev.Changes(step, status="rolled_back", **changes.event_fields()))
                    state.messages.append(ResultMessage(_feedback(outcome.output, outcome.error, changes, "rolled_back")))
                    continue
                if not changes:
                    try:
                        workspace.commit(request=_request(state), turn=state.turn)
                    except CommitRefused as refused:
                        state.messages.append(ResultMessage(_feedback(outcome.output, str(refused), changes, "rolled_back")))
                        yield state.publish(ev.ErrorEvent(refused.kind, refused.message, refused.hint, step))
                        continue
                    state.messages.append(ResultMessage(_feedback(outcome.output, None, changes, "none")))
                    continue

                # 5. approval
                pending = PendingStep(step, code, changes.tables, outcome.output, changes.rows, list(changes.schema), changes=changes)
                if self.approve is None and not state.auto_approve:
                    state.pending = pending
                    state._decision = None
                    yield state.publish(ev.Changes(step, status="pending", **changes.event_fields()))
                    yield state.publish(ev.SignalEvent(ev.Signal.APPROVAL, step))
                    yield state.publish(ev.ApprovalRequired(step, code, changes.tables, changes.rows, "write", None, list(changes.schema)))
                    yield state.publish(self._end(state, "paused", steps, cost.turn))
                    return
                approved = True if state.auto_approve and self.approve is None else await self._ask(pending)
                state.pending = pending
                announce = self.approve is not True and not (state.auto_approve and self.approve is None)
                for event in self._decide(state, workspace, approved, announce=announce):
                    yield state.publish(event)
        except PyAgentError as exc:
            self._rollback_open_step(state)
            yield state.publish(ev.ErrorEvent(getattr(exc, "kind", "error"), exc.message, exc.hint, state.step))
            yield state.publish(self._end(state, "error", steps, cost.turn))
        except Exception as exc:
            self._rollback_open_step(state)
            yield state.publish(
                ev.ErrorEvent("internal", f"{type(exc).__name__}: {exc}", "this is a bug in py-agent or a tool; the conversation can continue", state.step)
            )
            yield state.publish(self._end(state, "error", steps, cost.turn))
        except BaseException:  # cancellation, GeneratorExit: undo the open step and let it through
            self._rollback_open_step(state)
            raise

    async def _execute(
        self, state: State, workspace: Workspace, code: str, step: int, tree: ast.Module | None, budget: UsageMeter, cost: _TurnCost
    ) -> StepRun:
        """Run the step's code; the model functions it calls count toward the turn."""
        gate = state.gate
        gate.begin(step)
        namespace = getattr(workspace, "namespace", None)
        # Names the step binds are put back if a gated call stops it (it runs again from its start).
        before = dict(namespace) if self.toolbox.gated and namespace is not None else None
        spent = UsageMeter()
        try:
            with metering(budget), metering(spent), fallback_model(self.provider):
                run = await workspace.run(code, step=step, tree=tree)
        finally:
            if spent.attempts:
                cost.charge(state, spent.usage, spent.cost)
        if gate.pending is not None:
            if run.open:  # the model's code caught the signal and went on: the step still stops here
                workspace.rollback()
            if before is not None and namespace is not None:
                namespace.clear()
                namespace.update(before)
        return run

    def _next_request(self, state: State) -> bool:
        """Whether a new turn starts: the last message is the person's, or a queued one becomes it."""
        if state.messages and isinstance(state.messages[-1], UserMessage):
            return True
        text = state.take_follow_up()
        if text is None:
            steering = state.take_steering()
            text = "\n\n".join(steering) if steering else None
        if text is None:
            return False
        state.messages.append(UserMessage(text, mode="follow_up"))
        return True

    def _start_turn(self, state: State, workspace: Workspace) -> None:
        """A new request: a new history point for its commits; notes the model has not seen yet."""
        state.turn += 1
        workspace.end_turn()
        if state.discarded_step is not None:
            state.discarded_step = None  # the page tells the person and the model (browser/recovery.py)
        if state.notes:
            # Before the person's message, so the model reads it in order.
            state.messages.insert(len(state.messages) - 1, ResultMessage("\n".join(state.notes)))
            state.notes.clear()

    # -- the context window --------------------------------------------------------------------
    def _request(self, state: State, step: int, *, overflow: CompletionRequest | None = None) -> tuple[CompletionRequest, ev.Compacted | None]:
        """The next request, with older steps compacted first when it would not fit.

        ``overflow`` is the request the server refused as too long: the window it has is
        taken to be smaller than that request (by the estimate), and compaction is forced.
        """
        request = CompletionRequest(self.system_prompt, to_chat(state.messages), self._schema)
        ratio = state._tokens_per_char or compaction.DEFAULT_TOKENS_PER_CHAR
        window = min(self.context_window, state._context_limit or self.context_window)
        if overflow is not None:
            refused = int(_chars(overflow) * ratio)
            window = state._context_limit = max(1000, min(window, int(refused * 0.9)))
        available = window - min(output_limit(self.provider, request) or 4096, window // 4)  # room for the reply
        estimate = int(_chars(request) * ratio)
        if overflow is None and estimate <= available * compaction.COMPACT_AT:
            return request, None
        result = compaction.compact(
            state.messages, system_chars=len(self.system_prompt), budget=int(available * compaction.TARGET), tokens_per_char=ratio
        )
        if result is None:
            return request, None
        state.messages[:] = result.messages
        state.compactions += 1
        parts = []
        if result.steps:
            parts.append(f"{result.steps} older step{'s were' if result.steps != 1 else ' was'} shortened")
        if result.turns:
            parts.append(f"{result.turns} earlier request{'s were' if result.turns != 1 else ' was'} left out")
        cause = (
            "The model's server said the conversation no longer fits its context window"
            if overflow is not None
            else f"The conversation neared the model's context window ({window:,} tokens)"
        )
        said = f"{cause}, so {' and '.join(parts)} (about {result.before:,} → {result.after:,} tokens)."
        event = ev.Compacted(step, "overflow" if overflow is not None else "threshold", result.before, result.after, window, result.steps, result.turns, said)
        return CompletionRequest(self.system_prompt, to_chat(state.messages), self._schema), event

    @staticmethod
    def _learn_tokens(state: State, request: CompletionRequest, completion: Completion) -> None:
        """Tokens per character, from the provider's own count of the request (for the estimate)."""
        if isinstance(completion, CutShort) and completion.reason == "too_long":
            return  # its usage is an estimate, not the server's count
        counted = completion.usage.input_tokens
        chars = _chars(request)
        if counted > 0 and chars > 0:
            state._tokens_per_char = min(max(counted / chars, 0.1), 1.0)

    async def _ask(self, pending: PendingStep) -> bool:
        if self.approve is True:
            return True
        if self.approve is False:
            return False
        answer = self.approve(pending)  # type: ignore[operator]
        if inspect.isawaitable(answer):
            answer = await answer
        return bool(answer)

    def _decide_call(self, state: State, approved: bool, *, remember: bool = False) -> ev.ApprovalDecision:
        """Record the decision on the pending call; the step then runs again."""
        pending = state.pending
        assert pending is not None and pending.kind == "call"
        state.gate.decide(CallRequest(pending.detail["name"], pending.detail["arguments"]), approved, remember=remember and approved)
        state.pending = None
        state._decision, state._remember = None, False
        return ev.ApprovalDecision(pending.step, approved, remember and approved)

    def _decide(self, state: State, workspace: Workspace, approved: bool, *, announce: bool = True, remember: bool = False) -> list[ev.Event]:
        """Commit or roll back the pending step and tell the model what happened."""
        pending = state.pending
        assert pending is not None
        changes = pending.changes or ChangeSet(tables=pending.tables, rows=pending.rows, schema=list(pending.schema))
        if remember and approved:
            state.auto_approve = True
        state.pending = None
        state._decision, state._remember = None, False
        before: list[ev.Event] = [ev.ApprovalDecision(pending.step, approved, remember)] if announce else []
        after: list[ev.Event] = []
        status, error = ("committed" if approved else "declined"), None
        if not approved:
            workspace.rollback()
        else:
            try:
                if pending.kind == "import":
                    committed = workspace.commit_import(request="import a database file")
                else:
                    committed = workspace.commit(request=_request(state), turn=state.turn)
            except CommitRefused as refused:
                status, error = "rolled_back", str(refused)
                before.append(ev.ErrorEvent(refused.kind, refused.message, refused.hint, pending.step))
            else:
                changes = committed.changes  # the same as shown: the commit verified it
                error = "\n".join(committed.warnings) or None
                if committed.point is not None:
                    after.append(ev.HistoryPointEvent(committed.point.to_dict()))
        if pending.kind == "import":
            if status == "committed":
                state.notes.append(f"(Note: the person imported a database file, which replaced the rows of the app's tables: {changes.summary() or 'no rows changed'}.)")
        else:
            state.messages.append(ResultMessage(_feedback(pending.output, error, changes, status)))
        return [*before, ev.Changes(pending.step, status=status, **changes.event_fields()), *after]

    # -- imports ------------------------------------------------------------------------------
    async def aimport(self, state: State, data: bytes | str | os.PathLike[str]) -> AsyncIterator[ev.Event]:
        """Stage an import of a database file as a step that waits for confirmation.

        The file is checked against the mapped schema first (a file whose tables cannot be
        matched is refused, with the report); then the rows of the mapped tables are
        replaced in an open transaction and the step pauses with ``approval_required``
        (``kind="import"``, ``detail`` = the report, ``rows`` = the row preview). Decide it
        like any step: ``state.resume(True)`` and run again; the import is then a history
        point that can be undone.
        """
        try:
            workspace = self._prepare(state)
            if state.pending is not None:
                raise PyAgentError(f"step {state.pending.step} is waiting for approval", hint="approve or decline it before importing")
            try:
                report, changes = workspace.stage_import(data, self.base.metadata)
            except ImportRefused as refused:
                yield state.publish(ev.ErrorEvent("import", refused.message, refused.hint, state.step))
                yield state.publish(ev.TurnEnd("error", 0, state.usage.input_tokens, state.usage.output_tokens, None, state.cost))
                return
            if not changes:
                workspace.rollback()
                yield state.publish(ev.ErrorEvent("import", "the file holds the same rows as the database: there is nothing to import", "", state.step))
                yield state.publish(ev.TurnEnd("done", 0, state.usage.input_tokens, state.usage.output_tokens, None, state.cost))
                return
            state.step += 1
            step = state.step
            detail = report.to_dict()
            state.pending = PendingStep(step, "", changes.tables, "", changes.rows, [], "import", detail, changes)
            state._decision = None
            yield state.publish(ev.Changes(step, status="pending", **changes.event_fields()))
            yield state.publish(ev.SignalEvent(ev.Signal.APPROVAL, step))
            yield state.publish(ev.ApprovalRequired(step, "", changes.tables, changes.rows, "import", detail, []))
            yield state.publish(ev.TurnEnd("paused", 0, state.usage.input_tokens, state.usage.output_tokens, None, state.cost))
        except PyAgentError as exc:
            yield state.publish(ev.ErrorEvent(getattr(exc, "kind", "error"), exc.message, exc.hint, state.step))
            yield state.publish(ev.TurnEnd("error", 0, state.usage.input_tokens, state.usage.output_tokens, None, state.cost))

    def import_database(self, state: State, data: bytes | str | os.PathLike[str]) -> Iterator[ev.Event]:
        """Synchronous :meth:`aimport` for CPython."""
        return iterate(self.aimport(state, data))

    def check_import(self, state: State, data: bytes | str | os.PathLike[str]) -> Any:
        """The schema report of a database file, without importing anything."""
        return self._prepare(state).check_import(data, self.base.metadata)

    def _rollback_open_step(self, state: State) -> None:
        workspace = state._workspace
        if workspace is not None and workspace.pending and state.pending is None:
            workspace.rollback()

    def _end(self, state: State, reason: str, steps: int, cost: float | None = None) -> ev.TurnEnd:
        return ev.TurnEnd(reason, steps, state.usage.input_tokens, state.usage.output_tokens, cost, state.cost)


class _TurnCost:
    """The cost of this turn's model calls (replies and model functions), charged to the state too."""

    def __init__(self) -> None:
        self.turn: float | None = None

    def charge(self, state: State, usage: Any, cost: float | None) -> None:
        state.usage = state.usage + usage
        self.turn = pricing.add_costs(self.turn, cost)
        state.cost = pricing.add_costs(state.cost, cost)


def _window_of(provider: Provider) -> int:
    """The context window of ``provider``'s model (the smallest of a fallback list): what is known
    of the model, else the local server's usual window, else the default."""
    windows = []
    for member in getattr(provider, "providers", None) or [provider]:
        server = member.model.partition(":")[0] if ":" in member.model else ""
        windows.append(compaction.SERVER_WINDOWS.get(server) or context_window(member.model) or compaction.DEFAULT_CONTEXT_WINDOW)
    return min(windows)


def _chars(request: CompletionRequest) -> int:
    return len(request.system) + sum(len(m.content) + compaction.FRAMING for m in request.messages)


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


def _request(state: State) -> str:
    """The person's request of the current turn (the last message they wrote)."""
    for message in reversed(state.messages):
        if isinstance(message, UserMessage):
            return message.content
    return ""


def summarize(tables: Mapping[str, Mapping[str, int]]) -> str:
    parts = []
    for table, counts in tables.items():
        done = [f"{n} {op}" for op, n in counts.items() if n]
        parts.append(f"{table}: {', '.join(done)}")
    return "; ".join(parts)


def _feedback(output: str, error: str | None, changes: ChangeSet, status: str) -> str:
    """The result message the model reads after a step."""
    lines = ["Output:", output.rstrip() or "(nothing printed)"]
    if error:
        lines += ["Error:", error]
    summary = changes.summary()
    if status == "rolled_back":
        lines.append("The step failed, so its changes were rolled back" + (f" ({summary})." if summary else "."))
    elif status == "committed":
        lines.append(f"Changes saved: {summary}.")
    elif status == "declined":
        lines.append(f"The person declined these changes, so they were rolled back: {summary}. Ask what they want instead, or try another way.")
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


def resume(approved: bool, *, state: State, remember: bool = False, **kwargs: Any) -> Iterator[ev.Event]:
    """Decide a paused step and continue the turn synchronously."""
    state.resume(approved, remember=remember)
    return run(state=state, **kwargs)
