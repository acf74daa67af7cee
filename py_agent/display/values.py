"""Cell values as the page receives them: JSON-safe, and a kind per value for charts.

The rules, the same wherever a value is shown (tables, charts, the model's summary):

- ``None``, ``bool``, ``str`` stay as they are (a string longer than the cell limit is cut
  and ends with ``…``);
- ``int`` stays a number, except beyond ±2**53 where JavaScript would round it: then a string;
- ``float`` stays a number; NaN and ±infinity (which JSON cannot hold) become ``"nan"``,
  ``"inf"``, ``"-inf"``, as in the ``changes`` event;
- ``Decimal`` becomes a number (a float: 15–17 significant digits), always, so money sorts
  and charts as a number; a non-finite Decimal becomes its string;
- ``datetime``, ``date``, ``time``: ISO 8601 strings; ``timedelta``: its ``str``;
- an ``Enum`` member: its value (converted by these rules); ``UUID``: its string;
- ``bytes``, ``bytearray``, ``memoryview``: ``{"$blob": byte_count}`` (never the bytes);
- an ORM object inside a cell: ``"Book 12"`` (its class and primary key);
- lists, tuples, sets, rows and dicts inside a cell: JSON lists/objects of converted values,
  at most :data:`MAX_ITEMS` items and :data:`MAX_DEPTH` levels deep;
- anything else: ``str(value)`` (cut like a string).

Converting may run model code (a ``__str__`` the model defined): call it inside the step.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Row
from sqlalchemy.orm import InstanceState

MAX_SAFE_INTEGER = 2**53 - 1  # the largest integer a JavaScript number holds exactly
MAX_ITEMS = 100  # items kept of a list or dict inside one cell
MAX_DEPTH = 4  # nesting levels kept inside one cell
DEFAULT_MAX_CHARS = 2_000  # characters kept of one string

# What a column holds, for charts: "number" (quantitative), "temporal", or "text"/"boolean"/
# "other" (nominal). A column's kind is its values' kind when they agree.
NUMBER, TEMPORAL, TEXT, BOOLEAN, OTHER = "number", "temporal", "text", "boolean", "other"


def json_safe(value: Any, max_chars: int = DEFAULT_MAX_CHARS, _depth: int = 0) -> Any:
    """``value`` as a JSON-safe value the page can show (see the module's rules)."""
    if value is None or value is True or value is False:
        return value
    kind = type(value)
    if kind is str:
        return _clip(value, max_chars)
    if kind is int:
        return value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else str(value)
    if kind is float:
        return value if math.isfinite(value) else str(value)
    if isinstance(value, enum.Enum):  # before int/str: IntEnum and StrEnum members are both
        return json_safe(value.value, max_chars, _depth + 1) if _depth < MAX_DEPTH else _clip(str(value.value), max_chars)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return json_safe(int(value), max_chars)
    if isinstance(value, float):
        return json_safe(float(value), max_chars)
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, str):
        return _clip(str.__str__(value), max_chars)
    if isinstance(value, (dt.date, dt.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$blob": value.nbytes if isinstance(value, memoryview) else len(value)}
    state = instance_state(value)
    if state is not None:
        return object_label(value, state)
    if _depth >= MAX_DEPTH:
        return _clip(_text(value), max_chars)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if len(out) >= MAX_ITEMS:
                out["…"] = f"{len(value) - MAX_ITEMS} more"
                break
            out[key if isinstance(key, str) else _text(key)] = json_safe(item, max_chars, _depth + 1)
        return out
    if isinstance(value, (list, tuple, set, frozenset, Row)):
        items = []
        for item in value:
            if len(items) >= MAX_ITEMS:
                items.append(f"… {len(value) - MAX_ITEMS} more")
                break
            items.append(json_safe(item, max_chars, _depth + 1))
        return items
    return _clip(_text(value), max_chars)


def _int(value: int, max_chars: int) -> tuple[Any, str]:
    return (value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else str(value)), NUMBER


def _float(value: float, max_chars: int) -> tuple[Any, str]:
    return (value if math.isfinite(value) else str(value)), NUMBER


def _decimal(value: Decimal, max_chars: int) -> tuple[Any, str]:
    return (float(value) if value.is_finite() else str(value)), NUMBER


# The common cell types, converted with one dict lookup (exact types only; subclasses such
# as enum members and ``bool`` take the general path).
_CELLS: dict[type, Callable[[Any, int], tuple[Any, str]]] = {
    type(None): lambda value, max_chars: (None, ""),
    bool: lambda value, max_chars: (value, BOOLEAN),
    str: lambda value, max_chars: (value if len(value) <= max_chars else _clip(value, max_chars), TEXT),
    int: _int,
    float: _float,
    Decimal: _decimal,
    dt.date: lambda value, max_chars: (value.isoformat(), TEMPORAL),
    dt.datetime: lambda value, max_chars: (value.isoformat(), TEMPORAL),
}


def convert(value: Any, max_chars: int = DEFAULT_MAX_CHARS) -> tuple[Any, str]:
    """``(json_safe(value), value_kind(value))``, fast for the common types of a table cell."""
    fast = _CELLS.get(type(value))
    if fast is not None:
        return fast(value, max_chars)
    return json_safe(value, max_chars), value_kind(value)


def is_plain(value: Any) -> bool:
    """True for the common cell types (never an ORM object): no need to inspect them."""
    return type(value) in _CELLS


def value_kind(value: Any) -> str:
    """What kind of data ``value`` is, for a chart's encoding (None has no kind: ``""``)."""
    if value is None:
        return ""
    if isinstance(value, enum.Enum):
        return TEXT  # categories, whatever their stored values are
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, (int, float, Decimal)):
        return NUMBER
    if isinstance(value, (dt.datetime, dt.date)):
        return TEMPORAL
    if isinstance(value, str):
        return TEXT
    return OTHER


def instance_state(value: Any) -> InstanceState[Any] | None:
    """The ORM state of a mapped object, or None for anything else."""
    if type(value) in _CELLS or isinstance(value, type):
        return None
    state = sa_inspect(value, raiseerr=False)
    return state if isinstance(state, InstanceState) else None


def object_label(value: Any, state: InstanceState[Any]) -> str:
    """A mapped object inside a cell: its class name and primary key, e.g. ``Book 12``."""
    name = type(value).__name__
    identity = state.identity
    if identity is None:
        return f"{name} (new)"
    key = identity[0] if len(identity) == 1 else identity
    return f"{name} {json_safe(key) if not isinstance(key, tuple) else tuple(json_safe(k) for k in key)}"


def _text(value: Any) -> str:
    """``str(value)``, or its type's name when its own ``__str__`` fails (it may be model code)."""
    try:
        text = str(value)
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 - a broken __str__ must not break the whole table
        return f"<{type(value).__name__}>"
    return str.__str__(text) if isinstance(text, str) else f"<{type(value).__name__}>"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"
