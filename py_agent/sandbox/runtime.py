"""The run-time layer for model-written code: curated builtins and a guarded importer.

Model code is exec'd with ``{"__builtins__": safe_builtins(policy), ...}`` as its globals.
That dict leaves out everything that runs strings as code, touches files or the console, or
looks attributes up by computed name (``eval``, ``exec``, ``compile``, ``open``, ``getattr``,
``vars``, ``type``, ...), and its ``__import__`` is :func:`guarded_import`, which enforces the
policy's allow-list however the import is spelled (``import x``, ``from x import y``,
``__import__("x")``, ``__builtins__["__import__"]("x")``).

Imported modules are handed out as read-only *views* (:class:`ModuleView`) that hide private
members, the policy's blocked attributes and any module that is not itself allowed, because
allowed modules re-export dangerous ones under ordinary names (``random._os``,
``typing.sys``, ``json.codecs``, ``enum.bltns``).

This layer is NOT a complete sandbox on its own. Python's object graph has escapes that no
builtins dict can close: ``().__class__.__base__.__subclasses__()`` reaches every class in
the process, a function's ``__globals__`` reaches its module, a generator's ``gi_frame``
reaches frames and their real builtins, and a view's real module sits one dunder away. The
AST validator (``py_agent.sandbox.validator``) refuses those spellings before anything runs; in the
browser, the worker's Content-Security-Policy denies the network; and the database work runs
in a transaction that is only committed on approval. Each layer covers gaps in the others;
none is meant to be the only one.
"""

from __future__ import annotations

import builtins
import sys
import types
from collections.abc import Callable
from typing import Any

from .validator import ALLOWED_MODULE_MEMBERS, Policy, normalize_name

# Builtins that are safe to hand to model code: pure functions over values, constructors
# of plain data types, and the class machinery that `class` statements need.
#
# Left out on purpose: exec, eval, compile, open, __import__ (replaced), getattr, setattr,
# delattr, hasattr (getattr-family; hasattr also runs properties), globals, locals, vars,
# dir, breakpoint, input, help, memoryview, exit, quit, copyright/credits/license, and
# `type`: type(x) hands out the class of anything (and with it mro() and the constructors
# of internal types), and type(name, bases, ns) builds classes with arbitrary dunders.
# `object` stays: everything it offers without dunders is harmless, and what it offers
# with dunders (object.__subclasses__) is reachable from any literal anyway, e.g.
# `().__class__`; the validator is what stops dunders.
_SAFE_NAMES = (
    "abs", "aiter", "all", "anext", "any", "ascii", "bin", "bool", "bytearray", "bytes",
    "callable", "chr", "classmethod", "complex", "dict", "divmod", "enumerate", "filter",
    "float", "format", "frozenset", "hash", "hex", "id", "int", "isinstance", "issubclass",
    "iter", "len", "list", "map", "max", "min", "next", "object", "oct", "ord", "pow",
    "print", "property", "range", "repr", "reversed", "round", "set", "slice", "sorted",
    "staticmethod", "str", "sum", "super", "tuple", "zip",
    "True", "False", "None", "NotImplemented", "Ellipsis",
)

# Interpreter-control exceptions that model code should neither raise nor catch by name:
# SystemExit would end a CPython host; KeyboardInterrupt is how runaway code is stopped.
_WITHHELD_EXCEPTIONS = frozenset({"SystemExit", "KeyboardInterrupt"})

# The module name classes defined by model code get (``X.__module__``) when the namespace
# sets no ``__name__``. It must not name a module in sys.modules: SQLAlchemy and typing look
# the class's module up there and evaluate string annotations in its (real) globals.
SANDBOX_MODULE_NAME = "agent"


def safe_builtins(policy: Policy) -> dict[str, object]:
    """A fresh ``__builtins__`` dict for exec'ing model code under ``policy``."""
    table: dict[str, object] = {name: getattr(builtins, name) for name in _SAFE_NAMES}
    for name, value in vars(builtins).items():
        if (
            isinstance(value, type)
            and issubclass(value, BaseException)
            and name not in _WITHHELD_EXCEPTIONS
            and not name.startswith("_")  # e.g. 3.13's _IncompleteInputError
        ):
            table[name] = value
    table["__build_class__"] = builtins.__build_class__  # `class` statements
    table["__import__"] = guarded_import(policy)
    # `class` bodies read __name__ (for __module__); globals win when they define it.
    table["__name__"] = SANDBOX_MODULE_NAME
    return table


def guarded_import(policy: Policy) -> Callable[..., Any]:
    """An ``__import__`` replacement that enforces ``policy`` at run time.

    Refuses relative imports, any module (or submodule, or ``from x import y`` where
    ``x.y`` is a blocked module) the policy does not allow, and always the policy's blocked
    modules, with an ImportError that names the allow-list. Allowed modules are returned
    as :class:`ModuleView` objects.
    """
    views: dict[str, ModuleView] = {}

    def view_of(module: types.ModuleType) -> ModuleView:
        view = views.get(module.__name__)
        if view is None:
            view = views[module.__name__] = ModuleView(module, policy, view_of)
        return view

    def refuse(name: str) -> None:
        refusal = policy.import_refusal(name)
        if refusal is not None:
            raise ImportError(refusal[1], name=name)

    def __import__(
        name: str,
        globals: object = None,
        locals: object = None,
        fromlist: Any = (),
        level: int = 0,
    ) -> ModuleView | None:
        if not isinstance(name, str):
            raise TypeError("module name must be a string")
        if level != 0:
            raise ImportError(
                "relative imports are not allowed; import allowed modules by their full "
                f"name. Allowed modules: {policy.allowed_list()}.",
                name=name,
            )
        name = normalize_name(name)
        if type(fromlist) is list:
            # C code calling PyImport_Import on the model's behalf: it looks __import__ up
            # in the *current* globals' builtins (ours) and passes a list as fromlist, while
            # `import` statements pass a tuple or None. E.g. datetime.date.today() imports
            # `time`. The import runs, but nothing is handed back: PyImport_Import ignores
            # the result and reads sys.modules itself, so code that calls __import__ this
            # way directly gets no module out of it.
            builtins.__import__(name, None, None, [], 0)
            return None
        refuse(name)
        for item in fromlist or ():
            if isinstance(item, str) and item != "*":
                refuse(f"{name}.{normalize_name(item)}")  # `from sqlalchemy import util`
        # Only the module name reaches the real import system: no globals, so nothing
        # the model controls can steer it to a package-relative path.
        module = builtins.__import__(name, None, None, tuple(fromlist or ()), 0)
        view = view_of(module)
        for item in fromlist or ():
            if not isinstance(item, str) or item == "*":
                continue
            try:
                getattr(view, item)
            except AttributeError as err:
                # `from m import x` falls back to sys.modules["m.x"] when the attribute
                # lookup fails, which would hand out a real (unviewed) module: refuse here.
                # This also says why (Python would only say "cannot import name").
                # Names that exist nowhere are left to Python's own error.
                if hasattr(module, item) or f"{module.__name__}.{item}" in sys.modules:
                    raise ImportError(str(err), name=name) from None
        return view

    return __import__


class ModuleView(types.ModuleType):
    """A read-only view of an allowed module for model code.

    Attribute lookups go to the real module, except for private names (``_os``), the
    policy's blocked attributes (``get_type_hints``, ``relationship``, ...) and modules the
    policy does not allow (``typing.sys``); allowed submodules come back as views too.
    A convenience layer, not a boundary: see the module docstring.
    """

    def __init__(
        self,
        module: types.ModuleType,
        policy: Policy,
        view_of: Callable[[types.ModuleType], ModuleView],
    ) -> None:
        super().__init__(module.__name__, module.__doc__)
        # Written through the base class because our __setattr__ refuses writes.
        types.ModuleType.__setattr__(self, "_ModuleView__target", (module, policy, view_of))

    def __getattr__(self, name: str) -> Any:
        # Only called for names not already in the view's own dict (__name__, __doc__,
        # and values cached below).
        module, policy, view_of = self.__target
        if name == "__all__":
            return self._public_names()
        hidden = self._hidden_reason(name)
        if hidden is not None:
            raise AttributeError(f"{hidden} (module '{module.__name__}')", name=name, obj=self)
        value = getattr(module, name)
        if isinstance(value, types.ModuleType):
            if not policy.is_allowed_module(value.__name__):
                raise AttributeError(
                    f"'{module.__name__}.{name}' is the module '{value.__name__}', which is "
                    f"not allowed; allowed modules: {policy.allowed_list()}.",
                    name=name,
                    obj=self,
                )
            value = view_of(value)
        # Cache, so later lookups are plain dict hits.
        types.ModuleType.__setattr__(self, name, value)
        return value

    def _hidden_reason(self, name: str) -> str | None:
        """Why model code may not read ``name`` from a module (same rules as the validator)."""
        module, policy, _ = self.__target
        if (module.__name__, name) in ALLOWED_MODULE_MEMBERS:
            return None
        refusal = policy.attribute_refusal(name)
        return None if refusal is None else refusal[1]

    def _public_names(self) -> list[str]:
        """What ``from module import *`` may bind: public names that the view exposes."""
        module = self.__target[0]
        names = getattr(module, "__all__", None)
        if names is None:
            names = [n for n in vars(module) if not n.startswith("_")]
        result = []
        for name in names:
            if self._hidden_reason(name) is None:
                value = getattr(module, name, None)
                if not isinstance(value, types.ModuleType) or self.__target[1].is_allowed_module(value.__name__):
                    result.append(name)
        return result

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"module '{self.__name__}' is read-only for model code")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"module '{self.__name__}' is read-only for model code")

    def __repr__(self) -> str:
        return f"<module '{self.__name__}'>"
