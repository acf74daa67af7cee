"""Conversation state that persists across turns: messages, database, namespace, usage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from .database import ChangeTable, Database, memory_engine
from .events import Event
from .messages import Message, message_from_dict
from .providers.base import Usage

Subscriber = Callable[[Event], None]


@dataclass(frozen=True)
class PendingStep:
    """A step that ran in an open transaction and waits for a decision."""

    step: int
    code: str
    tables: ChangeTable
    output: str


@dataclass
class State:
    """Everything one conversation needs between calls to ``run``/``arun``.

    Pass ``engine`` (any SQLAlchemy engine), or ``session`` (its bind is used),
    or neither for an in-memory SQLite database. Append a :class:`UserMessage`
    to ``messages`` and call ``run`` again to continue the conversation with
    the same namespace and database.
    """

    engine: Engine | Connection | None = None
    session: Session | None = None
    messages: list[Message] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    step: int = 0
    pending: PendingStep | None = None
    last_reply: Any = field(default=None, repr=False)  # the last parsed reply (an instance of the extensions)
    namespace: dict[str, Any] = field(default_factory=dict, repr=False)
    _db: Database | None = field(default=None, repr=False)
    _decision: bool | None = field(default=None, repr=False)
    _aborted: bool = field(default=False, repr=False)
    _subscribers: list[Subscriber] = field(default_factory=list, repr=False)

    @property
    def db(self) -> Database:
        if self._db is None:
            bind: Engine | Connection
            if self.engine is not None:
                bind = self.engine
            elif self.session is not None:
                bind = self.session.get_bind()
            else:
                bind = self.engine = memory_engine()
            self._db = Database(bind)
        return self._db

    # -- control -------------------------------------------------------------------------
    def resume(self, approved: bool) -> None:
        """Decide the pending step; the next ``run``/``arun`` commits or rolls it back."""
        if self.pending is None:
            raise RuntimeError("there is no step waiting for approval")
        self._decision = bool(approved)

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

    # -- transcripts -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The conversation as JSON-able data (the database is saved separately)."""
        return {
            "version": 1,
            "messages": [m.to_dict() for m in self.messages],
            "usage": {"input_tokens": self.usage.input_tokens, "output_tokens": self.usage.output_tokens},
            "step": self.step,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], **kwargs: Any) -> "State":
        """Resume a saved conversation; ``kwargs`` are State's (engine, session)."""
        usage = data.get("usage") or {}
        return cls(
            messages=[message_from_dict(m) for m in data.get("messages", [])],
            usage=Usage(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))),
            step=int(data.get("step", 0)),
            **kwargs,
        )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
