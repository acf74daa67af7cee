"""History points and their journal, kept in the database itself.

Every committed turn (and every undo, restore and import) is a *point*: the request,
when, the tables and counts, and the journal of the rows it changed (each row's values
before and after). Both live in py-agent's own tables, written in the same transaction
as the data, so a reload, an export or a copy of the file carries them:

``py_agent_history``       one row per point
``py_agent_history_rows``  the journal: per point, per commit and table, one chunk of exact
                           JSON (``changes.encode_journal``: flat value lists; blobs base64)

The tables are created at the first commit that changes something, so a session that
only reads never alters the database. The authorizer keeps model code away from them.
A point whose journal would be too large (``journal_limit`` rows) is kept without it
and marked not undoable.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .changes import (
    OPERATIONS,
    ChangeSet,
    Counts,
    Row,
    RowChange,
    TableShape,
    decode_journal,
    dumps,
    encode_journal,
    loads,
    same_row,
    too_large_note,
)
from .guard import Guard

HISTORY = "py_agent_history"
ROWS = "py_agent_history_rows"
KINDS = ("turn", "undo", "import", "restore")
JOURNAL_LIMIT = 100_000

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {HISTORY} (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    request TEXT NOT NULL DEFAULT '',
    at TEXT NOT NULL,
    tables TEXT NOT NULL DEFAULT '{{}}',
    undoable INTEGER NOT NULL DEFAULT 1,
    undone INTEGER NOT NULL DEFAULT 0,
    note TEXT NOT NULL DEFAULT '',
    reverts TEXT NOT NULL DEFAULT '[]',
    shapes TEXT NOT NULL DEFAULT '{{}}',
    rows INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS {ROWS} (
    point INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    tbl TEXT NOT NULL,
    rows TEXT NOT NULL,
    PRIMARY KEY (point, seq)
);
"""


@dataclass(frozen=True)
class HistoryPoint:
    """One point of the history, as ``state.history`` lists it and events carry it."""

    id: int
    kind: str  # turn | undo | import | restore
    request: str
    at: str  # ISO 8601, UTC
    tables: Counts
    undoable: bool
    undone: bool = False
    note: str = ""  # why it cannot be undone, when it cannot
    reverts: tuple[int, ...] = ()  # the points an undo/restore reverted

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "request": self.request,
            "at": self.at,
            "tables": self.tables,
            "undoable": self.undoable,
            "undone": self.undone,
            "note": self.note,
            "reverts": list(self.reverts),
        }


@dataclass
class _OpenPoint:
    """The point of the turn in progress, which later commits of the same turn extend."""

    id: int
    turn: Any
    # What each row of the point went from and to, once a second commit extends it
    # (until then ``first`` is the whole journal and ``tables`` its counts).
    net: dict[tuple[str, Row], list[Row | None]] | None = None
    first: list[RowChange] = field(default_factory=list)
    shapes: dict[str, TableShape] = field(default_factory=dict)
    rows: int = 0
    journaled: bool = True


class History:
    """Reads and writes the history tables through the agent's raw connection."""

    def __init__(self, raw: sqlite3.Connection, guard: Guard, *, journal_limit: int = JOURNAL_LIMIT) -> None:
        self.raw = raw
        self.guard = guard
        self.journal_limit = journal_limit
        self._exists: bool | None = None
        self._open: _OpenPoint | None = None

    # -- reading ---------------------------------------------------------------------------------
    def exists(self) -> bool:
        if not self._exists:
            with self.guard.as_internal():
                self._exists = self.raw.execute(
                    "SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = ?", (HISTORY,)
                ).fetchone() is not None
        return bool(self._exists)

    def points(self) -> list[HistoryPoint]:
        if not self.exists():
            return []
        with self.guard.as_internal():
            rows = self.raw.execute(
                f"SELECT id, kind, request, at, tables, undoable, undone, note, reverts FROM {HISTORY} ORDER BY id"
            ).fetchall()
        return [point_from_row(row) for row in rows]

    def point(self, point_id: int) -> HistoryPoint | None:
        if not self.exists():
            return None
        with self.guard.as_internal():
            row = self.raw.execute(
                f"SELECT id, kind, request, at, tables, undoable, undone, note, reverts FROM {HISTORY} WHERE id = ?", (point_id,)
            ).fetchone()
        return point_from_row(row) if row else None

    def shapes(self, point_ids: Iterable[int]) -> dict[str, TableShape]:
        shapes: dict[str, TableShape] = {}
        with self.guard.as_internal():
            for point_id in point_ids:
                (text,) = self.raw.execute(f"SELECT shapes FROM {HISTORY} WHERE id = ?", (point_id,)).fetchone()
                for name, shape in json.loads(text).items():
                    shapes[name] = TableShape(name, tuple(shape["columns"]), tuple(shape["key"]))
        return shapes

    def journal(self, point_ids: Sequence[int]) -> Iterator[RowChange]:
        """The journal of the points, in the order it was written (updates by changed columns)."""
        with self.guard.as_internal():
            for point_id in sorted(point_ids):
                cursor = self.raw.execute(f"SELECT tbl, rows FROM {ROWS} WHERE point = ? ORDER BY seq", (point_id,))
                for table, chunk in cursor.fetchall():
                    yield from decode_journal(table, loads(chunk))

    # -- writing (inside the commit's transaction, as py-agent) ------------------------------------
    def record(self, changes: ChangeSet, *, kind: str, request: str, turn: Any = None, reverts: Sequence[int] = ()) -> HistoryPoint:
        """Add a point for ``changes`` (or extend the open point of the same ``turn``)."""
        with self.guard.as_internal():
            self._ensure()
            if kind == "turn" and turn is not None and self._open is not None and self._open.turn == turn:
                return self._extend(self._open, changes)
            note = "" if changes.undoable else (changes.note or "it cannot be undone")
            self.raw.execute(
                f"INSERT INTO {HISTORY} (kind, request, at, tables, undoable, note, reverts) VALUES (?, ?, ?, '{{}}', ?, ?, ?)",
                (kind, request, now_iso(), int(changes.undoable), note, json.dumps(list(reverts))),
            )
            point_id = self.raw.execute("SELECT last_insert_rowid()").fetchone()[0]
            opened = _OpenPoint(point_id, turn if kind == "turn" else None, journaled=changes.undoable)
            self._open = opened if kind == "turn" else None
            return self._extend(opened, changes)

    def _extend(self, point: _OpenPoint, changes: ChangeSet) -> HistoryPoint:
        journal = changes.journal if changes.undoable else None
        note = changes.note or "it cannot be undone"
        if journal is not None and point.rows + len(journal) > self.journal_limit:
            journal, note = None, too_large_note(point.rows + len(journal), self.journal_limit)
        if journal is None and point.journaled:
            # From now on this point cannot be undone: its journal is of no use.
            point.journaled = False
            point.net, point.first = None, []
            self.raw.execute(f"DELETE FROM {ROWS} WHERE point = ?", (point.id,))
            self.raw.execute(f"UPDATE {HISTORY} SET undoable = 0, note = ? WHERE id = ?", (note, point.id))
        if point.journaled and journal is not None:
            by_table: dict[str, list[RowChange]] = {}
            for c in journal:
                by_table.setdefault(c.table, []).append(c)
            chunks = {table: encode_journal(changes) for table, changes in by_table.items()}
            (seq,) = self.raw.execute(f"SELECT coalesce(max(seq), -1) + 1 FROM {ROWS} WHERE point = ?", (point.id,)).fetchone()
            self.raw.executemany(
                f"INSERT INTO {ROWS} (point, seq, tbl, rows) VALUES (?, ?, ?, ?)",
                ((point.id, seq + i, table, dumps(rows)) for i, (table, rows) in enumerate(chunks.items())),
            )
            if point.rows == 0:
                point.first, tables = journal, changes.tables
            else:
                if point.net is None:
                    point.net = {}
                    _fold(point.net, point.first)
                    point.first = []
                _fold(point.net, journal)
                tables = net_counts(point.net)
            point.rows += len(journal)
        else:
            tables = add_counts(self._tables(point.id), changes.tables)
        point.shapes.update({name: changes.shapes[name] for name in changes.tables if name in changes.shapes})
        shapes = {name: {"columns": list(s.columns), "key": list(s.key)} for name, s in point.shapes.items()}
        self.raw.execute(
            f"UPDATE {HISTORY} SET tables = ?, shapes = ?, rows = ? WHERE id = ?",
            (json.dumps(tables), json.dumps(shapes), point.rows, point.id),
        )
        found = self.point(point.id)
        assert found is not None
        return found

    def _tables(self, point_id: int) -> Counts:
        (text,) = self.raw.execute(f"SELECT tables FROM {HISTORY} WHERE id = ?", (point_id,)).fetchone()
        return json.loads(text)  # type: ignore[no-any-return]

    def set_undone(self, point_ids: Iterable[int], undone: bool) -> None:
        point_ids = list(point_ids)
        if not point_ids:
            return
        with self.guard.as_internal():
            self.raw.executemany(f"UPDATE {HISTORY} SET undone = ? WHERE id = ?", ((int(undone), i) for i in point_ids))

    def close_turn(self) -> None:
        """The turn ended: its next commit (if any) starts a new point."""
        self._open = None

    def forget_cache(self) -> None:
        """After a rollback: the tables may not exist after all, the open point may be gone."""
        self._exists = None
        if self._open is not None and self.point(self._open.id) is None:
            self._open = None

    def _ensure(self) -> None:
        if not self._exists:
            # One statement at a time: executescript() would COMMIT the open transaction.
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self.raw.execute(statement)
            self._exists = True


def _fold(net: dict[tuple[str, Row], list[Row | None]], journal: Sequence[RowChange]) -> None:
    for change in journal:
        entry = net.get((change.table, change.key))
        if entry is None:
            net[(change.table, change.key)] = [change.before, change.after]
        else:
            entry[1] = change.after


def net_counts(net: Mapping[tuple[str, Row], list[Row | None]]) -> Counts:
    """Rows inserted, updated and deleted per table, from net changes {(table, key): [before, after]}."""
    out: dict[str, dict[str, int]] = {}
    for (table, _), (before, after) in net.items():
        if before is None and after is None:
            continue
        if before is not None and after is not None and same_row(before, after):
            continue
        op = "inserted" if before is None else "deleted" if after is None else "updated"
        out.setdefault(table, {o: 0 for o in OPERATIONS})[op] += 1
    return dict(sorted(out.items()))


def add_counts(a: Counts, b: Counts) -> Counts:
    """The sum of two per-table counts."""
    out = {table: dict(counts) for table, counts in a.items()}
    for table, counts in b.items():
        target = out.setdefault(table, {o: 0 for o in OPERATIONS})
        for op, n in counts.items():
            target[op] = target.get(op, 0) + n
    return dict(sorted(out.items()))


def point_from_row(row: Sequence[Any]) -> HistoryPoint:
    """A history point from its row (the columns both history stores select, in order)."""
    return HistoryPoint(
        id=row[0],
        kind=row[1],
        request=row[2],
        at=row[3],
        tables=json.loads(row[4]),
        undoable=bool(row[5]),
        undone=bool(row[6]),
        note=row[7],
        reverts=tuple(json.loads(row[8])),
    )


def now_iso() -> str:
    """The time a point is recorded at (UTC, seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")
