"""The run-time layer's checks on everything model code touches.

The executor rewrites model code so that every attribute read goes through
:meth:`Guards.attr` (see ``rewrite.py``). That one function is the boundary:

- the **receiver** must be harmless: no attribute of a frame, code object, traceback, raw
  database object (engine, connection, dialect, pool, execution context, DBAPI
  connection or cursor), module globals, a real (unviewed) module that is not allowed, or
  an object of the browser bridge (``js``/``pyodide``) is ever read, however model code
  came to hold it (a callback argument, a subscript, a tool's return value);
- the **value** read must be harmless too: such objects are refused; a real module comes
  back as its read-only view; ``str.format``, ``operator.attrgetter``/``methodcaller``,
  ``type`` and the getattr-family builtins come back as their checked versions;
  ``string.Formatter`` and metaclasses are refused.

The attribute *name* was already checked when the code was rewritten (same rules as the
validator); the checked builtins (``getattr``, ``setattr``, ``hasattr``, ``vars``, ``dir``,
``type``, ``__build_class__``) check names that are computed at run time.

Verdicts are per type and cached, so a step pays for a type check once; after that an
attribute read costs two set lookups on top of ``getattr``.
"""

from __future__ import annotations

import builtins
import decimal
import fractions
import io
import itertools
import math
import operator
import string
import sys
import types
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime, time, timedelta, timezone
from functools import partial
from typing import Any

from .formatting import FORMAT_METHODS, CheckedFormatter, has_paths
from .policy import Policy, dunder_advice, is_dunder, normalize_name
from .views import ModuleView


class Refused(AttributeError):
    """Model code asked for an attribute or a value it may not have.

    An AttributeError, so ``getattr(x, name, default)`` and ``hasattr`` behave as if the
    attribute were missing; the message says why and what to use instead.
    """


def exact_str(text: Any, what: str = "attribute name") -> str:
    """``text`` as an exact ``str`` (a str subclass could lie in its __hash__/__eq__)."""
    if type(text) is str:
        return text
    if isinstance(text, str):
        return str.__str__(text)
    raise TypeError(f"{what} must be a string, not {type(text).__name__}")


# -- what is harmless --------------------------------------------------------------------------

# Types whose instances are always harmless to read from and to hand out. Grows as
# verdicts are cached (model classes, mapped classes' instances, query results...).
_SAFE: set[type] = {
    str, int, float, complex, bool, type(None), bytes, bytearray, list, tuple, set, frozenset,
    range, slice, decimal.Decimal, fractions.Fraction, date, datetime, time, timedelta, timezone,
    uuid.UUID, types.GeneratorType, types.CoroutineType,
    types.AsyncGeneratorType, types.SimpleNamespace, partial, property, staticmethod, classmethod,
    io.StringIO, io.BytesIO, type(NotImplemented), type(Ellipsis), ModuleView,
}
_BASE_SAFE = frozenset(_SAFE)
_MAX_CACHED = 20_000  # types remembered (model classes come and go in a long-lived process)


def _remember_safe(t: type) -> None:
    if len(_SAFE) > _MAX_CACHED:
        _SAFE.intersection_update(_BASE_SAFE)  # in place: the guards hold this very set
    _SAFE.add(t)

# Values of these types are checked one by one (never cached in _SAFE): a function may
# come from an internal module, a builtin may be eval or a str's format method.
_PER_OBJECT = frozenset(
    {types.FunctionType, types.MethodType, types.BuiltinFunctionType, types.MethodDescriptorType}
)

_FRAME_ADVICE = "work with the values themselves instead"
_UNSAFE_BUILTIN_TYPES: dict[type, str] = {
    types.FrameType: "an interpreter frame",
    types.CodeType: "a code object",
    types.TracebackType: "a traceback (it leads to frames)",
    types.CellType: "a closure cell",
}

# Modules whose objects model code never handles (checked on the type's __module__).
_UNSAFE_TYPE_MODULES = frozenset(
    {
        "os", "posix", "nt", "sys", "subprocess", "_posixsubprocess", "socket", "_socket", "ssl",
        "_ssl", "ctypes", "_ctypes", "sqlite3", "_sqlite3", "js", "pyodide", "_pyodide",
        "_pyodide_core", "pyodide_js", "pyodide_http", "micropip", "emscripten", "asyncio",
        "_asyncio", "threading", "_thread", "multiprocessing", "concurrent", "importlib",
        "_frozen_importlib", "_frozen_importlib_external", "zipimport", "io", "_io", "gc",
        "inspect", "logging", "signal", "_signal", "mmap", "select", "selectors", "weakref",
        "_weakref", "_weakrefset", "atexit", "code", "codeop", "pdb", "bdb", "trace",
        "tracemalloc", "faulthandler", "marshal", "pickle", "_pickle", "copyreg", "shelve",
        "dbm", "tempfile", "pathlib", "shutil", "http", "urllib", "contextvars", "_contextvars",
        "psycopg", "psycopg2", "psycopg_pool", "asyncpg", "pg8000", "pymysql", "MySQLdb",
        "aiosqlite", "_string",
    }
)

_DATABASE_ADVICE = "use the provided `session` (session.execute, session.scalars, session.add)"
# Host types whose instances lead to the raw database, the interpreter or code that runs
# later: (type, what it is, what to write instead). Extended by register_unsafe_type().
_UNSAFE_BASES: list[tuple[type, str, str]] = [
    (string.Formatter, "a string.Formatter", "format with an f-string or str.format"),
]


def _register_sqlalchemy() -> None:
    from sqlalchemy.engine import Connection, Dialect, Engine, ExecutionContext
    from sqlalchemy.orm import registry
    from sqlalchemy.pool import ConnectionPoolEntry, Pool, PoolProxiedConnection

    for cls, what in (
        (Engine, "a database engine"),
        (Connection, "a raw database connection"),
        (Dialect, "a database dialect (it opens raw connections)"),
        (ExecutionContext, "a statement's execution context (it holds the raw cursor)"),
        (Pool, "a connection pool"),
        (PoolProxiedConnection, "a raw DBAPI connection"),
        (ConnectionPoolEntry, "a connection pool entry"),
    ):
        _UNSAFE_BASES.append((cls, what, _DATABASE_ADVICE))
    _UNSAFE_BASES.append(
        (registry, "the mapper registry", "the schema is fixed: query the existing mapped classes")
    )
    from sqlalchemy.types import PickleType

    _UNSAFE_BASES.append((PickleType, "a pickle column type (unpickling runs code)", "store text or JSON instead"))


_register_sqlalchemy()

_verdicts: dict[type, str | None] = {}  # type -> why its instances are refused (None: harmless)


def register_unsafe_type(cls: type, what: str, advice: str = _FRAME_ADVICE) -> None:
    """Refuse instances of ``cls`` (and subclasses) to model code, e.g. a bridge's proxies.

    ``what`` names the object for the refusal message (``"a JavaScript object"``). The
    browser adapter registers Pyodide's ``JsProxy`` this way; objects of the ``js`` and
    ``pyodide`` modules are refused in any case.
    """
    _UNSAFE_BASES.append((cls, what, advice))
    _verdicts.clear()
    _SAFE.difference_update([t for t in list(_SAFE) if issubclass(t, cls)])


def type_refusal(t: type) -> str | None:
    """Why instances of ``t`` may not be handled by model code (None: they may)."""
    try:
        return _verdicts[t]
    except KeyError:
        pass
    verdict = _type_refusal(t)
    if len(_verdicts) > _MAX_CACHED:
        _verdicts.clear()
    _verdicts[t] = verdict
    return verdict


def _type_refusal(t: type) -> str | None:
    for unsafe, what in _UNSAFE_BUILTIN_TYPES.items():
        if issubclass(t, unsafe):
            return f"{what}, which model code may not use; {_FRAME_ADVICE}"
    for base, what, advice in _UNSAFE_BASES:
        if issubclass(t, base):
            return f"{what}, which model code may not use; {advice}"
    if issubclass(t, BaseException):
        return None  # error objects are informative and hold nothing of the host
    module = getattr(t, "__module__", None)
    if isinstance(module, str) and (module in _UNSAFE_TYPE_MODULES or module.split(".")[0] in _UNSAFE_TYPE_MODULES):
        if t in (io.StringIO, io.BytesIO):
            return None
        top = module.split(".")[0].lstrip("_")
        what, advice = _MODULE_KINDS.get(top, ("an object of the '{module}' module ({name})", "work with plain Python values"))
        return f"{what.format(module=module, name=t.__qualname__)}, which model code may not use; {advice}"
    return None


# How to name objects of the refused modules, and what to do instead.
_MODULE_KINDS: dict[str, tuple[str, str]] = {
    **dict.fromkeys(
        ("js", "pyodide", "pyodide_core", "pyodide_js", "pyodide_http", "emscripten"),
        ("a JavaScript object ({name})", "work with Python values only (a tool should return plain data)"),
    ),
    **dict.fromkeys(
        ("sqlite3", "psycopg", "psycopg2", "psycopg_pool", "asyncpg", "pg8000", "pymysql", "MySQLdb", "aiosqlite"),
        ("a raw database object ({name})", _DATABASE_ADVICE),
    ),
}


# -- the guards of one namespace ---------------------------------------------------------------

_DANGEROUS_BUILTINS = frozenset(
    {"eval", "exec", "compile", "open", "input", "breakpoint", "help", "globals", "locals",
     "delattr", "__import__", "exit", "quit", "getattr", "setattr", "hasattr", "vars", "dir"}
)


class Guards:
    """The checks of one model namespace (one policy, one set of module views).

    ``view_of(module)`` returns the read-only view of an allowed module. The checked
    builtins and replacements are attributes (``getattr``, ``type``, ``attrgetter``...).
    """

    def __init__(self, policy: Policy, view_of: Callable[[types.ModuleType], Any]) -> None:
        self.policy = policy
        self.view_of = view_of
        self.formatter = CheckedFormatter(self.read, self.check_key)
        self._template_has_paths: dict[str, bool] = {}
        self._classes: dict[tuple[type, bool], tuple[Any, str | None]] = {}  # -> (replacement, refusal)
        self._modules: dict[str, bool] = {}  # module name -> blocked by the policy
        self.type = _make_guarded_type(self)
        self.attrgetter, self.methodcaller = _make_operator_replacements(self)
        self.format = _named(self.checked_format, "format")
        self.format_map = _named(self.checked_format_map, "format_map")
        self.replacements: dict[int, Any] = {
            id(builtins.getattr): self.getattr,
            id(builtins.setattr): self.setattr,
            id(builtins.hasattr): self.hasattr,
            id(builtins.vars): self.vars,
            id(builtins.dir): self.dir,
        }
        # Checked values that are not instances of a safe type, remembered one by one.
        self._safe_classes: set[type] = set()
        self._class_kinds: set[type] = set()  # the metaclasses of those classes
        self._safe_functions: set[Any] = set()
        self.attr = self._make_attr()

    def _make_attr(self) -> Callable[[Any, str], Any]:
        """The hot path, as a closure: no attribute lookups on self per call.

        Fast exits, in order: the receiver is of a safe type (or a class already checked,
        or a dict that is not a module's globals); the value is of a safe type, a C method
        bound to the receiver itself (other than str.format), a method whose function was
        already checked, or a class already checked. A module view's values were checked
        when the view first looked them up. Everything else goes to the full checks.
        """
        safe = _SAFE
        safe_classes = self._safe_classes
        class_kinds = self._class_kinds
        safe_functions = self._safe_functions
        receiver = self._receiver
        value_of = self._value
        view_type = ModuleView
        builtin_method = types.BuiltinMethodType
        method = types.MethodType
        format_names = FORMAT_METHODS

        def attr(obj: Any, name: str) -> Any:
            t = type(obj)
            if t not in safe:
                if t is dict:
                    if "__builtins__" in obj or "__spec__" in obj or "__loader__" in obj:
                        receiver(obj, name)
                elif not (t in class_kinds and obj in safe_classes):
                    receiver(obj, name)
            elif t is view_type:
                return getattr(obj, name)
            value = getattr(obj, name)
            kind = type(value)
            if kind in safe:
                return value
            if kind is builtin_method:
                if value.__self__ is obj and name not in format_names:
                    return value
            elif kind is method:
                if value.__func__ in safe_functions:
                    return value
            elif kind in class_kinds and value in safe_classes:
                return value
            return value_of(value, name)

        return attr

    # -- receivers and values -------------------------------------------------------------------
    def _receiver(self, obj: Any, name: str) -> None:
        """Raise Refused if model code may not read attributes of ``obj``."""
        t = type(obj)
        if isinstance(obj, type):
            _, refusal = self._class(obj)
            if refusal is not None:
                raise Refused(f"cannot read '{name}' of {refusal}")
            return
        if t is dict:
            if _is_namespace(obj):
                raise Refused(f"cannot read '{name}' of a module's global variables; refer to values directly")
            return
        if isinstance(obj, types.ModuleType):
            if _is_view(obj):
                return
            module = obj.__name__
            if not self.policy.is_allowed_module(module):
                raise Refused(f"cannot read '{name}' of the module '{module}', which model code may not use")
            hidden = self.policy.member_refusal(module, name)
            if hidden is not None:
                raise Refused(hidden)
            return
        if t is super:
            bound = obj.__self__
            self._receiver(bound, name) if bound is not None else None
            return
        if t in _PER_OBJECT:
            return  # harmless to read from; as values they are checked one by one
        refusal = type_refusal(t)
        if refusal is not None:
            raise Refused(f"cannot read '{name}' of {refusal}")
        _remember_safe(t)

    def _value(self, value: Any, name: str) -> Any:
        """``value`` (or its checked replacement) if model code may have it; else Refused."""
        t = type(value)
        if isinstance(value, type):
            replacement, refusal = self._class(value)
            if refusal is not None:
                raise Refused(f"'{name}' is {refusal}")
            return replacement
        if t is types.FunctionType or t is types.MethodType:
            # A function of an internal module (sqlalchemy.util's code generators, re-exported
            # elsewhere) is refused; methods of objects model code holds are fine, but a
            # classmethod is a function of its module too.
            function = value if t is types.FunctionType else value.__func__
            module = getattr(function, "__module__", None)
            internal = type(module) is str and self._blocked_module(module)
            if internal and (t is types.FunctionType or isinstance(value.__self__, type)):
                raise Refused(f"'{name}' is a function of the internal module '{module}', which model code may not use")
            if t is types.MethodType and not internal:
                self._safe_functions.add(function)
            return value
        if t is types.BuiltinFunctionType:
            return self._builtin(value, name)
        if t is types.MethodDescriptorType:
            if value.__name__ in FORMAT_METHODS and issubclass(value.__objclass__, str):
                return self.format if value.__name__ == "format" else self.format_map
            return value
        if t is dict:
            if _is_namespace(value):
                raise Refused(f"'{name}' is a module's global variables, which model code may not use; refer to values directly")
            return value
        if isinstance(value, types.ModuleType):
            if _is_view(value):
                return value
            if self.policy.is_allowed_module(value.__name__):
                return self.view_of(value)
            raise Refused(
                f"'{name}' is the module '{value.__name__}', which model code may not use; "
                f"allowed modules: {self.policy.allowed_list()}"
            )
        if t is super:
            self._receiver(value, name)
            return value
        refusal = type_refusal(t)
        if refusal is not None:
            raise Refused(f"'{name}' is {refusal}")
        _remember_safe(t)
        return value

    def _builtin(self, value: Any, name: str) -> Any:
        """A C function or bound C method: formatting and the getattr family are swapped."""
        own_name = value.__name__
        owner = value.__self__
        if own_name in FORMAT_METHODS and isinstance(owner, str):
            return partial(self.format if own_name == "format" else self.format_map, owner)
        if isinstance(owner, types.ModuleType):
            module = owner.__name__
            if module == "builtins":
                if own_name in _DANGEROUS_BUILTINS:
                    replacement = self.replacements.get(id(value))
                    if replacement is None:
                        raise Refused(f"'{name}' is the builtin {own_name}(), which model code may not use")
                    return replacement
            elif self._blocked_module(module) or self._blocked_module(module.lstrip("_")):
                raise Refused(f"'{name}' is a function of the module '{module}', which model code may not use")
        return value

    def _blocked_module(self, module: str) -> bool:
        blocked = self._modules.get(module)
        if blocked is None:
            blocked = self._modules[module] = self.policy.is_blocked_module(module)
        return blocked

    def _class(self, cls: type, found: bool = True) -> tuple[Any, str | None]:
        """(what model code gets for the class ``cls``, why it is refused or None).

        ``found``: the class was read as an attribute (not the ``type()`` of an object model
        code holds), so classes of internal modules are refused too.
        """
        key = (cls, found)
        try:
            return self._classes[key]
        except (KeyError, TypeError):
            pass
        verdict = self._class_verdict(cls, found)
        try:
            self._classes[key] = verdict
            if found and verdict[0] is cls and verdict[1] is None:
                self._safe_classes.add(cls)
                self._class_kinds.add(type(cls))
        except TypeError:  # an unhashable class (a metaclass with __eq__): not cached
            pass
        return verdict

    def class_of(self, obj: Any) -> Any:
        """``type(obj)`` for model code: the class, checked (``type`` itself as the guarded one)."""
        replacement, refusal = self._class(type(obj), False)
        if refusal is not None:
            raise Refused(f"type(x) is {refusal}")
        return replacement

    def _class_verdict(self, cls: type, found: bool) -> tuple[Any, str | None]:
        if cls is type:
            return self.type, None
        if cls is range:
            return GuardedRange, None
        if cls is operator.attrgetter:
            return self.attrgetter, None
        if cls is operator.methodcaller:
            return self.methodcaller, None
        if issubclass(cls, type):
            return None, (
                "a metaclass, which model code may not use; for a class's name use "
                "`SomeClass.__name__`, and write `class` statements to define classes"
            )
        refusal = type_refusal(cls)
        if refusal is not None:
            return None, f"the class of {refusal}"
        if cls in _SAFE:
            return cls, None  # io.StringIO lives in _io, but its instances are fine
        module = getattr(cls, "__module__", None)
        if found and type(module) is str and module != "builtins" and self._blocked_module(module):
            return None, f"a class of the internal module '{module}', which model code may not use"
        return cls, None

    def check(self, value: Any, name: str = "the value") -> Any:
        """``value`` or its replacement, if model code may have it (else Refused)."""
        if type(value) in _SAFE:
            return value
        return self._value(value, name)

    def check_result(self, value: Any) -> Any:
        """A host function's result: checked, and one level into plain containers."""
        value = self.check(value, "the result")
        kind = type(value)
        if kind is dict:
            items: Iterable[Any] = value.values()
        elif kind in (list, tuple, set, frozenset):
            items = value
        else:
            return value
        for item in items:
            if type(item) not in _SAFE and self.check(item, "an item of the result") is not item:
                raise Refused("the result holds a module, which model code may not use; return plain values")
        return value

    def check_values(self, *values: Any) -> bool:
        """For match statements: every value a class pattern captured must be harmless."""
        for value in values:
            self.check(value, "a value captured by the pattern")
        return True

    # -- names computed at run time ---------------------------------------------------------------
    def check_name(self, name: Any, *, store: bool = False) -> str:
        """``name`` as an exact str, if model code may use that attribute (else Refused)."""
        name = exact_str(name)
        refusal = self.policy.attribute_refusal(normalize_name(name), store)
        if refusal is not None:
            raise Refused(refusal[1])
        return name

    def read(self, obj: Any, name: Any) -> Any:
        """Read an attribute whose name is only known at run time."""
        return self.attr(obj, self.check_name(name))

    def check_key(self, key: str) -> None:
        """Index keys in format fields: no dunders (like strings in code)."""
        if is_dunder(normalize_name(key)):
            raise Refused(f"the format field key '{key}' is a dunder name: {dunder_advice(normalize_name(key))}")

    # -- checked builtins -------------------------------------------------------------------------
    def getattr(self, obj: Any, name: Any, *default: Any) -> Any:
        if len(default) > 1:
            raise TypeError(f"getattr expected at most 3 arguments, got {2 + len(default)}")
        name = self.check_name(name)
        if not default:
            return self.attr(obj, name)
        try:
            return self.attr(obj, name)
        except AttributeError:
            return default[0]

    def setattr(self, obj: Any, name: Any, value: Any) -> None:
        name = self.check_name(name, store=True)
        if type(obj) not in _SAFE:
            self._receiver(obj, name)
        setattr(obj, name, value)

    def hasattr(self, obj: Any, name: Any) -> bool:
        name = self.check_name(name)
        try:
            self.attr(obj, name)
        except AttributeError:
            return False
        return True

    def vars(self, *args: Any) -> dict[str, Any]:
        """A snapshot dict of the public attributes of ``obj`` (not a live namespace)."""
        if len(args) != 1:
            raise TypeError(
                "vars() needs exactly one object here: vars(obj); refer to your own variables by name"
            )
        obj = args[0]
        if type(obj) not in _SAFE:
            self._receiver(obj, "__dict__")
        if isinstance(obj, types.ModuleType):  # a view (others were refused above)
            items: Iterable[tuple[Any, Any]] = ((n, partial(getattr, obj, n)) for n in obj.__all__)
        else:
            items = ((k, partial(operator.getitem, v, k)) for v in (vars(obj),) for k in list(v))
        result: dict[str, Any] = {}
        for key, read in items:
            if not isinstance(key, str) or self.policy.attribute_refusal(normalize_name(key)) is not None:
                continue
            try:
                result[key] = self.check(read(), key)
            except (AttributeError, KeyError):
                continue  # refused or gone: left out, as a private name is
        return result

    def dir(self, *args: Any) -> list[str]:
        if len(args) != 1:
            raise TypeError("dir() needs exactly one object here: dir(obj); refer to your own variables by name")
        obj = args[0]
        if type(obj) not in _SAFE:
            self._receiver(obj, "__dir__")
        return sorted(
            n for n in dir(obj) if isinstance(n, str) and self.policy.attribute_refusal(normalize_name(n)) is None
        )

    # -- formatting ---------------------------------------------------------------------------------
    def _has_paths(self, template: str) -> bool:
        cache = self._template_has_paths
        found = cache.get(template)
        if found is None:
            if len(cache) > 512:
                cache.clear()
            found = cache[template] = has_paths(template)
        return found

    def checked_format(self, template: Any, /, *args: Any, **kwargs: Any) -> str:
        """``str.format`` whose field paths are read through the attribute guard."""
        template = exact_str(template, "the format template")
        if self._has_paths(template):
            return self.formatter.vformat(template, args, kwargs)
        return template.format(*args, **kwargs)

    def checked_format_map(self, template: Any, mapping: Mapping[str, Any], /) -> str:
        template = exact_str(template, "the format template")
        if self._has_paths(template):
            return self.formatter.vformat(template, (), mapping)
        return template.format_map(mapping)

    # -- classes and special methods ------------------------------------------------------------------
    def build_class(self, func: Any, name: str, /, *bases: Any, **kwds: Any) -> type:
        """``__build_class__`` for `class` statements: no metaclasses, no mapped bases, and
        only the special methods the validator allows."""
        if "metaclass" in kwds:
            raise TypeError(f"class {name}: metaclass= is not allowed; write a plain class (or a @dataclass)")
        for base in bases:
            if isinstance(base, type):
                _, refusal = self._class(base)
                if refusal is not None:
                    raise TypeError(f"class {name} cannot derive from {refusal}")
                if _is_mapped(base):
                    raise TypeError(
                        f"class {name} cannot derive from the mapped class {base.__name__}: the schema is fixed "
                        f"(new mapped classes would change it for everyone); write a plain class or a @dataclass"
                    )
        cls = builtins.__build_class__(func, name, *bases, **kwds)
        for key in _REFUSED_CLASS_DUNDERS.intersection(vars(cls)):
            raise TypeError(f"class {name} defines '{key}': {dunder_advice(key)}")
        return cls


# Special methods a model's class may not define (the validator refuses them too): hooks
# that run on attribute access or at class creation, and finalizers. Every model function
# also refuses to run outside its step, so this is the second line, not the only one.
_REFUSED_CLASS_DUNDERS = frozenset(
    {"__del__", "__getattr__", "__getattribute__", "__setattr__", "__delattr__", "__dir__",
     "__init_subclass__", "__set_name__", "__class_getitem__", "__mro_entries__", "__prepare__",
     "__instancecheck__", "__subclasscheck__", "__subclasshook__", "__get__", "__set__",
     "__delete__"}
)


def _named(function: Callable[..., Any], name: str) -> Callable[..., Any]:
    """``function`` (a bound method) under ``name`` for model code's tracebacks and repr."""

    def checked(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    checked.__name__ = checked.__qualname__ = name
    checked.__doc__ = getattr(str, name).__doc__
    return checked


def _is_namespace(mapping: dict[Any, Any]) -> bool:
    """A module's globals (or a namespace exec'd like one)."""
    return "__builtins__" in mapping or "__spec__" in mapping or "__loader__" in mapping


def _is_view(module: types.ModuleType) -> bool:
    return type(module) is ModuleView


def _is_mapped(cls: type) -> bool:
    """A SQLAlchemy mapped or declarative class (subclassing it maps a new class)."""
    orm = sys.modules.get("sqlalchemy.orm")
    if orm is None:
        return False
    bases = tuple(b for b in (getattr(orm, n, None) for n in ("DeclarativeBase", "DeclarativeBaseNoMeta", "MappedAsDataclass")) if b)
    if bases and issubclass(cls, bases):
        return True
    meta = getattr(orm, "DeclarativeMeta", None)
    if meta is not None and isinstance(cls, meta):
        return True
    from sqlalchemy import inspect as sa_inspect

    return sa_inspect(cls, raiseerr=False) is not None


def _make_guarded_type(guards: Guards) -> type:
    """``type`` for model code: one argument only, and the class it returns is checked."""

    class _TypeMeta(type):
        def __instancecheck__(cls, obj: Any) -> bool:
            return isinstance(obj, type)

        def __subclasscheck__(cls, sub: Any) -> bool:
            return issubclass(sub, type)

        def __repr__(cls) -> str:
            return "<class 'type'>"

    class GuardedType(metaclass=_TypeMeta):
        """type(x): the class of x."""

        def __new__(cls, *args: Any, **kwargs: Any) -> Any:
            if len(args) != 1 or kwargs:
                raise TypeError(
                    "type() takes one argument here: type(x) gives the class of x; "
                    "to define a class, write a `class` statement"
                )
            return guards.class_of(args[0])

    GuardedType.__name__ = GuardedType.__qualname__ = "type"
    GuardedType.__module__ = "builtins"
    return GuardedType


def _make_operator_replacements(guards: Guards) -> tuple[type, type]:
    """Checked ``operator.attrgetter`` and ``operator.methodcaller``."""

    class attrgetter:
        """attrgetter(attr, ...): a callable that reads those attributes (checked)."""

        __slots__ = ("_paths",)

        def __init__(self, attr: Any, *attrs: Any) -> None:
            self._paths = tuple(
                tuple(guards.check_name(part) for part in exact_str(a).split(".")) for a in (attr, *attrs)
            )

        def __call__(self, obj: Any) -> Any:
            values = []
            for path in self._paths:
                value = obj
                for part in path:
                    value = guards.attr(value, part)
                values.append(value)
            return values[0] if len(values) == 1 else tuple(values)

        def __repr__(self) -> str:
            return f"operator.attrgetter({', '.join(repr('.'.join(p)) for p in self._paths)})"

    class methodcaller:
        """methodcaller(name, *args, **kwargs): a callable that calls that method (checked)."""

        __slots__ = ("_name", "_args", "_kwargs")

        def __init__(self, name: Any, /, *args: Any, **kwargs: Any) -> None:
            self._name = guards.check_name(name)
            self._args = args
            self._kwargs = kwargs

        def __call__(self, obj: Any) -> Any:
            return guards.attr(obj, self._name)(*self._args, **self._kwargs)

        def __repr__(self) -> str:
            return f"operator.methodcaller({self._name!r}, ...)"

    for cls in (attrgetter, methodcaller):
        cls.__module__ = "operator"
    return attrgetter, methodcaller


# -- work that C code would do without ever checking the time limit ----------------------------
#
# A step's time limit is checked between bytecodes, so a single long C call cannot be stopped
# in the process (in the browser the page's watchdog terminates the worker; on a server the
# process workspace kills its worker). The run-time layer removes the easy ways to start one:
# huge integer powers, factorials and binomials, and C loops over ranges or infinite
# iterators (``sum(range(10**12))``, ``list(itertools.repeat(1))``). Large ranges and the
# infinite iterators are handed out as Python-level iterators, which the limit can stop.

MAX_POWER_BITS = 2_000_000  # a result of ~600,000 digits: well under a second
MAX_FACTORIAL = 100_000
LONG_RANGE = 10_000_000  # longer ranges iterate in Python (and can be stopped)


class TooLarge(ValueError):
    """A computation that would run in C for too long to be stopped."""


def checked_pow(base: Any, exponent: Any, modulo: Any = None) -> Any:
    """``pow`` and ``**`` for model code: integer results of millions of digits are refused."""
    if modulo is None and type(base) in (int, bool) and type(exponent) in (int, bool) and exponent > 0:
        magnitude = abs(base)
        if magnitude > 1 and magnitude.bit_length() * exponent > MAX_POWER_BITS:
            raise TooLarge(
                f"{base} ** {exponent} would have more than {MAX_POWER_BITS // 3:,} digits; "
                "work with floats (float(base) ** exponent), logarithms (math.log) or smaller numbers"
            )
    return pow(base, exponent) if modulo is None else pow(base, exponent, modulo)


def _bounded(function: Callable[..., Any], name: str) -> Callable[..., Any]:
    def bounded(*args: Any) -> Any:
        if any(type(a) is int and a > MAX_FACTORIAL for a in args):
            raise TooLarge(f"math.{name}() of numbers above {MAX_FACTORIAL:,} is not available (it could not be stopped)")
        return function(*args)

    bounded.__name__ = bounded.__qualname__ = name
    bounded.__doc__ = function.__doc__
    return bounded


class _LongRange:
    """A range too long for C loops: the same numbers, produced by a generator."""

    __slots__ = ("_range",)

    def __init__(self, real: range) -> None:
        self._range = real

    def __iter__(self) -> Iterator[int]:
        for value in self._range:  # one bytecode loop per item: the time limit applies
            yield value

    def __reversed__(self) -> Iterator[int]:
        for value in reversed(self._range):
            yield value

    def __len__(self) -> int:
        return len(self._range)

    def __getitem__(self, index: Any) -> Any:
        item = self._range[index]
        return _LongRange(item) if type(item) is range and len(item) > LONG_RANGE else item

    def __contains__(self, value: Any) -> bool:
        return value in self._range

    def __eq__(self, other: Any) -> bool:
        return self._range == (other._range if type(other) is _LongRange else other)

    def __hash__(self) -> int:
        return hash(self._range)

    def __repr__(self) -> str:
        return repr(self._range)

    def count(self, value: Any) -> int:
        return self._range.count(value)

    def index(self, value: Any) -> int:
        return self._range.index(value)

    @property
    def start(self) -> int:
        return self._range.start

    @property
    def stop(self) -> int:
        return self._range.stop

    @property
    def step(self) -> int:
        return self._range.step


class _RangeMeta(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, (range, _LongRange))

    def __repr__(cls) -> str:
        return "<class 'range'>"


class GuardedRange(metaclass=_RangeMeta):
    """range(stop) / range(start, stop[, step]), as Python's; very long ones iterate in Python."""

    def __new__(cls, *args: Any) -> Any:
        real = range(*args)
        return _LongRange(real) if len(real) > LONG_RANGE else real


GuardedRange.__name__ = GuardedRange.__qualname__ = "range"
GuardedRange.__module__ = "builtins"


def _count(start: Any = 0, step: Any = 1) -> Iterator[Any]:
    """itertools.count, produced in Python (so a C loop over it can be stopped)."""
    value = start
    while True:
        yield value
        value += step


def _cycle(iterable: Iterable[Any]) -> Iterator[Any]:
    """itertools.cycle, produced in Python."""
    saved = []
    for item in iterable:
        yield item
        saved.append(item)
    while saved:
        yield from saved


def _repeat(obj: Any, times: Any = None) -> Iterator[Any]:
    """itertools.repeat, produced in Python when it would never end (or end very late)."""
    if times is not None and times <= LONG_RANGE:
        return itertools.repeat(obj, times)
    return _repeat_forever(obj, times)


def _repeat_forever(obj: Any, times: Any) -> Iterator[Any]:
    if times is None:
        while True:
            yield obj
    for _ in range(times):
        yield obj


# (module, member) -> what model code gets instead.
MEMBER_REPLACEMENTS: dict[tuple[str, str], Any] = {
    ("itertools", "count"): _count,
    ("itertools", "cycle"): _cycle,
    ("itertools", "repeat"): _repeat,
    ("math", "factorial"): _bounded(math.factorial, "factorial"),
    ("math", "comb"): _bounded(math.comb, "comb"),
    ("math", "perm"): _bounded(math.perm, "perm"),
}
