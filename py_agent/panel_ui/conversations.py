"""Conversations that outlive a browser tab: what a reload comes back to.

A :class:`LiveConversation` is one conversation in this server process: its
:class:`~py_agent.state.State` (and so its workspace and database connection), the
running turn, and a log of what was shown, in *segments* (a request and its turn, the
rest of a turn after a decision, an undo). Browser sessions are only views of it: a view
that goes away (a reload, a closed tab) leaves the conversation, its open transaction
and its running turn alone, and the next view with the same ``?conversation=ID`` in its
address draws the log again and follows the turn.

:class:`Registry` keeps the live conversations of the process: those no view looks at
are closed :data:`KEEP_SECONDS` after the last view left (or when more than
:data:`KEEP_AT_MOST` are kept). Conversations of a server with a store are also saved in
the database after every segment; one resumed from there (another process, a restart)
is drawn from its messages, without the tables and outputs of its past turns.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import events as ev
from ..database import UndoError
from ..errors import PyAgentError
from ..messages import AssistantMessage, ResultMessage, UserMessage
from ..state import State
from .render import count_summary

KEEP_SECONDS = 15 * 60  # how long a conversation no tab shows stays in memory
KEEP_AT_MOST = 100  # conversations no tab shows, at most, per process
QUIET = frozenset({"message_delta", "code_delta", "output_delta"})  # shown live, not kept in the log
LIVE_ONLY = frozenset({"output_delta", "tool_call"})  # published while a step runs (the loop yields tool calls again after it)

UNDO_HINT = "undo the later turns first, or use Restore in the history to go back further"

_segment_ids = itertools.count(1)


@dataclass
class Segment:
    """What one assistant message of the chat shows: ``kind`` is ``"turn"`` (the person's
    ``request`` and the turn it started), ``"decision"`` (a paused turn continued after
    Approve/Decline), ``"undo"`` or ``"restore"``; ``"earlier"`` for turns resumed from a store."""

    kind: str
    request: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    id: int = field(default_factory=lambda: next(_segment_ids))
    running: bool = False
    done: asyncio.Future[None] | None = field(default=None, repr=False)


class View(Protocol):
    """A browser session showing the conversation."""

    def segment_started(self, segment: Segment, origin: Any) -> None: ...

    def segment_event(self, segment: Segment, event: dict[str, Any]) -> None: ...

    def segment_ended(self, segment: Segment) -> None: ...


@dataclass
class Settings:
    """The model settings chosen in the sidebar (memory only: an API key is never stored)."""

    model: str = ""
    base_url: str = ""
    api_key: str = ""
    ask: bool = False


class LiveConversation:
    """One conversation in this process, shown by any number of views (see the module docstring)."""

    def __init__(self, state: State, *, key: Any, conversation_id: str | None = None, record: Any = None,
                 owner: str | None = None, engine: Any = None) -> None:
        self.state = state
        self.key = key  # which app/server it belongs to: a view of another app never reattaches it
        self.id = conversation_id or (record.id if record is not None else secrets.token_urlsafe(18))
        self.record = record  # the server's stored Conversation, when there is a store
        self.owner = owner
        self.engine = engine  # the database (kept: a new conversation keeps the data)
        self.settings: Settings | None = None
        self.segments: list[Segment] = []
        self.queue: list[str] = []  # messages typed while a step waited for a decision
        self.views: list[View] = []
        self.detached_at: float | None = time.monotonic()
        self.task: asyncio.Task[None] | None = None
        self._collect: list[dict[str, Any]] | None = None
        self._current: Segment | None = None  # the turn running now
        self._stopping = False
        state.subscribe(self._published)
        if record is not None and state.messages:
            self.segments.extend(segments_from_messages(state))

    # -- what views see -----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """A turn runs (or is being stopped)."""
        return self._current is not None

    def attach(self, view: View) -> None:
        if view not in self.views:
            self.views.append(view)
        self.detached_at = None

    def detach(self, view: View) -> None:
        if view in self.views:
            self.views.remove(view)
        if not self.views:
            self.detached_at = time.monotonic()

    def _published(self, event: ev.Event) -> None:
        # Output printed while a step runs reaches subscribers only (the loop cannot yield then);
        # an undo's events are published by the state, not yielded.
        if self._collect is not None:
            self._collect.append(event.to_dict())
        elif event.type in LIVE_ONLY and self._current is not None:
            self._emit(self._current, event.to_dict(), log=False)

    def _emit(self, segment: Segment, event: dict[str, Any], *, log: bool = True) -> None:
        if log and event.get("type") not in QUIET:
            segment.events.append(event)
        for view in list(self.views):
            view.segment_event(segment, event)

    def _begin(self, segment: Segment, origin: Any) -> None:
        self.segments.append(segment)
        for view in list(self.views):
            view.segment_started(segment, origin)

    def _end(self, segment: Segment) -> None:
        segment.running = False
        problem = self.save()
        if problem is not None:
            self._emit(segment, problem)
        if segment.done is not None and not segment.done.done():
            segment.done.set_result(None)
        for view in list(self.views):
            view.segment_ended(segment)

    # -- turns --------------------------------------------------------------------------------
    def start_turn(self, agent: Any, text: str, origin: Any = None) -> Segment:
        """Send the person's message and run the turn (in a task of its own)."""
        self.state.messages.append(UserMessage(text))
        return self._launch(Segment("turn", text), agent, origin)

    def decide(self, agent: Any, approved: bool, remember: bool = False, origin: Any = None) -> Segment:
        """Decide the step that waits, and run the rest of its turn."""
        self.state.resume(approved, remember=remember)
        return self._launch(Segment("decision"), agent, origin)

    def _launch(self, segment: Segment, agent: Any, origin: Any) -> Segment:
        workspace = self.state._workspace
        set_policy = getattr(workspace, "set_policy", None)
        if set_policy is not None:  # (State applies the agent's policy to its own workspaces only)
            set_policy(allow_schema_changes=agent.allow_schema_changes, history=agent.history)
        loop = asyncio.get_running_loop()
        segment.running = True
        segment.done = loop.create_future()
        self._begin(segment, origin)
        self._current = segment
        self.task = loop.create_task(self._run(segment, agent))
        return segment

    async def _run(self, segment: Segment, agent: Any) -> None:
        steps = 0
        try:
            async for event in agent.arun(self.state):
                steps += event.type == "assistant_reply"
                self._emit(segment, event.to_dict())
        except asyncio.CancelledError:
            self._note_stop()
            await _worker_settled(self.state._workspace)
            state = self.state
            usage = state.usage
            self._emit(segment, ev.TurnEnd("aborted", steps, usage.input_tokens, usage.output_tokens, None, state.cost).to_dict())
        finally:
            self._current = None
            self._stopping = False
            self._end(segment)

    def _note_stop(self) -> None:
        """Tell the model, at its next turn, that the person stopped this one (and what that undid)."""
        messages = self.state.messages
        last = messages[-1] if messages else None
        if isinstance(last, AssistantMessage) and last.code.strip():
            note = "(The person pressed Stop while this step ran: it was stopped and rolled back, nothing it did was saved."
            if type(self.state._workspace).__name__ == "ProcessWorkspace":
                note += " Its worker process was ended, so your variables are gone: query what you need again."
            messages.append(ResultMessage(note + ")"))
        elif isinstance(last, UserMessage):
            messages.append(ResultMessage("(The person pressed Stop before you answered this request.)"))

    def stop(self) -> bool:
        """Stop the running turn (the step is interrupted, or its worker ended); False if none runs."""
        if self.task is None or self.task.done():
            return False
        if not self._stopping:  # once: the task's clean-up after a stop must not be cancelled too
            self._stopping = True
            self.state.abort()  # a model that is streaming closes its stream too
            self.task.cancel()
        return True

    async def idle(self) -> None:
        """Wait until no turn runs (a stopped step may take a moment to end)."""
        while self.task is not None and not self.task.done():
            await asyncio.wait({self.task})

    # -- history ------------------------------------------------------------------------------
    def undo(self, point: int | None = None, origin: Any = None) -> tuple[Segment, str]:
        """Undo the last committed turn (``point``: it must be that one); returns the segment and a summary."""
        return self._revert("undo", point, origin)

    def restore(self, point: int, origin: Any = None) -> tuple[Segment, str]:
        """Bring the database back to how it was right after history point ``point`` (0: the start)."""
        return self._revert("restore", point, origin)

    def _revert(self, kind: str, point: int | None, origin: Any) -> tuple[Segment, str]:
        segment = Segment(kind, running=True)
        self._begin(segment, origin)
        self._collect = collected = []
        try:
            if self.running:
                raise UndoError(f"cannot {kind} while a turn runs", hint="wait for it to end, or stop it")
            done = self.state.undo(point) if kind == "undo" else self.state.restore(int(point or 0))
        except UndoError as exc:
            self._collect = None
            # The core's hints name its Python API (`restore(0)`); here the sidebar's history does that.
            hint = UNDO_HINT if "restore(" in exc.hint else exc.hint
            self._emit(segment, ev.ErrorEvent("undo", exc.message, hint).to_dict())
            text = f"**Nothing was undone:** {exc.message}" + (f" ({hint})" if hint else "")
        except PyAgentError as exc:  # the workspace could not be reached (a worker that failed to start)
            self._collect = None
            self._emit(segment, ev.ErrorEvent(exc.kind, exc.message, exc.hint).to_dict())
            text = f"**Nothing was undone:** {exc.message}"
        else:
            self._collect = None
            for event in collected:
                self._emit(segment, event)
            what = "Undone" if kind == "undo" else "Restored"
            text = f"**{what}** (history point {', '.join(map(str, done.reverted))}): {count_summary(done.tables)}."
        self._end(segment)
        return segment, text

    def history(self) -> list[dict[str, Any]]:
        """The history points of the database, oldest first (``[]`` when it keeps none)."""
        try:
            return [p.to_dict() for p in self.state.history]
        except (PyAgentError, TypeError, AttributeError):
            return []

    # -- storage ------------------------------------------------------------------------------
    def save(self) -> dict[str, Any] | None:
        """Store the conversation (a server's); returns an error event if that failed."""
        if self.record is None:
            return None
        from ..server import ConversationConflict

        try:
            self.record.save()
        except ConversationConflict as conflict:
            return ev.ErrorEvent("conversation", f"not saved: {conflict.message}", conflict.hint).to_dict()
        return None

    def close(self) -> None:
        """End the conversation in this process (its turn, its workspace); a stored copy stays."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.record is not None:
            self.record.close()
        else:
            self.state.close()


async def _worker_settled(workspace: Any, patience: float = 10.0) -> None:
    """After a stop: wait until a separate-process workspace's reader of the ended worker is done.

    That reader thread ends the workspace's *current* worker when it sees its pipe close;
    a worker started before it finished would be the one ended (requested from the server
    helper; until then, wait for its lock to be free before the workspace is used again).
    """
    lock = getattr(workspace, "_lock", None)
    until = time.monotonic() + patience
    while lock is not None and lock.locked() and time.monotonic() < until:
        await asyncio.sleep(0.01)


def segments_from_messages(state: State) -> list[Segment]:
    """Segments for a conversation resumed from its stored messages (the log was not stored)."""
    segments: list[Segment] = []
    for message in state.messages:
        if isinstance(message, UserMessage):
            segments.append(Segment("earlier", message.content))
        elif isinstance(message, AssistantMessage) and (message.message.strip() or message.code.strip()):
            if not segments:
                segments.append(Segment("earlier"))
            segments[-1].events.append(ev.AssistantReply(0, message.message, message.code).to_dict())
    return segments


class Registry:
    """The live conversations of this process, by id (see the module docstring)."""

    def __init__(self, *, keep_seconds: float = KEEP_SECONDS, keep_at_most: int = KEEP_AT_MOST) -> None:
        self.keep_seconds = keep_seconds
        self.keep_at_most = keep_at_most
        self._live: dict[str, LiveConversation] = {}

    def find(self, conversation_id: str | None, *, key: Any, owner: str | None) -> LiveConversation | None:
        """The live conversation ``conversation_id`` of this app and owner, if this process has it."""
        self.sweep()
        live = self._live.get(conversation_id or "")
        if live is None or live.key != key or live.owner != owner:
            return None
        return live

    def add(self, live: LiveConversation) -> LiveConversation:
        self._live[live.id] = live
        self.sweep()
        return live

    def remove(self, live: LiveConversation) -> None:
        if self._live.get(live.id) is live:
            del self._live[live.id]

    def sweep(self, now: float | None = None) -> None:
        """Close conversations no view has shown for ``keep_seconds``, and the oldest beyond ``keep_at_most``."""
        now = time.monotonic() if now is None else now
        idle = sorted((c for c in self._live.values() if c.detached_at is not None and not c.running), key=lambda c: c.detached_at or 0)
        expired = [c for c in idle if now - (c.detached_at or now) > self.keep_seconds]
        expired += [c for c in idle[: max(0, len(idle) - self.keep_at_most)] if c not in expired]
        for live in expired:
            self.remove(live)
            live.close()

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, conversation_id: object) -> bool:
        return conversation_id in self._live


LIVE = Registry()  # this process's live conversations

