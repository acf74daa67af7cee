"""What a step changed: exact counts per table, a capped row-level preview, and a journal.

A capture (``capture.py``) records every row event of a step in order; ``net_changes``
folds them into one :class:`RowChange` per row (its value before the step and after
it), so a row inserted and then updated shows once, as inserted with its final values,
and a row changed back to what it was does not show at all. From those:

- ``ChangeSet.tables``: ``{table: {"inserted": n, "updated": n, "deleted": n}}``, exact;
- ``ChangeSet.rows``: the JSON preview the events carry, at most ``preview_limit`` rows per
  table and operation (inserted values; updated key + changed columns before/after;
  deleted values), every value JSON-safe (a blob becomes ``{"$blob": byte_count}``);
- ``ChangeSet.journal``: every RowChange, for history and undo, or ``None`` when the
  step was too large to keep (``note`` says so).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, NamedTuple

Row = tuple[Any, ...]
Counts = dict[str, dict[str, int]]
OPERATIONS = ("inserted", "updated", "deleted")
PREVIEW_LIMIT = 20


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: it is a dict key per row event
class TableShape:
    """A table as the capture sees it: its stored columns and the columns that identify a row."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]  # primary-key columns, or ("rowid",) for a table without one

    @property
    def key_positions(self) -> tuple[int, ...]:
        return tuple(self.columns.index(k) for k in self.key)

    @property
    def signature(self) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        return (self.name, self.columns, self.key)


class RowChange(NamedTuple):  # a tuple: thousands are made per bulk step, cheaply
    """One row's net change: ``before`` is None for an insert, ``after`` None for a delete.

    ``before`` and ``after`` are whole rows (values in the table shape's column order),
    except when ``columns`` is set: then the change is an update and both hold only the
    values of those column positions (how the history keeps updates).
    """

    table: str
    key: Row
    before: Row | None
    after: Row | None
    columns: tuple[int, ...] | None = None

    def values(self, side: Row | None, positions: Sequence[int]) -> Row | None:
        """``side``'s values at ``positions``; None when the change does not hold them all
        (for an update kept by columns: those columns did not change)."""
        if side is None:
            return None
        if self.columns is None:
            return tuple(side[p] for p in positions)
        try:
            return tuple(side[self.columns.index(p)] for p in positions)
        except ValueError:
            return None

    def changed_positions(self) -> tuple[int, ...]:
        """The column positions an update changed (all of them for an insert or delete)."""
        if self.columns is not None:
            return self.columns
        if self.before is None or self.after is None:
            return tuple(range(len(self.before or self.after or ())))
        return tuple(i for i, (a, b) in enumerate(zip(self.before, self.after)) if not (a == b and type(a) is type(b)))

    @property
    def operation(self) -> str:
        return "inserted" if self.before is None else "deleted" if self.after is None else "updated"


@dataclass
class ChangeSet:
    """Everything one step (or undo, or import) changed, as shown for approval."""

    tables: Counts = field(default_factory=dict)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    schema: list[str] = field(default_factory=list)
    untracked: list[str] = field(default_factory=list)  # tables written without row capture
    journal: list[RowChange] | None = field(default_factory=list)
    shapes: dict[str, TableShape] = field(default_factory=dict, repr=False)
    note: str = ""  # why the journal is missing, when it is

    def __bool__(self) -> bool:
        return bool(self.tables or self.schema or self.untracked)

    @property
    def undoable(self) -> bool:
        return self.journal is not None and not self.schema and not self.untracked

    def summary(self) -> str:
        """``authors: 1 inserted; books: 2 updated`` (what the model and logs read)."""
        parts = []
        for table, counts in self.tables.items():
            done = [f"{n} {op}" for op, n in counts.items() if n]
            parts.append(f"{table}: {', '.join(done)}")
        parts += [f"schema: {s}" for s in self.schema]
        if self.untracked:
            parts.append(f"other changes in {', '.join(self.untracked)} (not shown row by row)")
        return "; ".join(parts)

    def event_fields(self) -> dict[str, Any]:
        """The fields the ``changes`` and ``approval_required`` events carry."""
        return {"tables": self.tables, "rows": self.rows, "schema": list(self.schema)}


def net_changes(events: Iterable[tuple[TableShape, str, Row | None, Row | None]]) -> list[RowChange]:
    """Fold ordered row events ``(shape, op, old, new)`` into one change per row.

    ``op`` is ``"I"``, ``"U"`` or ``"D"``. An update that changes a row's key counts as
    the old key deleted and the new key inserted.
    """
    net: dict[tuple[str, Row], list[Row | None]] = {}
    keys: dict[TableShape, Callable[[Row], Row]] = {}

    def fold(table: str, key: Row, before: Row | None, after: Row | None) -> None:
        entry = net.get((table, key))
        if entry is None:
            net[(table, key)] = [before, after]
        else:
            entry[1] = after

    for shape, op, old, new in events:
        table = shape.name
        key_of = keys.get(shape)
        if key_of is None:
            key_of = keys[shape] = _key_getter(shape.key_positions)
        if op == "I":
            assert new is not None
            fold(table, key_of(new), None, new)
        elif op == "D":
            assert old is not None
            fold(table, key_of(old), old, None)
        else:
            assert old is not None and new is not None
            old_key, new_key = key_of(old), key_of(new)
            if old_key == new_key:
                fold(table, old_key, old, new)
            else:
                fold(table, old_key, old, None)
                fold(table, new_key, None, new)
    out = []
    for (table, key), (before, after) in net.items():
        if before is None and after is None:
            continue  # inserted and deleted again
        if before is not None and after is not None and same_row(before, after):
            continue  # changed back, or updated to the same values
        out.append(RowChange(table, key, before, after))
    return out


def _key_getter(positions: tuple[int, ...]) -> Callable[[Row], Row]:
    if len(positions) == 1:
        only = positions[0]
        return lambda row: (row[only],)
    return itemgetter(*positions)  # type: ignore[return-value]


def same_row(a: Row, b: Row) -> bool:
    """Equal values of equal SQLite types (``1`` and ``1.0`` differ: an undo must restore the type)."""
    return a == b and tuple(map(type, a)) == tuple(map(type, b))


def build_changeset(
    changes: Sequence[RowChange],
    shapes: Mapping[str, TableShape],
    *,
    preview_limit: int = PREVIEW_LIMIT,
    journal_limit: int | None = None,
) -> ChangeSet:
    """Counts, preview and journal of net row changes."""
    counts: dict[str, dict[str, int]] = {}
    rows: dict[str, dict[str, Any]] = {}
    for change in changes:
        shape = shapes[change.table]
        table_counts = counts.setdefault(change.table, {op: 0 for op in OPERATIONS})
        op = change.operation
        table_counts[op] += 1
        if table_counts[op] > preview_limit:
            continue
        preview = rows.get(change.table)
        if preview is None:
            preview = rows[change.table] = {"key": list(shape.key), "inserted": [], "updated": [], "deleted": []}
        preview[op].append(preview_row(change, shape))
    journal: list[RowChange] | None = list(changes)
    note = ""
    if journal_limit is not None and len(changes) > journal_limit:
        journal, note = None, too_large_note(len(changes), journal_limit)
    return ChangeSet(tables=dict(sorted(counts.items())), rows=rows, journal=journal, shapes=dict(shapes), note=note)


def too_large_note(n: int, limit: int) -> str:
    return f"too large to keep for undo ({n:,} row changes; the limit is {limit:,})"


def preview_row(change: RowChange, shape: TableShape) -> dict[str, Any]:
    """One row of the preview, JSON-safe."""
    columns = shape.columns
    if change.before is None:
        return row_dict(columns, change.after)  # type: ignore[arg-type]
    if change.after is None:
        return row_dict(columns, change.before)
    key = {k: json_value(v) for k, v in zip(shape.key, change.key)}
    before, after = {}, {}
    if change.columns is not None:
        for position, old, new in zip(change.columns, change.before, change.after):
            before[columns[position]], after[columns[position]] = json_value(old), json_value(new)
        return {"key": key, "before": before, "after": after}
    for name, old, new in zip(columns, change.before, change.after):
        if not (old == new and type(old) is type(new)):
            before[name], after[name] = json_value(old), json_value(new)
    return {"key": key, "before": before, "after": after}


def row_dict(columns: Sequence[str], values: Row) -> dict[str, Any]:
    return {name: json_value(value) for name, value in zip(columns, values)}


def json_value(value: Any) -> Any:
    """A stored value as the page shows it: str/int/float/None; a blob as ``{"$blob": size}``."""
    if value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$blob": len(bytes(value))}
    return str(value)


# -- the journal's lossless encoding (history rows) -------------------------------------------

def encode_journal(changes: Iterable[RowChange]) -> list[list[Any]]:
    """One table's changes as the history keeps them: groups of flat value lists.

    ``["U", key width, positions, keys, befores, afters]`` holds updates that changed the
    same columns (only those values are kept); ``["I", key width, row width, keys, rows]``
    inserts and ``["D", ...]`` deletes (whole rows). Flat lists of plain values are what
    JSON reads and writes fastest; the order of rows within a table is kept per group,
    which is all an undo needs (each row's changes stay in order within one commit).
    """
    groups: dict[tuple[str, tuple[int, ...]], list[Any]] = {}
    for change in changes:
        if change.before is not None and change.after is not None:
            positions = change.changed_positions()
            group = groups.get(("U", positions))
            if group is None:
                group = groups[("U", positions)] = ["U", len(change.key), list(positions), [], [], []]
            group[3] += change.key
            if change.columns is not None:
                group[4] += change.before
                group[5] += change.after
            else:
                group[4] += [change.before[i] for i in positions]
                group[5] += [change.after[i] for i in positions]
        else:
            op, row = ("I", change.after) if change.before is None else ("D", change.before)
            assert row is not None
            group = groups.get((op, ()))
            if group is None:
                group = groups[(op, ())] = [op, len(change.key), len(row), [], []]
            group[3] += change.key
            group[4] += row
    return list(groups.values())


def decode_journal(table: str, groups: Sequence[Sequence[Any]]) -> Iterator[RowChange]:
    """The changes :func:`encode_journal` wrote (updates kept by their changed columns)."""
    for group in groups:
        op, width = group[0], group[1]
        if op == "U":
            positions, keys, befores, afters = tuple(group[2]), group[3], group[4], group[5]
            n = len(positions)
            for i in range(len(keys) // width):
                yield RowChange(
                    table,
                    tuple(keys[i * width : i * width + width]),
                    tuple(befores[i * n : i * n + n]),
                    tuple(afters[i * n : i * n + n]),
                    positions,
                )
        else:
            size, keys, rows = group[2], group[3], group[4]
            for i in range(len(keys) // width):
                key, row = tuple(keys[i * width : i * width + width]), tuple(rows[i * size : i * size + size])
                yield RowChange(table, key, None, row) if op == "I" else RowChange(table, key, row, None)


def dumps(value: Any) -> str:
    """Exact JSON for journal data: blobs are tagged ``{"$b64": ...}``; ±inf stay floats."""
    return json.dumps(value, default=_tag, separators=(",", ":"))


def loads(text: str) -> Any:
    # The hook costs a call per object: only pay it when a blob is in there.
    return json.loads(text, object_hook=_untag) if '"$b64"' in text else json.loads(text)


def _tag(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$b64": base64.b64encode(bytes(value)).decode("ascii")}
    raise TypeError(f"cannot store a {type(value).__name__} in the journal")


def _untag(value: dict[str, Any]) -> Any:
    if len(value) == 1 and "$b64" in value:
        return base64.b64decode(value["$b64"])
    return value


def forget_inserted_objects(session: Any, changes: "ChangeSet") -> None:
    """After rolling back a finished step: drop the session's ORM objects for rows that are gone.

    The step's savepoint was already committed, so SQLAlchemy believes inserted objects exist;
    they must leave the session (SQLite and PostgreSQL database layers alike).
    """
    from sqlalchemy import inspect as sa_inspect

    session.expire_all()
    if changes.journal is None:
        session.expunge_all()
        return
    inserted = {(c.table, c.key) for c in changes.journal if c.before is None}
    if not inserted:
        return
    for obj in list(session.identity_map.values()):
        state = sa_inspect(obj)
        mapper = state.mapper.base_mapper
        table = getattr(mapper.local_table, "name", None)
        shape = changes.shapes.get(table or "")
        if shape is None or state.identity is None:
            continue
        by_name = dict(zip((c.name for c in mapper.primary_key), state.identity))
        key = tuple(by_name.get(k) for k in shape.key)
        if (table, key) in inserted:
            session.expunge(obj)
