"""Conversations kept in the database, so any server process can resume any of them.

One row per conversation: its id (a random token: whoever holds it may open it unless
an ``owner`` is set), the owner (the signed-in user, when the server has one), a title,
times, a ``version`` and the conversation itself as JSON (``State.to_dict()``). The
database with its history is saved by its own transactions; the conversation row is
written after each turn.

``save`` is a compare-and-set on ``version``: two processes that resumed the same
conversation cannot silently overwrite each other's turns (the second gets
:class:`ConversationConflict` and reloads).

On PostgreSQL the table is ``py_agent.conversations``, created by
``postgres_setup.setup`` (a least-privilege role cannot create tables); give it to the
server's role only (``store_role``), not to the role model code runs as. Elsewhere
(SQLite) it is ``py_agent_conversations``, created on first use. The store uses its own
short transactions on its own connections, never the agent's step connection.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, Text, func, insert, select, update

from ..errors import PyAgentError

POSTGRES_DDL = (
    "CREATE SCHEMA IF NOT EXISTS py_agent",
    """CREATE TABLE IF NOT EXISTS py_agent.conversations (
        id text PRIMARY KEY,
        owner text,
        title text NOT NULL DEFAULT '',
        created_at text NOT NULL,
        updated_at text NOT NULL,
        version integer NOT NULL DEFAULT 0,
        data text NOT NULL)""",
)
POSTGRES_GRANTS = (
    "GRANT USAGE ON SCHEMA py_agent TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON py_agent.conversations TO {role}",
)


class ConversationConflict(PyAgentError):
    """Someone else saved the conversation since it was loaded here."""

    kind = "conversation"


class ConversationNotFound(PyAgentError):
    kind = "conversation"


@dataclass(frozen=True)
class StoredConversation:
    id: str
    owner: str | None
    title: str
    created_at: str
    updated_at: str
    version: int
    data: dict[str, Any]


def _table(dialect: str) -> Table:
    metadata = MetaData()
    columns = (
        Column("id", String, primary_key=True),
        Column("owner", String),
        Column("title", Text, nullable=False, default=""),
        Column("created_at", String, nullable=False),
        Column("updated_at", String, nullable=False),
        Column("version", Integer, nullable=False, default=0),
        Column("data", Text, nullable=False),
    )
    if dialect == "postgresql":
        return Table("conversations", metadata, *columns, schema="py_agent")
    return Table("py_agent_conversations", metadata, *columns)


def new_id() -> str:
    """An id nobody can guess (it is the key to the conversation when there is no owner)."""
    return secrets.token_urlsafe(18)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class ConversationStore:
    """Conversations in a table of ``engine``'s database (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.table = _table(engine.dialect.name)
        self._ready = engine.dialect.name == "postgresql"  # made by postgres_setup

    def _ensure(self) -> None:
        if not self._ready:
            self.table.metadata.create_all(self.engine)
            self._ready = True

    def create(self, data: dict[str, Any], *, owner: str | None = None, title: str = "", conversation_id: str | None = None) -> StoredConversation:
        """Store a new conversation (with ``conversation_id``, or a new one) at version 1."""
        self._ensure()
        now = _now()
        row = {"id": conversation_id or new_id(), "owner": owner, "title": title, "created_at": now, "updated_at": now, "version": 1, "data": json.dumps(data)}
        with self.engine.begin() as conn:
            conn.execute(insert(self.table).values(**row))
        return StoredConversation(row["id"], owner, title, now, now, 1, data)

    def load(self, conversation_id: str, *, owner: str | None = None) -> StoredConversation:
        """The conversation ``conversation_id``; raises ConversationNotFound (also for another owner's)."""
        self._ensure()
        with self.engine.connect() as conn:
            row = conn.execute(select(self.table).where(self.table.c.id == conversation_id)).mappings().first()
        if row is None or (row["owner"] is not None and row["owner"] != owner):
            raise ConversationNotFound(
                f"there is no conversation {conversation_id!r}" + (" of yours" if owner else ""),
                hint="start a new conversation",
            )
        return StoredConversation(row["id"], row["owner"], row["title"], row["created_at"], row["updated_at"], row["version"], json.loads(row["data"]))

    def save(self, conversation_id: str, data: dict[str, Any], *, version: int, title: str | None = None) -> int:
        """Write the conversation if it is still at ``version``; returns the new version."""
        self._ensure()
        values: dict[str, Any] = {"data": json.dumps(data), "updated_at": _now(), "version": version + 1}
        if title is not None:
            values["title"] = title
        t = self.table
        with self.engine.begin() as conn:
            result = conn.execute(update(t).where(t.c.id == conversation_id, t.c.version == version).values(**values))
        if result.rowcount != 1:
            raise ConversationConflict(
                f"the conversation {conversation_id!r} was changed elsewhere since it was opened here",
                hint="reload the conversation to see the latest turns",
            )
        return version + 1

    def list(self, *, owner: str | None = None, limit: int = 50) -> list[StoredConversation]:
        """The newest conversations (of ``owner``, or those without one), without their data."""
        self._ensure()
        t = self.table
        query = select(t.c.id, t.c.owner, t.c.title, t.c.created_at, t.c.updated_at, t.c.version)
        query = query.where(t.c.owner == owner if owner is not None else t.c.owner.is_(None))
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.c.updated_at.desc()).limit(limit)).all()
        return [StoredConversation(r.id, r.owner, r.title, r.created_at, r.updated_at, r.version, {}) for r in rows]

    def count(self) -> int:
        self._ensure()
        with self.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(self.table)) or 0)
