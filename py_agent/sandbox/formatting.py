"""Format templates: the attribute and index paths inside ``str.format`` fields.

``"{0.author.name}".format(book)`` reads ``book.author.name`` without an attribute node
in the code, so both layers look inside templates:

- the validator checks every string constant that parses as a template
  (:func:`template_paths`): each attribute in a field path obeys the same rules as an
  attribute written in code;
- the run-time layer formats with :class:`CheckedFormatter` whenever a template has such a
  path, reading each attribute through the same guard as code (name and value checks);
  templates without paths (``"{}: {:.2f}"``) go straight to ``str.format``.
"""

from __future__ import annotations

import _string  # the C parser behind str.format and string.Formatter
import string
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

FORMAT_METHODS = frozenset({"format", "format_map"})

# (field text, is_attribute, key) for each step of a field path.
PathStep = tuple[str, bool, "str | int"]


def template_paths(template: str) -> Iterator[PathStep]:
    """Each attribute/index step of every field of ``template`` (nested specs included).

    Raises ValueError if ``template`` is not a valid template (as ``str.format`` would).
    """
    for _literal, field, spec, _conversion in _string.formatter_parser(template):
        if field:
            _first, rest = _string.formatter_field_name_split(field)
            for is_attribute, key in rest:
                yield field, is_attribute, key
        if spec and "{" in spec:
            yield from template_paths(spec)


def has_paths(template: str) -> bool:
    """True if some field of ``template`` reads an attribute or an item (``{0.a}``, ``{x[k]}``)."""
    for _literal, field, spec, _conversion in _string.formatter_parser(template):
        if field and ("." in field or "[" in field):
            return True
        if spec and "{" in spec and has_paths(spec):
            return True
    return False


class CheckedFormatter(string.Formatter):
    """``str.format`` semantics, with every attribute of a field path read through ``read``.

    ``read(obj, name)`` is the run-time layer's attribute guard (it checks the name and
    the value, and raises AttributeError for what model code may not see); ``check_key``
    checks a string index key (``{0[key]}``) the same way as a string in code.
    """

    def __init__(self, read: Callable[[Any, str], Any], check_key: Callable[[str], None]) -> None:
        self.read = read
        self.check_key = check_key

    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[Any, Any]:
        first, rest = _string.formatter_field_name_split(field_name)
        obj = self.get_value(first, args, kwargs)
        for is_attribute, key in rest:
            if is_attribute:
                obj = self.read(obj, key)
            else:
                if isinstance(key, str):
                    self.check_key(key)
                obj = obj[key]
        return obj, first
