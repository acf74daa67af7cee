"""Change capture: every row a step inserts, updates or deletes, as the engine reports it.

:class:`Capture` is the seam: one implementation per kind of database. On SQLite,
:class:`SqliteCapture` puts TEMP triggers (AFTER INSERT/UPDATE/DELETE) on every table
of the database. TEMP objects live in the agent's connection only: the database file
is never altered, and other connections pay nothing. Each trigger copies the old and
new row into one TEMP table, so whatever wrote the row is seen: ORM, Core, ``text()``
however spelled, REPLACE's implicit deletes (``recursive_triggers`` is on), upserts,
foreign-key actions and the app's own triggers.

Two independent checks back the triggers up:

- ``total_changes``: every row change SQLite makes counts there, and each captured change
  counts twice (the change and its copy). A Python counter (``py_agent_tick()``, called
  by the triggers and not rolled back by savepoints) says how many copies were made, so
  changes that no trigger saw (virtual tables, a table created in the step) show up as
  ``untracked``.
- the authorizer names every table a statement writes; a table without triggers is
  reported by name (see ``Guard.untracked``).

Values are copied as they are stored (no JSON in SQL), so an undo restores exact types
and blobs. Virtual tables and their shadow tables get no triggers; writes to them count
as untracked changes (a step with such changes cannot be undone).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Protocol

from .changes import (
    ChangeSet,
    Row,
    TableShape,
    build_changeset,
    net_changes,
    too_large_note,
)
from .guard import OWN_PREFIX, Guard

CAPTURE_TABLE = "py_agent_capture"
TICK = "py_agent_tick"
# Beyond this many raw row events a step is summarised in SQL (counts and the first rows)
# rather than folded row by row in Python, and it cannot be undone.
EVENT_LIMIT = 250_000


class Capture(Protocol):
    """What the step machinery needs from a database's change capture."""

    def prepare(self) -> None:
        """Before a step, outside any transaction: cover the schema as it is now."""

    def start(self) -> None:
        """At the start of a step, inside its transaction."""

    def refresh(self) -> None:
        """After the step changed the schema (only when the policy allows that)."""

    def refresh_later(self) -> None:
        """Before the next step, cover the schema again (after a rolled-back schema change)."""

    def wrote(self) -> bool:
        """Whether anything was written since ``start`` (cheap)."""

    def collect(self, *, schema: list[str], untracked: list[str], preview_limit: int, journal_limit: int) -> ChangeSet:
        """The step's changes since ``start``."""

    def fingerprint(self) -> tuple[int, ...]:
        """Numbers that move with any write; compared right before COMMIT."""

    def finish(self) -> None:
        """After the step's transaction ended: forget what was recorded."""


def quote(name: str) -> str:
    """An SQL identifier in double quotes."""
    return '"' + name.replace('"', '""') + '"'


class SqliteCapture:
    """Row capture with TEMP triggers on one sqlite3 connection (see the module docstring)."""

    def __init__(self, raw: sqlite3.Connection, guard: Guard, *, event_limit: int = EVENT_LIMIT) -> None:
        self.raw = raw
        self.guard = guard
        self.event_limit = event_limit
        self.shapes: dict[str, TableShape] = {}  # table name -> its shape now
        # Every shape ever given triggers gets a number for good, so rows captured before a
        # schema change in the same step still decode with the columns they were copied with.
        self._numbers: dict[tuple[str, tuple[str, ...], tuple[str, ...]], int] = {}
        self._by_number: list[TableShape] = []
        self._version: int | None = None  # schema_version the triggers were made for
        self._ticks = 0
        self._start_tc = 0
        self._start_ticks = 0
        self._start_seq = 0
        self._clean_tc = -1  # total_changes when the capture table was last emptied
        raw.create_function(TICK, 0, self._tick)

    def _tick(self) -> int:
        self._ticks += 1
        return self._ticks

    # -- installing the triggers ---------------------------------------------------------------
    def prepare(self) -> None:
        with self.guard.as_internal():
            version = self.raw.execute("PRAGMA main.schema_version").fetchone()[0]
            if version != self._version:
                self._install()
                self._version = version

    def refresh(self) -> None:
        with self.guard.as_internal():
            self._install()
        self.refresh_later()

    def refresh_later(self) -> None:
        """Reinstall before the next step (a rolled-back step may have taken triggers with it)."""
        self._version = None

    def _install(self) -> None:
        raw = self.raw
        for (name,) in raw.execute(
            "SELECT name FROM temp.sqlite_master WHERE type = 'trigger' AND name LIKE 'py\\_agent\\_%' ESCAPE '\\'"
        ).fetchall():
            raw.execute(f"DROP TRIGGER IF EXISTS temp.{quote(name)}")
        self.shapes = {}
        for shape in self._read_shapes():
            number = self._numbers.get(shape.signature)
            if number is None:
                number = self._numbers[shape.signature] = len(self._by_number)
                self._by_number.append(shape)
            self.shapes[shape.name] = self._by_number[number]
        width = 2 * max((len(s.columns) for s in self._by_number), default=1)
        columns = ", ".join(f"c{i}" for i in range(width))
        # The table keeps its rows (a step may be open): widen it only when it is too narrow.
        existing = [r[1] for r in raw.execute(f"PRAGMA temp.table_info({CAPTURE_TABLE})")]
        if not existing:
            raw.execute(f"CREATE TEMP TABLE {CAPTURE_TABLE} (seq INTEGER PRIMARY KEY, tick INTEGER, t INTEGER, op TEXT, {columns})")
        else:
            for i in range(len(existing) - 4, width):
                raw.execute(f"ALTER TABLE temp.{CAPTURE_TABLE} ADD COLUMN c{i}")
        for shape in self.shapes.values():
            self._triggers(self._numbers[shape.signature], shape)
        self.guard.tracked = frozenset(self.shapes) | self._views()

    def _read_shapes(self) -> list[TableShape]:
        tables = self.raw.execute("SELECT name, sql FROM main.sqlite_master WHERE type = 'table'").fetchall()
        virtual = [name for name, sql in tables if (sql or "").lstrip().upper().startswith("CREATE VIRTUAL")]
        shapes = []
        for name, _ in tables:
            if name.startswith(("sqlite_", OWN_PREFIX)) or name in virtual or any(name.startswith(v + "_") for v in virtual):
                continue
            info = self.raw.execute(f"PRAGMA main.table_xinfo({quote(name)})").fetchall()
            stored = [row[1] for row in info if row[6] == 0]  # hidden: 0 normal, 2/3 generated
            key = tuple(row[1] for row in sorted((r for r in info if r[5] > 0), key=lambda r: r[5]))
            if not key:
                stored, key = ["rowid", *stored], ("rowid",)
            shapes.append(TableShape(name, tuple(stored), key))
        return shapes

    def _views(self) -> frozenset[str]:
        return frozenset(r[0] for r in self.raw.execute("SELECT name FROM main.sqlite_master WHERE type = 'view'"))

    def _triggers(self, number: int, shape: TableShape) -> None:
        n = len(shape.columns)
        def refs(prefix: str) -> str:
            return ", ".join(f"{prefix}.rowid" if c == "rowid" else f"{prefix}.{quote(c)}" for c in shape.columns)
        old_cols = ", ".join(f"c{i}" for i in range(n))
        new_cols = ", ".join(f"c{n + i}" for i in range(n))
        table = f"main.{quote(shape.name)}"
        head = f"INSERT INTO {CAPTURE_TABLE} (tick, t, op"
        bodies = {
            "insert": f"{head}, {new_cols}) VALUES ({TICK}(), {number}, 'I', {refs('NEW')})",
            "update": f"{head}, {old_cols}, {new_cols}) VALUES ({TICK}(), {number}, 'U', {refs('OLD')}, {refs('NEW')})",
            "delete": f"{head}, {old_cols}) VALUES ({TICK}(), {number}, 'D', {refs('OLD')})",
        }
        for event, body in bodies.items():
            name = quote(f"{OWN_PREFIX}{number}_{event}")
            self.raw.execute(f"CREATE TEMP TRIGGER {name} AFTER {event.upper()} ON {table} BEGIN {body}; END")

    # -- a step --------------------------------------------------------------------------------
    def start(self) -> None:
        tc = self.raw.total_changes
        if tc != self._clean_tc:  # written since the table was emptied (by the host, say)
            with self.guard.as_internal():
                self._start_seq = self.raw.execute(f"SELECT coalesce(max(seq), 0) FROM temp.{CAPTURE_TABLE}").fetchone()[0]
        else:
            self._start_seq = 0
        self._start_tc, self._start_ticks = self.raw.total_changes, self._ticks

    def wrote(self) -> bool:
        return self.raw.total_changes != self._start_tc

    def exactly(self, events: int) -> bool:
        """Whether the step so far made exactly ``events`` row changes, all captured."""
        ticks = self._ticks - self._start_ticks
        return ticks == events and self.raw.total_changes - self._start_tc == 2 * events

    def fingerprint(self) -> tuple[int, ...]:
        """total_changes, copies made, copies still held (a savepoint rolled back shrinks it)."""
        held = 0
        if self.raw.total_changes != self._start_tc:
            with self.guard.as_internal():
                held = self.raw.execute(f"SELECT count(*) FROM temp.{CAPTURE_TABLE} WHERE seq > ?", (self._start_seq,)).fetchone()[0]
        return (self.raw.total_changes, self._ticks, held)

    def collect(self, *, schema: list[str], untracked: list[str], preview_limit: int, journal_limit: int) -> ChangeSet:
        changed = self.raw.total_changes - self._start_tc
        if not changed:
            return ChangeSet(schema=list(schema))
        ticks = self._ticks - self._start_ticks
        # Each captured change counts twice in total_changes (the change and its copy).
        unseen = changed - 2 * ticks
        with self.guard.as_internal():
            (events,) = self.raw.execute(f"SELECT count(*) FROM temp.{CAPTURE_TABLE} WHERE seq > ?", (self._start_seq,)).fetchone()
            if events > self.event_limit:
                result = self._summarise(events, preview_limit)
            else:
                result = build_changeset(net_changes(self._events()), self.shapes, preview_limit=preview_limit, journal_limit=journal_limit)
        result.schema = list(schema)
        names = list(untracked)
        if unseen > 0 and not names:
            names = ["a table py-agent cannot track"]
        result.untracked = names
        if result.untracked and not result.note:
            result.note = "it changed tables py-agent cannot track row by row"
        if result.schema and not result.note:
            result.note = "it changed the schema"
        return result

    def _events(self) -> Iterator[tuple[TableShape, str, Row | None, Row | None]]:
        shapes = self._by_number
        widths = [len(shape.columns) for shape in shapes]
        columns = ", ".join(f"c{i}" for i in range(2 * max(widths, default=1)))
        cursor = self.raw.execute(f"SELECT t, op, {columns} FROM temp.{CAPTURE_TABLE} WHERE seq > ? ORDER BY seq", (self._start_seq,))
        for row in cursor:
            number, op = row[0], row[1]
            n = widths[number]
            old = row[2 : 2 + n] if op != "I" else None
            new = row[2 + n : 2 + 2 * n] if op != "D" else None
            yield shapes[number], op, old, new

    def _summarise(self, events: int, preview_limit: int) -> ChangeSet:
        """A step too big to fold row by row: counts of row events and the first rows of each."""
        from .changes import RowChange, preview_row

        ops = {"I": "inserted", "U": "updated", "D": "deleted"}
        tables: dict[str, dict[str, int]] = {}
        rows: dict[str, dict[str, object]] = {}
        grouped = self.raw.execute(
            f"SELECT t, op, count(*) FROM temp.{CAPTURE_TABLE} WHERE seq > ? GROUP BY t, op", (self._start_seq,)
        ).fetchall()
        for number, op, count in grouped:
            shape = self._by_number[number]
            tables.setdefault(shape.name, {o: 0 for o in ops.values()})[ops[op]] += count
            n = len(shape.columns)
            columns = ", ".join(f"c{i}" for i in range(2 * n))
            preview = rows.setdefault(shape.name, {"key": list(shape.key), "inserted": [], "updated": [], "deleted": []})
            first = self.raw.execute(
                f"SELECT {columns} FROM temp.{CAPTURE_TABLE} WHERE seq > ? AND t = ? AND op = ? ORDER BY seq LIMIT ?",
                (self._start_seq, number, op, preview_limit),
            )
            for values in first:
                old = values[:n] if op != "I" else None
                new = values[n:] if op != "D" else None
                key_row = new if new is not None else old
                key = tuple(key_row[i] for i in shape.key_positions)  # type: ignore[index]
                preview[ops[op]].append(preview_row(RowChange(shape.name, key, old, new), shape))  # type: ignore[union-attr]
        return ChangeSet(tables=dict(sorted(tables.items())), rows=rows, journal=None, shapes=dict(self.shapes), note=too_large_note(events, self.event_limit))

    def finish(self) -> None:
        if self.raw.total_changes != self._clean_tc:
            with self.guard.as_internal():
                self.raw.execute(f"DELETE FROM temp.{CAPTURE_TABLE}")
            self._clean_tc = self.raw.total_changes
