"""The terminal chat's conversation log: one SQLite file of conversations and their events.

Each conversation keeps what is needed to continue it (the app, the database URL without
its password, the model, ``State.to_dict()``) and every event of its turns except the
streaming deltas. ``py-agent chat -c`` continues the last conversation, ``--cid ID`` a
given one (a unique prefix of the id is enough).

The file lives in :func:`data_dir` (``$PY_AGENT_HOME``, else ``$XDG_DATA_HOME/py-agent``,
else ``~/.local/share/py-agent``) unless ``--log FILE`` names another.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

# Deltas repeat what the whole reply says; the system prompt is the same every turn.
NOT_LOGGED = frozenset({"message_delta", "code_delta", "output_delta", "system", "signal"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    app TEXT NOT NULL,
    db_url TEXT NOT NULL,
    model TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_updated ON conversations (updated_at);
CREATE TABLE IF NOT EXISTS events (
    conversation TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (conversation, seq)
);
"""


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where py-agent keeps its files on this machine."""
    env = os.environ if env is None else env
    if env.get("PY_AGENT_HOME"):
        return Path(env["PY_AGENT_HOME"]).expanduser()
    base = Path(env["XDG_DATA_HOME"]).expanduser() if env.get("XDG_DATA_HOME") else Path.home() / ".local" / "share"
    return base / "py-agent"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Conversation:
    """One logged conversation."""

    id: str
    app: str
    db_url: str
    model: str
    title: str
    created_at: str
    updated_at: str
    state: dict[str, Any]


class ConversationLog:
    """The log file. Opening it creates it (and its folder) when missing."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "ConversationLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing --------------------------------------------------------------------------------
    def start(self, *, app: str, db_url: str, model: str, state: Mapping[str, Any] | None = None) -> Conversation:
        now = _now()
        conversation = Conversation(secrets.token_hex(4), app, db_url, model, "", now, now, dict(state or {}))
        with self._db:
            self._db.execute(
                "INSERT INTO conversations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation.id, app, db_url, model, "", now, now, json.dumps(conversation.state)),
            )
        return conversation

    def save(self, conversation_id: str, *, state: Mapping[str, Any], model: str, title: str = "") -> None:
        """Store the conversation's state after a turn (and its title: the first request)."""
        with self._db:
            self._db.execute(
                "UPDATE conversations SET state = ?, model = ?, updated_at = ?, "
                "title = CASE WHEN title = '' THEN ? ELSE title END WHERE id = ?",
                (json.dumps(dict(state), ensure_ascii=False), model, _now(), title, conversation_id),
            )

    def add_events(self, conversation_id: str, events: Iterable[Mapping[str, Any]]) -> int:
        """Append events (their ``to_dict()`` form), leaving out deltas; returns how many were kept."""
        kept = [dict(e) for e in events if e.get("type") not in NOT_LOGGED]
        if not kept:
            return 0
        with self._db:
            start = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM events WHERE conversation = ?", (conversation_id,)).fetchone()[0]
            now = _now()
            self._db.executemany(
                "INSERT INTO events VALUES (?, ?, ?, ?)",
                [(conversation_id, start + i, now, json.dumps(e, ensure_ascii=False, default=str)) for i, e in enumerate(kept, 1)],
            )
        return len(kept)

    # -- reading --------------------------------------------------------------------------------
    def _conversation(self, row: sqlite3.Row) -> Conversation:
        return Conversation(row["id"], row["app"], row["db_url"], row["model"], row["title"], row["created_at"],
                            row["updated_at"], json.loads(row["state"]))

    def last(self, app: str | None = None) -> Conversation | None:
        """The most recently updated conversation (of ``app``, when given)."""
        query = "SELECT * FROM conversations" + (" WHERE app = ?" if app else "") + " ORDER BY updated_at DESC, rowid DESC LIMIT 1"
        row = self._db.execute(query, (app,) if app else ()).fetchone()
        return self._conversation(row) if row else None

    def get(self, conversation_id: str) -> Conversation:
        """The conversation whose id is, or starts with, ``conversation_id``; KeyError otherwise."""
        rows = self._db.execute("SELECT * FROM conversations WHERE id LIKE ? ORDER BY updated_at DESC",
                                (conversation_id.replace("%", "").replace("_", "") + "%",)).fetchall()
        exact = [r for r in rows if r["id"] == conversation_id]
        if exact:
            return self._conversation(exact[0])
        if len(rows) == 1:
            return self._conversation(rows[0])
        if not rows:
            raise KeyError(f"there is no conversation {conversation_id!r} in {self.path}")
        raise KeyError(f"{conversation_id!r} matches {len(rows)} conversations ({', '.join(r['id'] for r in rows[:5])}): give more of the id")

    def recent(self, app: str | None = None, limit: int = 20) -> list[Conversation]:
        query = "SELECT * FROM conversations" + (" WHERE app = ?" if app else "") + " ORDER BY updated_at DESC, rowid DESC LIMIT ?"
        return [self._conversation(r) for r in self._db.execute(query, ((app, limit) if app else (limit,)))]

    def events(self, conversation_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT event FROM events WHERE conversation = ? ORDER BY seq", (conversation_id,))
        return [json.loads(r["event"]) for r in rows]
