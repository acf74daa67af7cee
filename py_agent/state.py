"""Conversation state that persists across turns: messages, workspace (database), usage, history."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from . import events as ev
from .database import (
    ChangeSet,
    ChangeTable,
    Database,
    HistoryPoint,
    UndoError,
    memory_engine,
)
from .database.step import Reverted
from .events import Event
from .gates import Gate
from .messages import Message, message_from_dict
from .providers.base import Usage
from .workspace import LocalWorkspace, Workspace

Subscriber = Callable[[Event], None]


@dataclass(frozen=True)
class PendingStep:
    """A step that ran in an open transaction and waits for a decision.

    ``tables`` holds exact counts, ``rows`` the capped row preview (as in the
    ``changes`` event); ``kind`` is ``"write"`` or ``"import"`` (``detail``: the report).
    """

    step: int
    code: str
    tables: ChangeTable
    output: str
    rows: dict[str, Any] = field(default_factory=dict)
    schema: list[str] = field(default_factory=list)
    kind: str = "write"
    detail: Any = None
    changes: ChangeSet | None = field(default=None, repr=False, compare=False)


@dataclass
class State:
    """Everything one conversation needs between calls to ``run``/``arun``.

    Pass ``engine`` (any SQLAlchemy engine), or ``session`` (its bind is used), or
    neither for a fresh in-memory SQLite database (the agent creates the mapped tables
    in it). Append a :class:`UserMessage` to ``messages`` and call ``run`` again to
    continue the conversation with the same namespace and database. After a run,
    ``session`` is the live session the agent's code used.

    While a turn runs, :meth:`steer` gives the model a message at its next step and
    :meth:`follow_up` queues one for when the turn ends (both thread-safe).
    """

    engine: Engine | Connection | None = None
    session: Session | None = None
    messages: list[Message] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None  # US dollars spent on the model in this conversation (None: unknown)
    step: int = 0
    pending: PendingStep | None = None
    last_reply: Any = field(default=None, repr=False)  # the last parsed reply (an instance of the extensions)
    namespace: dict[str, Any] = field(default_factory=dict, repr=False)
    auto_approve: bool = False  # "allow for the rest of this conversation" was chosen
    turn: int = 0
    discarded_step: int | None = None  # a step that waited for approval when the conversation was saved
    notes: list[str] = field(default_factory=list)  # told to the model at its next turn (undo, import)
    gate: Gate = field(default_factory=Gate, repr=False)  # tool calls: rules, decisions, events
    compactions: int = 0  # times older steps were compacted to fit the context window
    _steering: deque[str] = field(default_factory=deque, repr=False)
    _follow_ups: deque[str] = field(default_factory=deque, repr=False)
    _tokens_per_char: float | None = field(default=None, repr=False)  # learnt from the provider's counts
    _context_limit: int | None = field(default=None, repr=False)  # a smaller window a server's refusal taught
    _workspace: Workspace | None = field(default=None, repr=False)
    _decision: bool | None = field(default=None, repr=False)
    _remember: bool = field(default=False, repr=False)
    _aborted: bool = field(default=False, repr=False)
    _subscribers: list[Subscriber] = field(default_factory=list, repr=False)

    # -- the workspace ---------------------------------------------------------------------
    @property
    def workspace(self) -> Workspace:
        """Where this conversation's code runs (created on first use)."""
        if self._workspace is None:
            self.open_workspace()
        assert self._workspace is not None
        return self._workspace

    def open_workspace(self, *, allow_schema_changes: bool = False, history: bool = True) -> Workspace:
        """Create the workspace (or adjust the open one) with the agent's database policy."""
        if self._workspace is None:
            bind: Engine | Connection
            if self.engine is not None:
                bind = self.engine
            elif self.session is not None:
                bind = self.session.get_bind()
            else:
                bind = self.engine = memory_engine()
            self._workspace = LocalWorkspace(bind, namespace=self.namespace, allow_schema_changes=allow_schema_changes, history=history)
            if self._workspace.session is not None:
                self.session = self._workspace.session
        elif isinstance(self._workspace, LocalWorkspace):
            self._workspace.db.set_policy(allow_schema_changes=allow_schema_changes, history=history)
        else:
            set_policy = getattr(self._workspace, "set_policy", None)
            if set_policy is not None:
                set_policy(allow_schema_changes=allow_schema_changes, history=history)
        return self._workspace

    def attach(self, workspace: Workspace) -> None:
        """Run this conversation's code in ``workspace`` (e.g. a separate-process one).

        Call it before the first run; a workspace already open is closed first. The
        agent sets the workspace's policy (``set_policy``, when it has one) at each run.
        """
        if self._workspace is not None and self._workspace is not workspace:
            self._workspace.close()
        self._workspace = workspace
        self.session = workspace.session

    @property
    def db(self) -> Database:
        """The local workspace's database layer (connection, session, steps)."""
        workspace = self.workspace
        if not isinstance(workspace, LocalWorkspace):
            raise TypeError("this conversation's database lives in another process (state.db is for in-process workspaces)")
        return workspace.db

    # -- control -------------------------------------------------------------------------
    def resume(self, approved: bool, *, remember: bool = False) -> None:
        """Decide the pending step; the next ``run``/``arun`` commits or rolls it back.

        ``remember=True`` with ``approved`` also approves every later step of this
        conversation ("allow for the rest of this conversation").
        """
        if self.pending is None:
            raise RuntimeError("there is no step waiting for approval")
        self._decision = bool(approved)
        self._remember = bool(remember and approved)

    def steer(self, text: str) -> None:
        """Give the model ``text`` at the next step of the running turn.

        Safe to call from another thread (a UI callback) while the turn runs. When no
        turn runs, the next turn starts with it. The model is told it came while it worked.
        """
        self._steering.append(str(text))

    def follow_up(self, text: str) -> None:
        """Queue ``text`` as the next request: it starts a new turn when this one ends
        (within the same ``run``/``arun``), or the next ``run`` when no turn is running."""
        self._follow_ups.append(str(text))

    @property
    def queued(self) -> list[dict[str, str]]:
        """Messages not yet given to the model: ``[{"mode": "steer"|"follow_up", "text"}]``."""
        return [{"mode": "steer", "text": t} for t in list(self._steering)] + [
            {"mode": "follow_up", "text": t} for t in list(self._follow_ups)
        ]

    def clear_queue(self) -> list[dict[str, str]]:
        """Drop the queued messages (steering and follow-ups); returns them."""
        dropped = self.queued
        self._steering.clear()
        self._follow_ups.clear()
        return dropped

    @property
    def steering_waiting(self) -> bool:
        """Whether a steering message waits for the next step."""
        return bool(self._steering)

    def take_steering(self) -> list[str]:
        """The steering messages waiting for the next step, removed from the queue."""
        taken = []
        while True:
            try:
                taken.append(self._steering.popleft())
            except IndexError:
                return taken

    def take_follow_up(self) -> str | None:
        """The next queued follow-up (removed), or None."""
        try:
            return self._follow_ups.popleft()
        except IndexError:
            return None

    def abort(self) -> None:
        """Stop the current run at its next await (the model's stream is closed)."""
        self._aborted = True

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns a function that unsubscribes."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def publish(self, event: Event) -> Event:
        for callback in list(self._subscribers):
            callback(event)
        return event

    # -- history ---------------------------------------------------------------------------
    @property
    def history(self) -> list[HistoryPoint]:
        """The history points of the database, oldest first."""
        return self.workspace.history()

    def undo(self, point: int | None = None) -> ev.Undone:
        """Revert the last committed turn not yet undone (repeatable); it becomes a point too.

        Raises :class:`~py_agent.database.UndoError` (nothing changed) when rows changed
        since, or there is nothing to undo. The model is told at its next turn.
        """
        self._idle("undo")
        return self._reverted(self.workspace.undo(point), "undo")

    def restore(self, point: int) -> ev.Undone:
        """Bring the database back to how it was right after history point ``point``
        (0: before the first point). Raises ``UndoError`` when that is not possible."""
        self._idle("restore")
        return self._reverted(self.workspace.restore(point), "restore")

    def _idle(self, what: str) -> None:
        if self.pending is not None:
            raise UndoError(f"cannot {what} while step {self.pending.step} waits for approval", hint="approve or decline it first")

    def _reverted(self, result: Reverted, kind: str) -> ev.Undone:
        changes = result.changes
        which = ", ".join(str(i) for i in result.reverted)
        if kind == "undo":
            said = f"The person undid history point {which}"
        else:
            said = f"The person restored the database to how it was before history point{'s' if len(result.reverted) > 1 else ''} {which}"
        summary = changes.summary() or "no rows"
        self.notes.append(f"(Note: {said}; the rows changed back: {summary}. Work from the database as it is now.)")
        self.publish(ev.HistoryPointEvent(result.point.to_dict()))
        done = ev.Undone(result.point.to_dict(), kind, changes.tables, changes.rows, list(result.reverted))
        self.publish(done)
        return done

    # -- transcripts -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The conversation as JSON-able data (the database, with its history, is saved separately)."""
        data: dict[str, Any] = {
            "version": 1,
            "messages": [m.to_dict() for m in self.messages],
            "usage": {"input_tokens": self.usage.input_tokens, "output_tokens": self.usage.output_tokens},
            "cost": self.cost,
            "step": self.step,
            "turn": self.turn,
            "auto_approve": self.auto_approve,
            "notes": list(self.notes),
            "allowed_calls": sorted(self.gate.remembered),
            "queued": self.queued,
            "compactions": self.compactions,
        }
        if self.pending is not None:
            # Its transaction cannot be saved: a restored conversation reports it as discarded.
            data["pending"] = {"step": self.pending.step, "kind": self.pending.kind, "tables": self.pending.tables}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], **kwargs: Any) -> State:
        """Resume a saved conversation; ``kwargs`` are State's (engine, session).

        A step that was waiting for approval when it was saved is gone (its transaction
        was not); ``discarded_step`` names it.
        """
        usage = data.get("usage") or {}
        pending = data.get("pending")
        discarded = pending.get("step") if isinstance(pending, dict) else None
        gate = Gate()
        gate.remembered.update(str(n) for n in data.get("allowed_calls", []) if isinstance(n, str))
        queued = [q for q in data.get("queued", []) if isinstance(q, dict) and isinstance(q.get("text"), str)]
        return cls(
            messages=[message_from_dict(m) for m in data.get("messages", [])],
            usage=Usage(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))),
            cost=float(data["cost"]) if isinstance(data.get("cost"), (int, float)) else None,
            step=int(data.get("step", 0)),
            turn=int(data.get("turn", 0)),
            auto_approve=bool(data.get("auto_approve", False)),
            notes=[str(n) for n in data.get("notes", [])],
            discarded_step=discarded if isinstance(discarded, int) and not isinstance(discarded, bool) else None,
            gate=gate,
            compactions=int(data.get("compactions", 0) or 0),
            _steering=deque(q["text"] for q in queued if q.get("mode") == "steer"),
            _follow_ups=deque(q["text"] for q in queued if q.get("mode") != "steer"),
            **kwargs,
        )

    def close(self) -> None:
        if self._workspace is not None:
            self._workspace.close()
            self._workspace = None
