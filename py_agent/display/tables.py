"""What show() accepts, turned into one shape: column names and rows of JSON-safe values.

Accepted (a row is one item of the outer collection):

- a SQLAlchemy ``Result`` (``session.execute(...)``), ``ScalarResult`` (``session.scalars``),
  ``MappingResult`` (``.mappings()``), a legacy ``Query``, or any list/iterable of their rows;
- ``Row`` objects: one column per field; a field holding an ORM object (``select(Book)``)
  becomes that object's columns (prefixed with the field's name when the row has others);
- ORM objects: their mapped column attributes (read through ``sqlalchemy.inspect``, never
  by arbitrary attribute name), the union of columns when subclasses add some;
- dicts (or any mapping): one column per key, in the order keys are first seen;
- tuples and lists, named by ``columns=[...]`` (``column 1``, ``column 2``... otherwise);
- plain values: one column (``value``, or ``columns[0]``);
- one dict of lists (``{"genre": [...], "books": [...]}``): columns side by side;
- a single ORM object, ``Row`` or dict: a table of one row.

``columns=`` names positional values; for named values (dicts, rows, ORM objects) it picks
and orders the columns shown. Rows past ``max_rows`` or ``max_bytes`` are not converted
(``truncated``), but still counted for ``total`` (up to ``count_limit``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import FilterResult, Result, Row
from sqlalchemy.orm import InstanceState, Mapper, Query

from .values import DEFAULT_MAX_CHARS, OTHER, convert, instance_state, is_plain

VALUE = "value"  # the column of plain values


class ShowError(TypeError):
    """show() or chart() was given something it cannot turn into rows (a message for the model)."""


@dataclass
class Table:
    """Rows ready for the ``display`` event, and what the chart and the summary need to know."""

    columns: list[str]
    rows: list[list[Any]]  # JSON-safe values, one list per row, as long as ``columns``
    total: int  # rows in the data (``len(rows)`` unless truncated)
    truncated: bool  # rows were left out (the row or byte limit)
    kinds: list[str] = field(default_factory=list)  # per column: values.NUMBER, TEMPORAL, ...
    size: int = 0  # estimated JSON size of ``rows`` in bytes
    counted_all: bool = True  # False when counting stopped at ``count_limit`` (total is a floor)

    def column(self, name: str) -> int:
        return self.columns.index(name)


@dataclass(frozen=True)
class TableLimits:
    max_rows: int = 10_000
    max_bytes: int = 2_000_000
    max_cell_chars: int = DEFAULT_MAX_CHARS
    count_limit: int = 1_000_000


def is_query_result(value: Any) -> bool:
    """True for what a notebook would show as a table: query results, rows, ORM objects.

    Used for a step's last expression; lists of dicts or tuples keep their repr.
    """
    if isinstance(value, Result):
        # An INSERT/UPDATE/DELETE without RETURNING has no rows to show: keep its repr.
        return bool(getattr(value, "returns_rows", True))
    if isinstance(value, (FilterResult, Query, Row)) or instance_state(value) is not None:
        return True
    if isinstance(value, (list, tuple)) and value:
        if all(isinstance(item, Row) for item in value):
            return True
        states = [instance_state(item) for item in value]
        if all(state is not None for state in states):
            return len({state.mapper.base_mapper for state in states if state is not None}) == 1
    return False


def build_table(data: Any, columns: Sequence[str] | None = None, limits: TableLimits = TableLimits()) -> Table:
    """Turn ``data`` (anything the module docstring lists) into a :class:`Table`."""
    names = _column_names(columns)
    builder = _Builder(names, limits)
    items, header, total = _items(data)
    builder.consume(items, total)
    if not builder.columns and not names:
        builder.declare(header)  # an empty result still names its columns
    return builder.finish()


def _column_names(columns: Sequence[str] | None) -> list[str] | None:
    if columns is None:
        return None
    if isinstance(columns, str) or not isinstance(columns, (list, tuple)):
        raise ShowError("columns= takes a list of column names, e.g. columns=['title', 'price']")
    names = [c if isinstance(c, str) else str(c) for c in columns]
    if len(set(names)) != len(names):
        raise ShowError(f"columns= names a column twice: {names}")
    return names


def _items(data: Any) -> tuple[Iterable[Any], list[str], int | None]:
    """The rows of ``data``, the column names it declares (for when it has no rows), its length if known."""
    if isinstance(data, (str, bytes, bytearray)):
        raise ShowError("show() and chart() display rows; use print() for text")
    if isinstance(data, type):
        raise ShowError(
            f"show() and chart() display rows, not the class {data.__name__}: pass a query's result, "
            f"e.g. show(session.scalars(select({data.__name__})))"
        )
    if isinstance(data, Result):
        return data, [str(k) for k in data.keys()], None  # noqa: SIM118 - iterating a Result reads its rows
    if isinstance(data, (FilterResult, Query)):
        return data, [], None
    if isinstance(data, Row) or instance_state(data) is not None:
        return [data], [], 1
    if isinstance(data, Mapping):
        if data and all(isinstance(v, (list, tuple)) for v in data.values()):
            return _columnar(data)
        return [data], [], 1
    if isinstance(data, Sequence):
        return data, [], len(data)
    if isinstance(data, Iterable):
        return data, [], None
    return [data], [], 1  # one plain value


def _columnar(data: Mapping[Any, Any]) -> tuple[Iterable[Any], list[str], int]:
    """A dict of lists: one column per key, rows side by side (short columns padded with None)."""
    names = [k if isinstance(k, str) else str(k) for k in data]
    lists = list(data.values())
    total = max(len(values) for values in lists)
    rows = itertools.zip_longest(*lists)
    return (dict(zip(names, row)) for row in rows), names, total


class _Builder:
    """Collects rows, adding columns as they are first seen, within the limits."""

    def __init__(self, chosen: list[str] | None, limits: TableLimits) -> None:
        self.chosen = chosen  # columns= : names for positional rows, a selection for named ones
        self.limits = limits
        self.columns: list[str] = list(chosen or [])
        self.index = {name: i for i, name in enumerate(self.columns)}
        self.kinds: list[set[str]] = [set() for _ in self.columns]
        self.rows: list[list[Any]] = []
        self.size = 2
        self.truncated = False
        self.counted = 0
        self.counted_all = True
        self.mappers: dict[Mapper[Any], tuple[str, ...]] = {}
        self.fields: dict[tuple[Any, ...], list[int | None]] = {}  # names -> column positions
        self.row_size = 0  # JSON bytes of the row being built

    def declare(self, names: Iterable[str]) -> None:
        for name in names:
            self._slot(name)

    def consume(self, items: Iterable[Any], known_total: int | None) -> None:
        limits = self.limits
        iterator: Iterator[Any] = iter(items)
        for item in iterator:
            self.counted += 1
            self.row_size = 2
            row = self._row(item)
            size = self.row_size
            if self.size + size > limits.max_bytes:
                self.truncated = True
                break
            self.rows.append(row)
            self.size += size
            if len(self.rows) >= limits.max_rows:
                break
        else:
            return
        # Past the limits: count the rest without converting it.
        if known_total is not None:
            self.truncated = self.truncated or known_total > len(self.rows)
            self.counted = known_total
            return
        for _ in iterator:
            self.counted += 1
            self.truncated = True
            if self.counted >= limits.count_limit:
                self.counted_all = False
                break
        if not self.truncated and self.counted > len(self.rows):
            self.truncated = True

    def finish(self) -> Table:
        width = len(self.columns)
        for row in self.rows:
            if len(row) < width:
                row.extend([None] * (width - len(row)))
        if not self.columns and not self.rows:
            self.columns, self.kinds = [VALUE], [set()]
        kinds = [next(iter(k)) if len(k) == 1 else (OTHER if k else "") for k in self.kinds]
        return Table(self.columns, self.rows, max(self.counted, len(self.rows)), self.truncated, kinds, self.size, self.counted_all)

    # -- one row -------------------------------------------------------------------------------------
    def _slot(self, name: str) -> int | None:
        """The position of column ``name``, added if new; None if columns= leaves it out."""
        position = self.index.get(name)
        if position is None:
            if self.chosen is not None:
                return None
            position = self.index[name] = len(self.columns)
            self.columns.append(name)
            self.kinds.append(set())
        return position

    def _row(self, item: Any) -> list[Any]:
        if isinstance(item, Row):
            values = tuple(item)
            if all(is_plain(value) for value in values):  # the common case: no ORM objects in it
                return self._placed(self._positions(item._fields), values)
            return self._named(self._row_pairs(item))
        state = instance_state(item)
        if state is not None:
            keys = self._keys(state.mapper)
            return self._placed(self._positions(keys), self._object_values(state, keys))
        if isinstance(item, Mapping):
            return self._placed(self._positions(tuple(item.keys())), tuple(item.values()))
        if isinstance(item, (str, bytes, bytearray)) or not isinstance(item, Iterable):
            return self._positional((item,), plain=True)
        return self._positional(item)

    def _named(self, pairs: Iterable[tuple[str, Any]]) -> list[Any]:
        row: list[Any] = [None] * len(self.columns)
        for name, value in pairs:
            position = self._slot(name)
            if position is None:
                continue
            if position >= len(row):
                row.extend([None] * (position + 1 - len(row)))
            row[position] = self._cell(position, value)
        return row

    def _positions(self, names: tuple[Any, ...]) -> list[int | None]:
        """The column of each name (a Row's fields, a dict's keys, a mapper's keys), cached."""
        positions = self.fields.get(names)
        if positions is None:
            positions = self.fields[names] = [self._slot(name if isinstance(name, str) else str(name)) for name in names]
        return positions

    def _placed(self, positions: list[int | None], values: tuple[Any, ...]) -> list[Any]:
        row: list[Any] = [None] * len(self.columns)
        for position, value in zip(positions, values):
            if position is not None:
                row[position] = self._cell(position, value)
        return row

    def _positional(self, values: Iterable[Any], plain: bool = False) -> list[Any]:
        row: list[Any] = []
        for position, value in enumerate(values):
            if position >= len(self.columns):
                if self.chosen is not None:
                    break  # more values than the names given: the names decide
                self._slot(VALUE if plain else f"column {position + 1}")
            row.append(self._cell(position, value))
        return row

    def _cell(self, position: int, value: Any) -> Any:
        cell, kind = convert(value, self.limits.max_cell_chars)
        if kind:
            self.kinds[position].add(kind)
        self.row_size += len(cell) + 3 if type(cell) is str else _json_size(cell) + 1
        return cell

    def _row_pairs(self, row: Row[Any]) -> Iterator[tuple[str, Any]]:
        fields = row._fields
        alone = len(fields) == 1
        for name, value in zip(fields, row):
            state = instance_state(value)
            if state is None:
                yield str(name), value
            else:  # select(Book) or select(Book, Author.name): the object's columns
                prefix = "" if alone else f"{name}."
                keys = self._keys(state.mapper)
                yield from zip([prefix + key for key in keys], self._object_values(state, keys))

    def _keys(self, mapper: Mapper[Any]) -> tuple[str, ...]:
        """The mapper's column attributes: what an ORM object shows (never other attributes)."""
        keys = self.mappers.get(mapper)
        if keys is None:
            keys = self.mappers[mapper] = tuple(prop.key for prop in mapper.column_attrs)
        return keys

    @staticmethod
    def _object_values(state: InstanceState[Any], keys: tuple[str, ...]) -> tuple[Any, ...]:
        """An ORM object's values of ``keys``: loaded ones from its state, others loaded as
        ``obj.key`` would load them (an expired or deferred column)."""
        loaded = state.dict
        values = []
        for key in keys:
            if key in loaded:
                values.append(loaded[key])
                continue
            try:
                values.append(state.attrs[key].value)
            except MemoryError:
                raise
            except Exception:  # noqa: BLE001 - e.g. a detached object: show what can be shown
                values.append("‹not loaded›")
        return tuple(values)


def _json_size(value: Any) -> int:
    """About how many bytes ``value`` (already JSON-safe) takes in JSON."""
    if value is None or value is True or value is False:
        return 5
    kind = type(value)
    if kind is str:
        return len(value) + 2
    if kind is int or kind is float:
        return 8
    if kind is list:
        return 2 + sum(_json_size(v) + 1 for v in value)
    if kind is dict:
        return 2 + sum(len(k) + 4 + _json_size(v) for k, v in value.items())
    return 8


def kind_of_column(table: Table, name: str) -> str:
    """The kind of the values in column ``name`` (values.NUMBER, TEMPORAL, TEXT...; "" if all None)."""
    return table.kinds[table.column(name)]
