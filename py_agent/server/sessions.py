"""One server, many people: each conversation with its own state, workspace and stored row.

A :class:`Server` holds what does not change while it runs (the app, the database URL of
the app's role, the conversation store, the agent's options); it shares nothing mutable
between conversations. :meth:`Server.open` gives a :class:`Conversation`: a new one, or
a stored one resumed by id in whatever process asks (``panel serve --num-procs N``, or
several servers behind a load balancer). A conversation's code runs in its own worker
process (``separate_process=True``, the default for servers) or in this process; either
way its database connection is its own and, on PostgreSQL, its history points are its
own, so undo never reaches another person's turn.

A step waiting for approval cannot move between processes (its transaction lives in
one connection): a conversation resumed elsewhere reports it as discarded, like a
reloaded browser tab.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from ..app import App, engine_for, load_app
from ..loop import Agent
from ..messages import UserMessage
from ..state import State
from .store import ConversationStore, StoredConversation, new_id


@dataclass
class Server:
    """What every conversation of one app on one database shares (read-only once made)."""

    app: App
    url: str  # the app role's URL: model code connects with it
    store: ConversationStore | None = None
    separate_process: bool = True
    agent_options: dict[str, Any] = field(default_factory=dict)
    worker_options: dict[str, Any] = field(default_factory=dict)
    _engine: Engine | None = field(default=None, repr=False)

    @classmethod
    def create(cls, app: str | os.PathLike[str] | App, url: str, *, store_url: str | None = None, **options: Any) -> "Server":
        """A server for ``app`` on ``url``; conversations are stored in ``store_url`` (default: ``url``'s
        database when it is PostgreSQL; otherwise none are stored unless a URL is given)."""
        loaded = app if isinstance(app, App) else load_app(app)
        if store_url is None and url.startswith("postgresql"):
            store_url = url
        store = ConversationStore(engine_for(store_url)) if store_url else None
        return cls(loaded, url, store, **options)

    @property
    def engine(self) -> Engine:
        """An engine on the app's database for this process (table browsers, in-process workspaces)."""
        if self._engine is None:
            self._engine = engine_for(self.url)
        return self._engine

    @property
    def app_source(self) -> str:
        """How a worker process finds the app module."""
        return str(self.app.source) if self.app.source is not None else self.app.name

    def agent(self, model: Any, **overrides: Any) -> Agent:
        return self.app.agent(model=model, **{**self.agent_options, **overrides})

    def open(self, conversation_id: str | None = None, *, owner: str | None = None) -> "Conversation":
        """A new conversation, or the stored one ``conversation_id`` (ConversationNotFound if not)."""
        stored = None
        if conversation_id and self.store is not None:
            stored = self.store.load(conversation_id, owner=owner)
        return Conversation(self, stored, owner=owner)


class Conversation:
    """One person's conversation: its :class:`State`, its workspace and its row in the store."""

    def __init__(self, server: Server, stored: StoredConversation | None = None, *, owner: str | None = None) -> None:
        self.server = server
        self.owner = owner
        if stored is not None:
            self.state = State.from_dict(stored.data)
            self.id, self.version, self.title = stored.id, stored.version, stored.title
        else:
            # Stored at its first save: a page opened and left does not leave a row behind.
            self.state = State()
            self.id, self.version, self.title = new_id(), 0, ""
        self.workspace = self._workspace()
        self.state._workspace = self.workspace  # (a public State.attach is requested from trust)
        self.state.session = self.workspace.session

    def _workspace(self) -> Any:
        server = self.server
        if server.separate_process:
            from ..sandbox.process import ProcessWorkspace

            return ProcessWorkspace(server.app_source, server.url, conversation=self.id, **server.worker_options)
        engine = server.engine
        if engine.dialect.name == "postgresql":
            from ..database.postgres import local_workspace

            return local_workspace(engine, conversation=self.id)
        from ..workspace import LocalWorkspace

        return LocalWorkspace(engine)

    def save(self) -> None:
        """Store the conversation (after a turn); ConversationConflict if another process did since."""
        store = self.server.store
        if store is None:
            return
        if not self.title:
            first = next((m for m in self.state.messages if isinstance(m, UserMessage)), None)
            self.title = first.content[:80] if first is not None else ""
        if self.version == 0:
            self.version = store.create(self.state.to_dict(), owner=self.owner, title=self.title, conversation_id=self.id).version
        else:
            self.version = store.save(self.id, self.state.to_dict(), version=self.version, title=self.title or None)

    def close(self) -> None:
        self.state.close()
