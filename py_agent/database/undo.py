"""Reverting points of the history: plan, conflict check, apply.

A plan says, for every row the reverted points touched, what the row must hold now
(what the last of those points left; ``None``: it must not exist) and what it will
hold afterwards (what it held before the first of them; ``None``: delete it). Each is
an *image*: the row's known values by column position. For a row the points only
updated, the image holds just the columns they changed, so an undo checks and
restores those columns and leaves the others (changed by someone else since) alone.

If any row does not hold what the plan expects, someone changed it since: nothing is
done and the conflict names the rows. Otherwise deletes, then updates, then inserts
put the rows back; the caller runs this with foreign-key actions off (no cascade may
touch rows outside the plan) and checks references afterwards.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .capture import quote
from .changes import Row, RowChange, TableShape, json_value

Image = dict[int, Any]  # column position -> value; None instead of an Image: no such row


@dataclass
class Plan:
    shapes: Mapping[str, TableShape]
    # (table, key) -> [image now, image to restore, positions an update restores (None for
    # a row to delete or insert)]
    rows: dict[tuple[str, Row], list[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)


def _image(values: Row | None, columns: tuple[int, ...] | None) -> Image | None:
    if values is None:
        return None
    return dict(enumerate(values)) if columns is None else dict(zip(columns, values))


def plan(journal: Iterable[RowChange], shapes: Mapping[str, TableShape]) -> Plan:
    """Fold journal changes (oldest first) into the now and target images of each row."""
    result = Plan(shapes)
    rows = result.rows
    again: set[tuple[str, Row]] = set()
    for change in journal:
        k = (change.table, change.key)
        columns = change.columns
        before = None if change.before is None else dict(enumerate(change.before)) if columns is None else dict(zip(columns, change.before))
        after = None if change.after is None else dict(enumerate(change.after)) if columns is None else dict(zip(columns, change.after))
        entry = rows.get(k)
        if entry is None:
            # A journal update holds its changed columns only: those are the ones to restore.
            rows[k] = [after, before, columns]
            continue
        again.add(k)
        now, target = entry[0], entry[1]
        # What the row holds now: the latest values.
        entry[0] = after if after is None or now is None or columns is None else {**now, **after}
        # What to restore: the earliest value of each column (a later change's "before"
        # is the original for columns no earlier change touched).
        if target is not None and before is not None:
            for position, value in before.items():
                target.setdefault(position, value)
    # Rows changed more than once, or whole-row updates, may end where they started.
    for k in [k for k, entry in rows.items() if k in again or entry[2] is None]:
        now, target, _ = rows[k]
        if now is not None and target is not None:
            differing = tuple(_differing(now, target))
            if differing:
                rows[k][2] = differing
            else:
                del rows[k]
        elif now is None and target is None:
            del rows[k]
        else:
            rows[k][2] = None
    return result


def _equal(a: Any, b: Any) -> bool:
    return a == b and type(a) is type(b)


def _differing(now: Image, target: Image) -> list[int]:
    return sorted(p for p in target if p not in now or not _equal(now[p], target[p]))


def _whole(image: Image, shape: TableShape) -> Row:
    try:
        return tuple(image[i] for i in range(len(shape.columns)))
    except KeyError:
        raise ValueError(f"the history has only part of a {shape.name} row") from None


def current_rows(raw: sqlite3.Connection, shape: TableShape, keys: list[Row], columns: tuple[str, ...] | None = None) -> dict[Row, Row]:
    """``columns`` (default: all) of the rows of ``shape``'s table whose keys are in ``keys``, by key."""
    columns = columns if columns is not None else shape.columns
    selected = ", ".join(_col(c) for c in (*shape.key, *columns))
    n = len(shape.key)
    found: dict[Row, Row] = {}
    for batch in _batches(keys, n):
        where = f"({_cols(shape.key)}) IN (VALUES {_rows(len(batch), n)})"
        for row in raw.execute(f"SELECT {selected} FROM main.{quote(shape.name)} WHERE {where}", _flat(batch)):
            found[tuple(row[:n])] = tuple(row[n:])
    return found


def check_tables(raw: sqlite3.Connection, p: Plan) -> list[str]:
    """Tables or columns the plan needs that are gone."""
    problems = []
    for table in {t for t, _ in p.rows}:
        shape = p.shapes.get(table)
        info = raw.execute(f"PRAGMA main.table_xinfo({quote(table)})").fetchall()
        if shape is None or not info:
            problems.append(f"the table {table} no longer exists")
            continue
        present = {r[1] for r in info} | {"rowid"}
        missing = [c for c in shape.columns if c not in present]
        if missing:
            problems.append(f"the table {table} no longer has the column(s) {', '.join(missing)}")
    return problems


def conflicts(raw: sqlite3.Connection, p: Plan, *, expect_target: bool = False, limit: int = 5) -> list[str]:
    """Rows that do not hold what the plan expects now (or, with ``expect_target``, afterwards).

    A row the points updated is checked on the columns they changed only: someone else
    changing another column since does not stand in the way. A row they inserted must
    be exactly as they left it (deleting it would lose a later change), and a row they
    deleted must still be absent.
    """
    problems: list[str] = []
    total = 0
    # Per table, rows checked on the same columns are read and compared together.
    groups: dict[str, dict[tuple[int, ...], list[tuple[Row, Row]]]] = {}
    absent: dict[str, list[Row]] = {}
    for (table, key), (now, target, changed) in p.rows.items():
        wanted, other = (target, now) if expect_target else (now, target)
        if wanted is None:
            absent.setdefault(table, []).append(key)
            continue
        where = tuple(sorted(wanted)) if other is None else changed
        groups.setdefault(table, {}).setdefault(where, []).append((key, tuple([wanted[i] for i in where])))
    for table in sorted(set(groups) | set(absent)):
        shape = p.shapes[table]
        for where, items in groups.get(table, {}).items():
            found = current_rows(raw, shape, [key for key, _ in items], tuple([shape.columns[i] for i in where]))
            for key, expected in items:
                got = found.get(key)
                if got is not None and got == expected and tuple(map(type, got)) == tuple(map(type, expected)):
                    continue
                total += 1
                if len(problems) < limit:
                    actual = None if got is None else dict(zip(where, got))
                    problems.append(_describe(shape, key, actual, dict(zip(where, expected))))
        if table in absent:
            for key in current_rows(raw, shape, absent[table], ()):
                total += 1
                if len(problems) < limit:
                    problems.append(_describe(shape, key, {}, None))
    if total > len(problems):
        problems.append(f"... and {total - len(problems)} more row(s)")
    return problems


def _describe(shape: TableShape, key: Row, actual: Image | None, wanted: Image | None) -> str:
    where = f"{shape.name} (" + ", ".join(f"{c}={json_value(v)!r}" for c, v in zip(shape.key, key)) + ")"
    if actual is None:
        return f"{where} no longer exists"
    if wanted is None:
        return f"{where} exists again (it was deleted)"
    diffs = [
        f"{shape.columns[i]} is {json_value(actual.get(i))!r}, expected {json_value(w)!r}"
        for i, w in sorted(wanted.items())
        if not _equal(actual.get(i), w)
    ]
    return f"{where}: " + "; ".join(diffs)


def apply(raw: sqlite3.Connection, p: Plan) -> None:
    """Put every row of the plan to its target: deletes, then updates, then inserts.

    Each kind is sent in batches of many rows per statement (``UPDATE ... FROM (VALUES
    ...)``, SQLite 3.33+), which is many times faster than one statement per row.
    """
    deletes: dict[str, list[Row]] = {}
    updates: dict[tuple[str, tuple[int, ...]], list[Row]] = {}
    inserts: dict[str, list[Row]] = {}
    for (table, key), (now, target, changed) in p.rows.items():
        if target is None:
            deletes.setdefault(table, []).append(key)
        elif now is None:
            inserts.setdefault(table, []).append(_whole(target, p.shapes[table]))
        else:
            updates.setdefault((table, changed), []).append((*key, *[target[i] for i in changed]))
    for table, keys in deletes.items():
        shape = p.shapes[table]
        for batch in _batches(keys, len(shape.key)):
            raw.execute(f"DELETE FROM main.{quote(table)} WHERE ({_cols(shape.key)}) IN (VALUES {_rows(len(batch), len(shape.key))})", _flat(batch))
    for (table, changed), params in updates.items():
        shape = p.shapes[table]
        n = len(shape.key)
        width = n + len(changed)
        sets = ", ".join(f"{_col(shape.columns[c])} = v.column{n + i + 1}" for i, c in enumerate(changed))
        match = " AND ".join(f"{quote(table)}.{_col(c)} = v.column{i + 1}" for i, c in enumerate(shape.key))
        for batch in _batches(params, width):
            raw.execute(f"UPDATE main.{quote(table)} SET {sets} FROM (VALUES {_rows(len(batch), width)}) AS v WHERE {match}", _flat(batch))
    for table, rows in inserts.items():
        shape = p.shapes[table]
        for batch in _batches(rows, len(shape.columns)):
            raw.execute(f"INSERT INTO main.{quote(table)} ({_cols(shape.columns)}) VALUES {_rows(len(batch), len(shape.columns))}", _flat(batch))


def as_changes(p: Plan) -> list[RowChange]:
    """What applying the plan changes (the capture sees exactly this when nothing else fired)."""
    out = []
    for (table, key), (now, target, changed) in p.rows.items():
        if now is None or target is None:
            shape = p.shapes[table]
            out.append(RowChange(table, key, None if now is None else _whole(now, shape), None if target is None else _whole(target, shape)))
        else:
            out.append(RowChange(table, key, tuple([now[i] for i in changed]), tuple([target[i] for i in changed]), changed))
    return out


def reached(p: Plan, changes: Iterable[RowChange]) -> list[str]:
    """Rows of the plan whose captured final value is not the target (empty: all reached)."""
    final = {(c.table, c.key): c.after for c in changes if c.columns is None}
    problems = []
    for (table, key), (now, target, _) in p.rows.items():
        shape = p.shapes[table]
        got = _image(final[(table, key)], None) if (table, key) in final else now
        if target is None:
            ok = got is None
        else:
            ok = got is not None and all(i in got and _equal(got[i], v) for i, v in target.items())
        if not ok:
            problems.append(_describe(shape, key, got, target))
    return problems


_MAX_PARAMETERS = 30_000  # SQLite's default limit is 32 766 (since 3.32)


def _batches(rows: list[Row], width: int) -> Iterator[list[Row]]:
    size = max(1, min(500, _MAX_PARAMETERS // max(width, 1)))
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _rows(n: int, width: int) -> str:
    one = "(" + ", ".join("?" * width) + ")"
    return ", ".join([one] * n)


def _flat(rows: list[Row]) -> list[object]:
    return [value for row in rows for value in row]


def _cols(names: Iterable[str]) -> str:
    return ", ".join(_col(c) for c in names)


def _col(name: str) -> str:
    return "rowid" if name == "rowid" else quote(name)
