"""Change capture on PostgreSQL: audit triggers writing to a temporary table of the session.

``postgres_setup.install`` puts one row trigger, ``py_agent_capture`` (AFTER INSERT OR
UPDATE OR DELETE, plus a statement trigger AFTER TRUNCATE), on every table of the app's
schemas, all calling ``py_agent.capture()``. The function does nothing unless the
session has a temporary table ``pg_temp.py_agent_capture``; py-agent's connection
creates one (``ON COMMIT DELETE ROWS``), so only py-agent's own sessions pay for it and
the app's other traffic is untouched. For each row event the trigger stores the table's
oid, the operation and the old and new row as ``to_jsonb``.

Why this is exact: PostgreSQL fires row triggers for every row a statement changes,
however it was written (ORM, Core, ``text()`` with CTEs, upserts, MERGE), and also for
rows changed by foreign-key actions (cascades) and by the app's own triggers. And a
second count backs it up: ``pg_stat_xact_user_tables`` holds, for the current
transaction, how many rows each table had inserted, updated or deleted (rolled-back
savepoints included), and the capture table's own insert count says how many events the
trigger recorded (rolled-back ones included). Any difference means a write no trigger
saw (a table without the trigger): it is reported as ``untracked`` (it still needs
approval, and cannot be undone). Deleting or changing rows of the capture table shows
up there too.

Row values come back as JSON from the server and are decoded exactly: integers as
``int``; other numbers as ``float`` when the float is that very number, else as
``Decimal``; everything else as PostgreSQL writes it in JSON (timestamps as ISO text,
``bytea`` as ``\\x..`` hex). An undo writes rows back through ``jsonb_populate_record``,
so each value goes through its column type's own input function.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from .changes import ChangeSet, RowChange, TableShape, build_changeset, net_changes, preview_row, too_large_note
from .postgres_guard import OWN_SCHEMA, PostgresGuard

CAPTURE_TABLE = "py_agent_capture"  # in pg_temp
TRIGGER = "py_agent_capture"
TRUNCATE_TRIGGER = "py_agent_capture_truncate"
EVENT_LIMIT = 250_000

_CREATE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {CAPTURE_TABLE} "
    "(seq bigserial PRIMARY KEY, tbl oid NOT NULL, op \"char\" NOT NULL, old jsonb, new jsonb) ON COMMIT DELETE ROWS"
)

# Every table of the database that is not the system's or py-agent's: its shape, whether it
# carries the capture trigger, and whether this role may write it.
_SHAPES = f"""
SELECT c.oid, n.nspname, c.relname, n.nspname = current_schema() AS local,
       coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''), '{{}}') AS columns,
       coalesce((SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum))
                 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                 WHERE i.indrelid = c.oid AND i.indisprimary), '{{}}') AS key,
       EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = '{TRIGGER}') AS tracked,
       has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE') AS writable
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', '{OWN_SCHEMA}')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
"""

# Row events of this transaction: on the app's tables, and recorded by the trigger.
_COUNTERS = f"""
SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del) FILTER (WHERE relid <> %(cap)s), 0)::bigint,
       coalesce(sum(n_tup_ins) FILTER (WHERE relid = %(cap)s), 0)::bigint,
       coalesce(sum(n_tup_upd + n_tup_del) FILTER (WHERE relid = %(cap)s), 0)::bigint,
       (SELECT count(*) FROM pg_temp.{CAPTURE_TABLE})
FROM pg_stat_xact_user_tables WHERE schemaname <> '{OWN_SCHEMA}'
"""


# -- exact values -----------------------------------------------------------------------------

class Number(float):
    """A JSON number that is exactly a float, keeping how PostgreSQL wrote it (``2.50``).

    It compares as the float (PostgreSQL also holds ``2.5 = 2.50``) and shows as one in a
    preview; :func:`dumps` writes the original text, so a ``numeric``'s scale comes back too.
    """

    __slots__ = ("text",)

    def __new__(cls, text: str) -> "Number":
        number = super().__new__(cls, text)
        number.text = text
        return number


def _number(text: str) -> float | Decimal:
    """A JSON number with a fraction or exponent: a :class:`Number` if a float is that number, else a Decimal."""
    value = float(text)
    if math.isfinite(value) and Decimal(repr(value)) == Decimal(text):
        return Number(text)
    return Decimal(text)


def loads(text: str | None) -> Any:
    """Decode JSON written by PostgreSQL without losing a digit."""
    return None if text is None else json.loads(text, parse_float=_number)


_RAW_NUMBER = re.compile(r'"\\u0000n:([-+0-9.eE]+)\\u0000"')


def dumps(value: Any) -> str:
    """JSON of values decoded by :func:`loads`, each number written as PostgreSQL wrote it."""

    def tag(item: Any) -> Any:
        if isinstance(item, Number):
            return f"\x00n:{item.text}\x00"
        if isinstance(item, Decimal):
            return f"\x00n:{item}\x00" if item.is_finite() else str(item)
        if isinstance(item, dict):
            return {k: tag(v) for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [tag(v) for v in item]
        return item

    return _RAW_NUMBER.sub(r"\1", json.dumps(tag(value)))


def row_of(shape: TableShape, data: dict[str, Any] | None) -> tuple[Any, ...] | None:
    return None if data is None else tuple(data.get(c) for c in shape.columns)


def display_name(schema: str, table: str, local: bool) -> str:
    return table if local else f"{schema}.{table}"


class PostgresCapture:
    """The step's row events, read from the session's capture table (see the module docstring)."""

    def __init__(self, pg: Any, guard: PostgresGuard, *, event_limit: int = EVENT_LIMIT) -> None:
        self.pg = pg  # the psycopg connection
        self.guard = guard
        self.event_limit = event_limit
        self.shapes: dict[str, TableShape] = {}  # display name -> shape (tables with a primary key)
        self.by_oid: dict[int, TableShape | None] = {}  # captured tables; None: no primary key
        self.names: dict[int, str] = {}  # oid -> display name, every table
        self.missing: list[str] = []  # tables this role may write that carry no trigger
        self.oids: dict[str, int] = {}
        self._capture_oid: int | None = None
        self._stale = True
        self.last_counters: tuple[int, int, int, int] = (0, 0, 0, 0)

    # -- set-up, outside the step's transaction -------------------------------------------------
    def prepare(self) -> None:
        """Make sure the capture table exists and the table shapes are known."""
        if self._capture_oid is None or self._stale:
            with self.guard.as_internal():
                self.pg.execute(_CREATE)
                self._capture_oid = self.pg.execute(f"SELECT 'pg_temp.{CAPTURE_TABLE}'::regclass::oid").fetchone()[0]
                self._read_shapes()
                self.pg.commit()
            self._stale = False

    def _read_shapes(self) -> None:
        self.shapes, self.by_oid, self.names, self.missing, self.oids = {}, {}, {}, [], {}
        for oid, schema, table, local, columns, key, tracked, writable in self.pg.execute(_SHAPES).fetchall():
            name = display_name(schema, table, local)
            self.names[oid] = name
            self.oids[name] = oid
            if tracked:
                shape = TableShape(name, tuple(columns), tuple(key)) if key else None
                self.by_oid[oid] = shape
                if shape is not None:
                    self.shapes[name] = shape
            elif writable:
                self.missing.append(name)

    @property
    def installed(self) -> bool:
        return bool(self.by_oid)

    def start(self) -> None:
        pass  # the counters and the capture table are per transaction: nothing to remember

    def refresh(self) -> None:
        self._stale = True

    def refresh_later(self) -> None:
        self._stale = True

    def finish(self) -> None:
        pass  # ON COMMIT DELETE ROWS; a rollback takes the rows with it

    # -- inside the step ---------------------------------------------------------------------------
    def counters(self) -> tuple[int, int, int, int]:
        """(row events on the app's tables, events the trigger recorded, changes to the capture
        table itself, events held now), all for the current transaction."""
        with self.guard.as_internal():
            row = self.pg.execute(_COUNTERS, {"cap": self._capture_oid}).fetchone()
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    def wrote(self) -> bool:
        return self.counters()[0] > 0

    def fingerprint(self) -> tuple[int, ...]:
        """Numbers that move with any write; compared right before COMMIT."""
        return self.counters()

    def collect(self, *, schema: list[str], untracked: list[str], preview_limit: int, journal_limit: int) -> ChangeSet:
        self.last_counters = self.counters()  # (reading the capture below does not move them)
        written, recorded, tampered, held = self.last_counters
        if not (written or recorded or tampered or held):
            return ChangeSet(schema=list(schema))
        names = list(untracked)
        with self.guard.as_internal():
            if held > self.event_limit:
                result = self._summarise(held, preview_limit)
            else:
                events = list(self._events())
                keyless = [e for e in events if e[0] is None]
                result = build_changeset(
                    net_changes((shape, op, old, new) for shape, op, _, old, new in events if shape is not None), self.shapes, preview_limit=preview_limit, journal_limit=journal_limit
                )
                for _, op, table, _, _ in keyless:
                    label = f"{table} (no primary key)" if op != "T" else f"{table} (TRUNCATE)"
                    if label not in names:
                        names.append(label)
            if written != recorded or tampered:
                names += [n for n in self._written_untracked() if n not in names] or (
                    [] if names else ["a table py-agent cannot track"]
                )
        result.schema = list(schema)
        result.untracked = names
        if names and not result.note:
            result.note = "it changed tables py-agent cannot track row by row"
        if schema and not result.note:
            result.note = "it changed the schema"
        return result

    def _events(self) -> Iterator[tuple[Any, str, Any, Any, Any]]:
        """(shape or None, op, table name, old row, new row) in the order they happened."""
        cursor = self.pg.execute(f"SELECT tbl, op, old::text, new::text FROM pg_temp.{CAPTURE_TABLE} ORDER BY seq")
        for oid, op, old, new in cursor:
            if oid not in self.by_oid:
                self._read_shapes()  # a table given the trigger since
            shape = self.by_oid.get(oid)
            name = self.names.get(oid, str(oid))
            if shape is None or op == "T":
                yield None, op, name, None, None
                continue
            yield shape, op, name, row_of(shape, loads(old)), row_of(shape, loads(new))

    def _written_untracked(self) -> list[str]:
        """Tables written in this transaction that carry no trigger."""
        rows = self.pg.execute(
            "SELECT relid FROM pg_stat_xact_user_tables WHERE n_tup_ins + n_tup_upd + n_tup_del > 0 AND relid <> %s",
            (self._capture_oid,),
        ).fetchall()
        return [self.names.get(oid, str(oid)) for (oid,) in rows if oid not in self.by_oid and oid in self.names]

    def _summarise(self, events: int, preview_limit: int) -> ChangeSet:
        """A step too big to fold row by row: counts of row events and the first rows of each."""
        ops = {"I": "inserted", "U": "updated", "D": "deleted"}
        tables: dict[str, dict[str, int]] = {}
        rows: dict[str, dict[str, Any]] = {}
        grouped = self.pg.execute(f"SELECT tbl, op, count(*) FROM pg_temp.{CAPTURE_TABLE} GROUP BY tbl, op").fetchall()
        for oid, op, count in grouped:
            shape = self.by_oid.get(oid)
            if shape is None or op not in ops:
                continue
            tables.setdefault(shape.name, {o: 0 for o in ops.values()})[ops[op]] += count
            preview = rows.setdefault(shape.name, {"key": list(shape.key), "inserted": [], "updated": [], "deleted": []})
            first = self.pg.execute(
                f"SELECT old::text, new::text FROM pg_temp.{CAPTURE_TABLE} WHERE tbl = %s AND op = %s ORDER BY seq LIMIT %s",
                (oid, op, preview_limit),
            )
            for old_text, new_text in first:
                old, new = row_of(shape, loads(old_text)), row_of(shape, loads(new_text))
                key_row = new if new is not None else old
                key = tuple(key_row[i] for i in shape.key_positions)  # type: ignore[index]
                preview[ops[op]].append(preview_row(RowChange(shape.name, key, old, new), shape))
        return ChangeSet(tables=dict(sorted(tables.items())), rows=rows, journal=None, shapes=dict(self.shapes), note=too_large_note(events, self.event_limit))
