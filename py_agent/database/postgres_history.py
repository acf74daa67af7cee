"""History points and undo on PostgreSQL: the same points as on SQLite, in py-agent's own schema.

``py_agent.history`` holds one row per point, ``py_agent.history_rows`` the journal (each
changed row before and after, as exact JSON: see ``postgres_capture.loads``/``dumps``).
Both are created by ``postgres_setup`` (the app's role only gets SELECT/INSERT/UPDATE/
DELETE on them) and written in the same transaction as the data.

A database on a server is shared by many conversations: a point records the
conversation it belongs to, and a :class:`PostgresHistory` with a ``conversation`` lists,
undoes and restores only that conversation's points (without one, it sees them all, as
on a SQLite file). An undo that meets rows someone else changed since is refused, naming
the rows, like on SQLite.

Reverting writes the rows back with ``jsonb_populate_record``: each value goes through
its column type's input function, so numerics, timestamps, ``bytea``, arrays and JSON
come back exactly. Foreign keys stay enforced (PostgreSQL cannot switch them off for an
ordinary role): rows are put back parents first and removed children first, and the
capture then checks that nothing outside the plan was updated or deleted (a cascade).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .changes import (
    ChangeSet,
    Row,
    RowChange,
    TableShape,
    json_value,
    same_row,
    too_large_note,
)
from .history import (
    JOURNAL_LIMIT,
    HistoryPoint,
    add_counts,
    net_counts,
    now_iso,
    point_from_row,
)
from .postgres_capture import dumps, loads
from .postgres_guard import PostgresGuard

SCHEMA = "py_agent"
HISTORY = f"{SCHEMA}.history"
ROWS = f"{SCHEMA}.history_rows"

DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {HISTORY} (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        conversation text,
        kind text NOT NULL,
        request text NOT NULL DEFAULT '',
        at text NOT NULL,
        tables text NOT NULL DEFAULT '{{}}',
        undoable boolean NOT NULL DEFAULT true,
        undone boolean NOT NULL DEFAULT false,
        note text NOT NULL DEFAULT '',
        reverts text NOT NULL DEFAULT '[]',
        shapes text NOT NULL DEFAULT '{{}}',
        rows integer NOT NULL DEFAULT 0)""",
    f"CREATE INDEX IF NOT EXISTS history_conversation ON {HISTORY} (conversation, id)",
    f"""CREATE TABLE IF NOT EXISTS {ROWS} (
        point bigint NOT NULL REFERENCES {HISTORY} (id) ON DELETE CASCADE,
        seq integer NOT NULL,
        tbl text NOT NULL,
        key text NOT NULL,
        before text,
        after text,
        PRIMARY KEY (point, seq))""",
)
GRANTS = (
    f"GRANT USAGE ON SCHEMA {SCHEMA} TO {{role}}",
    f"GRANT SELECT, INSERT, UPDATE ON {HISTORY} TO {{role}}",
    f"GRANT SELECT, INSERT, UPDATE, DELETE ON {ROWS} TO {{role}}",
)

_POINT_COLUMNS = "id, kind, request, at, tables, undoable, undone, note, reverts"


@dataclass
class _OpenPoint:
    id: int
    turn: Any
    net: dict[tuple[str, Row], list[Row | None]] = field(default_factory=dict)
    shapes: dict[str, TableShape] = field(default_factory=dict)
    rows: int = 0
    journaled: bool = True


class PostgresHistory:
    """Reads and writes py-agent's history tables through the agent's psycopg connection."""

    def __init__(self, pg: Any, guard: PostgresGuard, *, journal_limit: int = JOURNAL_LIMIT, conversation: str | None = None) -> None:
        self.pg = pg
        self.guard = guard
        self.journal_limit = journal_limit
        self.conversation = conversation
        self._open: _OpenPoint | None = None
        self._exists: bool | None = None

    def exists(self) -> bool:
        if not self._exists:
            with self.guard.as_internal():
                self._exists = self.pg.execute(
                    f"SELECT to_regclass('{HISTORY}') IS NOT NULL AND has_table_privilege('{HISTORY}', 'SELECT')"
                ).fetchone()[0]
        return bool(self._exists)

    def _mine(self) -> tuple[str, tuple[Any, ...]]:
        if self.conversation is None:
            return "TRUE", ()
        return "conversation = %s", (self.conversation,)

    # -- reading ------------------------------------------------------------------------------
    def points(self) -> list[HistoryPoint]:
        if not self.exists():
            return []
        where, params = self._mine()
        with self.guard.as_internal():
            rows = self.pg.execute(f"SELECT {_POINT_COLUMNS} FROM {HISTORY} WHERE {where} ORDER BY id", params).fetchall()
        return [point_from_row(r) for r in rows]

    def point(self, point_id: int) -> HistoryPoint | None:
        if not self.exists():
            return None
        with self.guard.as_internal():
            row = self.pg.execute(f"SELECT {_POINT_COLUMNS} FROM {HISTORY} WHERE id = %s", (point_id,)).fetchone()
        return point_from_row(row) if row else None

    def shapes(self, point_ids: Iterable[int]) -> dict[str, TableShape]:
        shapes: dict[str, TableShape] = {}
        with self.guard.as_internal():
            for point_id in point_ids:
                (text,) = self.pg.execute(f"SELECT shapes FROM {HISTORY} WHERE id = %s", (point_id,)).fetchone()
                for name, shape in json.loads(text).items():
                    shapes[name] = TableShape(name, tuple(shape["columns"]), tuple(shape["key"]))
        return shapes

    def journal(self, point_ids: Sequence[int]) -> Iterator[RowChange]:
        with self.guard.as_internal():
            for point_id in sorted(point_ids):
                cursor = self.pg.execute(f"SELECT tbl, key, before, after FROM {ROWS} WHERE point = %s ORDER BY seq", (point_id,))
                for table, key, before, after in cursor.fetchall():
                    yield RowChange(table, tuple(loads(key)), _row(before), _row(after))

    # -- writing, inside the commit's transaction ---------------------------------------------------
    def record(self, changes: ChangeSet, *, kind: str, request: str, turn: Any = None, reverts: Sequence[int] = ()) -> HistoryPoint:
        if not self.exists():
            raise RuntimeError(f"py-agent's history tables ({HISTORY}) are missing: run postgres_setup")
        with self.guard.as_internal():
            if kind == "turn" and turn is not None and self._open is not None and self._open.turn == turn:
                return self._extend(self._open, changes)
            note = "" if changes.undoable else (changes.note or "it cannot be undone")
            (point_id,) = self.pg.execute(
                f"INSERT INTO {HISTORY} (conversation, kind, request, at, undoable, note, reverts) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (self.conversation, kind, request, now_iso(), changes.undoable, note, json.dumps(list(reverts))),
            ).fetchone()
            opened = _OpenPoint(point_id, turn if kind == "turn" else None, journaled=changes.undoable)
            self._open = opened if kind == "turn" else None
            return self._extend(opened, changes)

    def _extend(self, point: _OpenPoint, changes: ChangeSet) -> HistoryPoint:
        journal = changes.journal if changes.undoable else None
        note = changes.note or "it cannot be undone"
        if journal is not None and point.rows + len(journal) > self.journal_limit:
            journal, note = None, too_large_note(point.rows + len(journal), self.journal_limit)
        if journal is None and point.journaled:
            point.journaled = False
            point.net.clear()
            self.pg.execute(f"DELETE FROM {ROWS} WHERE point = %s", (point.id,))
            self.pg.execute(f"UPDATE {HISTORY} SET undoable = false, note = %s WHERE id = %s", (note, point.id))
        if point.journaled and journal is not None:
            with self.pg.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO {ROWS} (point, seq, tbl, key, before, after) VALUES (%s, %s, %s, %s, %s, %s)",
                    [
                        (point.id, point.rows + i, c.table, dumps(list(c.key)), _dump(c.before), _dump(c.after))
                        for i, c in enumerate(journal)
                    ],
                )
            point.rows += len(journal)
            for change in journal:
                entry = point.net.get((change.table, change.key))
                if entry is None:
                    point.net[(change.table, change.key)] = [change.before, change.after]
                else:
                    entry[1] = change.after
            tables = net_counts(point.net)
        else:
            (text,) = self.pg.execute(f"SELECT tables FROM {HISTORY} WHERE id = %s", (point.id,)).fetchone()
            tables = add_counts(json.loads(text), changes.tables)
        point.shapes.update({name: changes.shapes[name] for name in changes.tables if name in changes.shapes})
        shapes = {name: {"columns": list(s.columns), "key": list(s.key)} for name, s in point.shapes.items()}
        self.pg.execute(
            f"UPDATE {HISTORY} SET tables = %s, shapes = %s, rows = %s WHERE id = %s",
            (json.dumps(tables), json.dumps(shapes), point.rows, point.id),
        )
        found = self.point(point.id)
        assert found is not None
        return found

    def set_undone(self, point_ids: Iterable[int], undone: bool) -> None:
        with self.guard.as_internal(), self.pg.cursor() as cursor:
            cursor.executemany(f"UPDATE {HISTORY} SET undone = %s WHERE id = %s", [(undone, i) for i in point_ids])

    def close_turn(self) -> None:
        self._open = None

    def forget_cache(self) -> None:
        self._exists = None
        if self._open is not None and self.point(self._open.id) is None:
            self._open = None


# -- reverting -------------------------------------------------------------------------------------

@dataclass
class Plan:
    """For every row the reverted points touched: [what it must hold now, what it will hold]."""

    shapes: Mapping[str, TableShape]
    rows: dict[tuple[str, Row], list[Row | None]] = field(default_factory=dict)


def plan(journal: Iterable[RowChange], shapes: Mapping[str, TableShape]) -> Plan:
    """Fold journal rows (oldest first) into expected-now and target values per row."""
    result = Plan(shapes)
    for row in journal:
        entry = result.rows.get((row.table, row.key))
        if entry is None:
            result.rows[(row.table, row.key)] = [row.after, row.before]
        else:
            entry[0] = row.after
    for key in [k for k, (now, target) in result.rows.items() if _same(now, target)]:
        del result.rows[key]
    return result


def _quote(name: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split(".", 1))


def check_tables(pg: Any, p: Plan) -> list[str]:
    """Tables or columns the plan needs that are gone."""
    problems = []
    for table in sorted({t for t, _ in p.rows}):
        shape = p.shapes.get(table)
        oid = pg.execute("SELECT to_regclass(%s)::oid", (_quote(table),)).fetchone()[0]
        if shape is None or oid is None:
            problems.append(f"the table {table} no longer exists")
            continue
        present = {r[0] for r in pg.execute(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped", (oid,)
        )}
        missing = [c for c in shape.columns if c not in present]
        if missing:
            problems.append(f"the table {table} no longer has the column(s) {', '.join(missing)}")
    return problems


def current_rows(pg: Any, shape: TableShape, keys: list[Row]) -> dict[Row, Row]:
    """The rows of ``shape``'s table whose keys are in ``keys``, by key (decoded exactly)."""
    found: dict[Row, Row] = {}
    if not keys:
        return found
    key_cols = ", ".join(_quote(c) for c in shape.key)
    for start in range(0, len(keys), 500):
        batch = keys[start : start + 500]
        # Keys travel as JSON and are cast back by the key columns' own types.
        sql = (
            f"SELECT to_jsonb(t)::text FROM {_quote(shape.name)} AS t "
            f"WHERE ({key_cols}) IN (SELECT {key_cols} FROM jsonb_populate_recordset(NULL::{_quote(shape.name)}, %s::jsonb))"
        )
        payload = dumps([dict(zip(shape.key, k)) for k in batch])
        for (text,) in pg.execute(sql, (payload,)):
            data = loads(text)
            row = tuple(data.get(c) for c in shape.columns)
            found[tuple(row[i] for i in shape.key_positions)] = row
    return found


def conflicts(pg: Any, p: Plan, *, expect_target: bool = False, limit: int = 5) -> list[str]:
    """Rows that do not hold what the plan expects now (or, with ``expect_target``, afterwards)."""
    problems: list[str] = []
    total = 0
    by_table: dict[str, list[tuple[Row, Row | None, Row | None]]] = {}
    for (table, key), (now, target) in p.rows.items():
        by_table.setdefault(table, []).append((key, now, target))
    for table, entries in sorted(by_table.items()):
        shape = p.shapes[table]
        found = current_rows(pg, shape, [key for key, _, _ in entries])
        for key, now, target in entries:
            wanted = target if expect_target else now
            actual = found.get(key)
            if _same(actual, wanted):
                continue
            total += 1
            if len(problems) < limit:
                problems.append(_describe(shape, key, actual, wanted))
    if total > len(problems):
        problems.append(f"... and {total - len(problems)} more row(s)")
    return problems


def table_order(pg: Any, tables: Iterable[str]) -> list[str]:
    """``tables`` with every table after the tables it references (parents first)."""
    names = sorted(set(tables))
    oids = {name: pg.execute("SELECT to_regclass(%s)::oid", (_quote(name),)).fetchone()[0] for name in names}
    by_oid = {oid: name for name, oid in oids.items() if oid is not None}
    parents: dict[str, set[str]] = {name: set() for name in names}
    if by_oid:
        for child, parent in pg.execute(
            "SELECT conrelid, confrelid FROM pg_constraint WHERE contype = 'f' AND conrelid = ANY(%s) AND confrelid = ANY(%s)",
            (list(by_oid), list(by_oid)),
        ):
            if child != parent:
                parents[by_oid[child]].add(by_oid[parent])
    ordered: list[str] = []
    seen: set[str] = set()

    def visit(name: str, path: frozenset[str]) -> None:
        if name in seen or name in path:
            return
        for parent in sorted(parents[name]):
            visit(parent, path | {name})
        seen.add(name)
        ordered.append(name)

    for name in names:
        visit(name, frozenset())
    return ordered


def apply(pg: Any, p: Plan) -> None:
    """Put every row of the plan to its target: inserts (parents first), updates, deletes (children first)."""
    inserts: dict[str, list[Row]] = {}
    updates: dict[str, list[tuple[Row, Row]]] = {}
    deletes: dict[str, list[Row]] = {}
    for (table, key), (now, target) in p.rows.items():
        if target is None:
            deletes.setdefault(table, []).append(key)
        elif now is None:
            inserts.setdefault(table, []).append(target)
        else:
            updates.setdefault(table, []).append((key, target))
    order = table_order(pg, p.shapes.keys() & {t for t, _ in p.rows})
    for table in order:
        if table in inserts:
            shape = p.shapes[table]
            cols = ", ".join(_quote(c) for c in shape.columns)
            payload = dumps([dict(zip(shape.columns, row)) for row in inserts[table]])
            pg.execute(
                f"INSERT INTO {_quote(table)} ({cols}) OVERRIDING SYSTEM VALUE "
                f"SELECT {cols} FROM jsonb_populate_recordset(NULL::{_quote(table)}, %s::jsonb)",
                (payload,),
            )
    for table in order:
        if table in updates:
            shape = p.shapes[table]
            sets = ", ".join(f"{_quote(c)} = r.{_quote(c)}" for c in shape.columns if c not in shape.key)
            match = " AND ".join(f"t.{_quote(c)} = r.{_quote(c)}" for c in shape.key)
            payload = dumps([dict(zip(shape.columns, row)) for _, row in updates[table]])
            if sets:
                pg.execute(
                    f"UPDATE {_quote(table)} AS t SET {sets} "
                    f"FROM jsonb_populate_recordset(NULL::{_quote(table)}, %s::jsonb) AS r WHERE {match}",
                    (payload,),
                )
    for table in reversed(order):
        if table in deletes:
            shape = p.shapes[table]
            key_cols = ", ".join(_quote(c) for c in shape.key)
            payload = dumps([dict(zip(shape.key, k)) for k in deletes[table]])
            pg.execute(
                f"DELETE FROM {_quote(table)} WHERE ({key_cols}) IN "
                f"(SELECT {key_cols} FROM jsonb_populate_recordset(NULL::{_quote(table)}, %s::jsonb))",
                (payload,),
            )


def outside_plan(changes: ChangeSet, p: Plan) -> list[str]:
    """Rows an undo updated or deleted that the plan did not name (a cascade, say)."""
    problems = []
    for change in changes.journal or []:
        if change.before is not None and (change.table, change.key) not in p.rows:
            shape = changes.shapes.get(change.table)
            where = ", ".join(f"{c}={json_value(v)!r}" for c, v in zip(shape.key if shape else (), change.key))
            problems.append(f"{change.table} ({where}) would be {change.operation} too")
    return problems


def _same(a: Row | None, b: Row | None) -> bool:
    return a is None and b is None or a is not None and b is not None and same_row(a, b)


def _describe(shape: TableShape, key: Row, actual: Row | None, wanted: Row | None) -> str:
    where = f"{shape.name} (" + ", ".join(f"{c}={json_value(v)!r}" for c, v in zip(shape.key, key)) + ")"
    if actual is None:
        return f"{where} no longer exists"
    if wanted is None:
        return f"{where} exists again (it was deleted)"
    diffs = [
        f"{c} is {json_value(a)!r}, expected {json_value(w)!r}"
        for c, a, w in zip(shape.columns, actual, wanted)
        if not (a == w and type(a) is type(w))
    ]
    return f"{where}: " + "; ".join(diffs)


def _row(text: str | None) -> Row | None:
    return None if text is None else tuple(loads(text))


def _dump(values: Row | None) -> str | None:
    return None if values is None else dumps(list(values))
