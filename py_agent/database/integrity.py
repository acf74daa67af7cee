"""Foreign keys, checked where a step changed rows, with messages a model can act on.

SQLite's own message for a broken reference is "FOREIGN KEY constraint failed", with
no table, column or value. py-agent defers the check to the end of the step
(``PRAGMA defer_foreign_keys``, switched on at the step's first write) and then looks
only at the rows the step changed:

- a changed row whose reference columns point at a parent row that does not exist;
- a parent row the step deleted (or whose referenced key it changed) that other rows
  still refer to.

Both are found with a few indexed queries over the captured rows, not a scan of the
database, and rows that were broken before the step are not blamed on it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter

from .capture import quote
from .changes import Row, RowChange, TableShape

_BATCH = 400  # values per IN (...) list: well under SQLite's 999/32766 parameter limits


@dataclass(frozen=True)
class ForeignKey:
    child: str
    child_columns: tuple[str, ...]
    parent: str
    parent_columns: tuple[str, ...]


def foreign_keys(raw: sqlite3.Connection, tables: Iterable[str]) -> list[ForeignKey]:
    """The foreign keys declared on ``tables`` (the parent's key when a column list is omitted)."""
    found: list[ForeignKey] = []
    for table in tables:
        rows = raw.execute(f"PRAGMA main.foreign_key_list({quote(table)})").fetchall()
        by_id: dict[int, list[tuple[str, str, str | None]]] = {}
        for fk_id, seq, parent, child_col, parent_col, *_ in sorted(rows, key=lambda r: (r[0], r[1])):
            by_id.setdefault(fk_id, []).append((parent, child_col, parent_col))
        for parts in by_id.values():
            parent = parts[0][0]
            parent_cols = tuple(p for _, _, p in parts)
            if any(p is None for p in parent_cols):
                parent_cols = _primary_key(raw, parent)
            found.append(ForeignKey(table, tuple(c for _, c, _ in parts), parent, parent_cols))  # type: ignore[arg-type]
    return found


def _primary_key(raw: sqlite3.Connection, table: str) -> tuple[str, ...]:
    info = raw.execute(f"PRAGMA main.table_info({quote(table)})").fetchall()
    return tuple(r[1] for r in sorted((r for r in info if r[5] > 0), key=lambda r: r[5]))


def enforced(raw: sqlite3.Connection) -> bool:
    return bool(raw.execute("PRAGMA foreign_keys").fetchone()[0])


def broken_references(
    raw: sqlite3.Connection,
    changes: Sequence[RowChange],
    shapes: Mapping[str, TableShape],
    keys: Sequence[ForeignKey],
    *,
    limit: int = 5,
) -> list[str]:
    """Sentences naming the references the changed rows break (at most ``limit``)."""
    by_table: dict[str, list[RowChange]] = {}
    # Per table: the column sets of updates kept by columns, and whether any change is a
    # whole row. A foreign key none of them can touch is skipped without a look at the rows.
    partial: dict[str, set[tuple[int, ...]]] = {}
    whole: set[str] = set()
    for change in changes:
        by_table.setdefault(change.table, []).append(change)
        if change.columns is None:
            whole.add(change.table)
        else:
            partial.setdefault(change.table, set()).add(change.columns)

    def may_touch(table: str, columns: tuple[str, ...]) -> bool:
        if table in whole:
            return True
        wanted = {shapes[table].columns.index(c) for c in columns if c in shapes[table].columns}
        return any(wanted <= set(cols) for cols in partial.get(table, ()))

    problems: list[str] = []
    for fk in keys:
        if len(problems) >= limit:
            break
        if fk.child in by_table and fk.child in shapes and may_touch(fk.child, fk.child_columns):
            problems += _missing_parents(raw, fk, by_table[fk.child], shapes[fk.child], limit - len(problems))
        if fk.parent in by_table and fk.parent in shapes and len(problems) < limit and may_touch(fk.parent, fk.parent_columns):
            problems += _orphaned_children(raw, fk, by_table[fk.parent], shapes[fk.parent], limit - len(problems))
    return problems[:limit]


def _holder(positions: list[int]) -> Callable[[tuple[int, ...]], bool]:
    """Whether an update's changed positions include all of ``positions`` (memoised: the
    changes of one step usually share a few column sets)."""
    wanted = set(positions)
    seen: dict[tuple[int, ...], bool] = {}

    def holds(columns: tuple[int, ...]) -> bool:
        answer = seen.get(columns)
        if answer is None:
            answer = seen[columns] = wanted <= set(columns)
        return answer

    return holds


def _picker(shape: TableShape, columns: tuple[str, ...]) -> Callable[[Row], Row] | None:
    """A fast function giving the ``columns`` of a row of ``shape`` as a tuple."""
    try:
        where = [shape.columns.index(c) for c in columns]
    except ValueError:
        return None
    if len(where) == 1:
        only = where[0]
        return lambda row: (row[only],)
    return itemgetter(*where)  # type: ignore[return-value]


def _existing(raw: sqlite3.Connection, table: str, columns: tuple[str, ...], wanted: list[Row]) -> set[Row]:
    """Which of ``wanted`` (value tuples of ``columns``) exist in ``table``."""
    found: set[Row] = set()
    cols = ", ".join(quote(c) for c in columns)
    for start in range(0, len(wanted), _BATCH):
        batch = wanted[start : start + _BATCH]
        if len(columns) == 1:
            where = f"{quote(columns[0])} IN ({', '.join('?' * len(batch))})"
            params = [v[0] for v in batch]
        else:
            one = "(" + ", ".join("?" * len(columns)) + ")"
            where = f"({cols}) IN (VALUES {', '.join([one] * len(batch))})"
            params = [x for v in batch for x in v]
        for row in raw.execute(f"SELECT DISTINCT {cols} FROM main.{quote(table)} WHERE {where}", params):
            found.add(tuple(row))
    return found


def _matches(found: set[Row], values: Row) -> bool:
    # SQLite compares a reference with the parent column's affinity ('3' finds 3); so do we.
    return values in found or any(tuple(str(a) for a in values) == tuple(str(b) for b in f) for f in found)


def _missing_parents(raw: sqlite3.Connection, fk: ForeignKey, changes: list[RowChange], shape: TableShape, limit: int) -> list[str]:
    pick = _picker(shape, fk.child_columns)
    if pick is None:
        return []
    positions = [shape.columns.index(c) for c in fk.child_columns]
    holds = _holder(positions)
    refs: dict[Row, RowChange] = {}
    for change in changes:
        if change.after is None:
            continue
        if change.columns is not None:  # an update kept by its changed columns
            if not holds(change.columns):
                continue  # the reference is not among them: it did not change
            values = change.values(change.after, positions)
            assert values is not None
        else:
            values = pick(change.after)
            if change.before is not None and pick(change.before) == values:
                continue  # the reference did not change
        if None not in values:  # a NULL reference refers to nothing
            refs.setdefault(values, change)
    if not refs:
        return []
    found = _existing(raw, fk.parent, fk.parent_columns, list(refs))
    problems = []
    for values, change in refs.items():
        if _matches(found, values):
            continue
        problems.append(
            f"the {fk.child} row {_describe_key(shape, change.key)} has {_pairs(fk.child_columns, values)}, "
            f"but {fk.parent} has no row with {_pairs(fk.parent_columns, values)}: add that {fk.parent} row first, "
            f"or refer to one that exists"
        )
        if len(problems) >= limit:
            break
    return problems


def _orphaned_children(raw: sqlite3.Connection, fk: ForeignKey, changes: list[RowChange], shape: TableShape, limit: int) -> list[str]:
    pick = _picker(shape, fk.parent_columns)
    if pick is None:
        return []
    positions = [shape.columns.index(c) for c in fk.parent_columns]
    holds = _holder(positions)
    gone: dict[Row, RowChange] = {}
    for change in changes:
        if change.before is None:
            continue
        if change.columns is not None:
            if not holds(change.columns):
                continue
            values = change.values(change.before, positions)
            assert values is not None
        else:
            values = pick(change.before)
            if change.after is not None and pick(change.after) == values:
                continue
        if None not in values:
            gone.setdefault(values, change)
    if not gone:
        return []
    still_there = _existing(raw, fk.parent, fk.parent_columns, list(gone))  # e.g. deleted and added again
    candidates = [v for v in gone if v not in still_there]
    referring = _existing(raw, fk.child, fk.child_columns, candidates) if candidates else set()
    problems = []
    for values in candidates:
        if not _matches(referring, values):
            continue
        change = gone[values]
        what = "was deleted" if change.after is None else f"had its {', '.join(fk.parent_columns)} changed"
        problems.append(
            f"the {fk.parent} row {_describe_key(shape, change.key)} {what}, but {fk.child} rows still refer to it "
            f"({fk.child}.{_pairs(fk.child_columns, values)}): change or delete those {fk.child} rows first"
        )
        if len(problems) >= limit:
            break
    return problems


def _pairs(columns: Sequence[str], values: Row) -> str:
    return " and ".join(f"{c} = {v!r}" for c, v in zip(columns, values))


def _describe_key(shape: TableShape, key: Row) -> str:
    return "(" + ", ".join(f"{c}={v!r}" for c, v in zip(shape.key, key)) + ")"


def violation_message(problems: list[str]) -> str:
    """The step's error when references are broken."""
    lines = ["IntegrityError: FOREIGN KEY constraint failed, so the step was rolled back:"]
    lines += [f"- {p}" for p in problems]
    return "\n".join(lines)
