"""The run-time layer: what model code runs with, checked while it runs.

Model code is exec'd with ``{"__builtins__": safe_builtins(policy), ...}`` as its globals.
With the run-time layer on (the default), that table belongs to a :class:`RuntimeLayer`,
which holds together:

- **curated builtins**: nothing that runs strings as code, touches files or the console
  (``eval``, ``exec``, ``compile``, ``open``, ``input``, ``globals``...); checked versions of
  ``getattr``, ``setattr``, ``hasattr``, ``vars``, ``dir``, one-argument ``type`` and
  ``__build_class__`` (``guards.py``);
- a **guarded importer** (:meth:`RuntimeLayer.import_`) that enforces the policy's
  allow-list however the import is spelled (``import x``, ``from x import y as z``,
  ``__import__("x")``) and hands out read-only module views (``views.py``);
- the **compile step** (:meth:`RuntimeLayer.compile`, ``rewrite.py``): every attribute read
  of the model's code goes through the guard, dunder identifiers are refused, and every
  function the model defines refuses to run outside its step (:meth:`RuntimeLayer.step`).

Together these hold without the validator: the attribute guard checks what each read
starts from and what it returns, so the object graph (frames, module globals, the raw
connection, the browser bridge) stays out of reach however an object was obtained.
With the run-time layer off (``Policy(runtime=False)``, tests only) model code gets
Python's own builtins and relies on the validator alone. SECURITY.md says what each layer
promises and what it does not.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import functools
import inspect
import sys
import types
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

from .guards import MEMBER_REPLACEMENTS, GuardedRange, Guards, checked_pow, register_unsafe_type
from .policy import Policy, normalize_name
from .rewrite import ATTR, POW, STEP, VALUES, prepared_problems, rewrite
from .source import ValidationError, parse
from .views import ModuleView

__all__ = [
    "LAYER_KEY",
    "SANDBOX_MODULE_NAME",
    "ModuleView",
    "RuntimeLayer",
    "guarded_import",
    "register_unsafe_type",
    "runtime_layer",
    "safe_builtins",
]

# Builtins that are safe to hand to model code: pure functions over values, constructors
# of plain data types, and the class machinery that `class` statements need.
#
# Left out on purpose: exec, eval, compile, open, __import__ (replaced), delattr, globals,
# locals, breakpoint, input, help, memoryview, exit, quit, copyright/credits/license; and
# getattr, setattr, hasattr, vars, dir, type and __build_class__, which are replaced by
# checked versions. `object` stays: what it offers without dunders is harmless, and its
# dunders are refused by the rewrite.
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

# Where the builtins table keeps its layer: not an identifier, so no code can name it.
LAYER_KEY = "sandbox layer"


def _outside_step() -> None:
    raise RuntimeError(
        "model code can only run during its own step: a function, method or generator defined "
        "by model code was called later by other code (for example by a database flush); "
        "do that work inside the step instead"
    )


class RuntimeLayer:
    """The run-time layer of one model namespace: builtins, importer, views, compile step."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._views: dict[str, ModuleView] = {}
        self.guards = Guards(policy, self.view_of)
        self._depth = 0
        self._wrapped: dict[int, Callable[..., Any]] = {}  # id -> our wrapper (kept alive here)
        self.builtins = self._make_builtins()

    # -- builtins ----------------------------------------------------------------------------------
    def _make_builtins(self) -> dict[str, object]:
        guards = self.guards
        table: dict[str, object] = {name: getattr(builtins, name) for name in _SAFE_NAMES}
        for name, value in vars(builtins).items():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and name not in _WITHHELD_EXCEPTIONS
                and not name.startswith("_")  # e.g. 3.13's _IncompleteInputError
            ):
                table[name] = value
        table.update(
            {
                "getattr": guards.getattr,
                "setattr": guards.setattr,
                "hasattr": guards.hasattr,
                "vars": guards.vars,
                "dir": guards.dir,
                "type": guards.type,
                "range": GuardedRange,
                "pow": checked_pow,
                "__build_class__": guards.build_class,
                "__import__": self.import_,
                # `class` bodies read __name__ (for __module__); globals win when they define it.
                "__name__": SANDBOX_MODULE_NAME,
                ATTR: guards.attr,
                STEP: _outside_step,
                VALUES: guards.check_values,
                POW: checked_pow,
                LAYER_KEY: self,
            }
        )
        return table

    # -- what the host hands over -------------------------------------------------------------------
    def guard_namespace(self, namespace: MutableMapping[str, Any]) -> None:
        """Check what the host's functions in ``namespace`` return (tools, helpers, ``disclose``).

        Each host function (not one model code defined, not a class) is replaced by a wrapper
        that passes its result through the value check, one level into lists, tuples, sets
        and dict values: a tool that returns a frame, a module's globals, a raw connection or
        a JavaScript object hands model code an error instead. Cheap to call every step.
        """
        wrapped = self._wrapped
        for name, value in list(namespace.items()):
            kind = type(value)
            if kind not in _HOST_FUNCTIONS or id(value) in wrapped or name.startswith("__"):
                continue
            function = value.__func__ if kind is types.MethodType else value
            if getattr(function, "__globals__", None) is namespace:
                continue  # defined by model code
            wrapper = self._checked(value)
            wrapped[id(wrapper)] = wrapper
            namespace[name] = wrapper

    def _checked(self, function: Callable[..., Any]) -> Callable[..., Any]:
        check = self.guards.check_result
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def checked_async(*args: Any, **kwargs: Any) -> Any:
                return check(await function(*args, **kwargs))

            return checked_async

        @functools.wraps(function)
        def checked(*args: Any, **kwargs: Any) -> Any:
            return check(function(*args, **kwargs))

        return checked

    # -- imports -------------------------------------------------------------------------------------
    def view_of(self, module: types.ModuleType) -> ModuleView:
        view = self._views.get(module.__name__)
        if view is None:
            view = self._views[module.__name__] = ModuleView(module, self.policy, self.guards.check, MEMBER_REPLACEMENTS)
        return view

    def _refuse(self, name: str) -> None:
        refusal = self.policy.import_refusal(name)
        if refusal is not None:
            raise ImportError(refusal[1], name=name)

    def import_(
        self,
        name: str,
        globals: object = None,
        locals: object = None,
        fromlist: Any = (),
        level: int = 0,
    ) -> ModuleView | None:
        """``__import__`` for model code: the policy's allow-list, and views of modules.

        Refuses relative imports, any module (or submodule, or ``from x import y`` where
        ``x.y`` is a blocked module) the policy does not allow, and always the policy's
        blocked modules, with an ImportError that names the allow-list.
        """
        if not isinstance(name, str):
            raise TypeError("module name must be a string")
        if level != 0:
            raise ImportError(
                "relative imports are not allowed; import allowed modules by their full "
                f"name. Allowed modules: {self.policy.allowed_list()}.",
                name=name,
            )
        name = normalize_name(str.__str__(name))
        if type(fromlist) is list:
            # C code calling PyImport_Import on the model's behalf: it looks __import__ up
            # in the *current* globals' builtins (ours) and passes a list as fromlist, while
            # `import` statements pass a tuple or None. E.g. datetime.date.today() imports
            # `time`. The import runs, but nothing is handed back: PyImport_Import ignores
            # the result and reads sys.modules itself, so code that calls __import__ this
            # way directly gets no module out of it.
            builtins.__import__(name, None, None, [], 0)
            return None
        self._refuse(name)
        items = [normalize_name(str.__str__(i)) for i in fromlist or () if isinstance(i, str)]
        for item in items:
            if item != "*":
                self._refuse(f"{name}.{item}")  # `from sqlalchemy import util`
        # Only the module name reaches the real import system: no globals, so nothing
        # the model controls can steer it to a package-relative path.
        module = builtins.__import__(name, None, None, tuple(items), 0)
        view = self.view_of(module)
        for item in items:
            if item == "*":
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

    # -- the compile step ----------------------------------------------------------------------------
    def compile(self, code: str, filename: str = "<model>", tree: ast.Module | None = None, *, flags: int = 0) -> types.CodeType:
        """Rewrite and compile model code (``tree`` is its parsed form, modified in place;
        a tree ``check_parsed`` already rewrote for this policy is compiled as it is).

        Raises :class:`ValidationError` with what the run-time layer refuses statically
        (dunder identifiers, refused attribute names), and SyntaxError as compile() would.
        """
        problems = None
        if tree is not None:
            try:
                problems = prepared_problems(tree, self.policy)  # rewritten with the validator's walk
            except ValueError:
                tree = None  # prepared under another policy: start again from the source
        if tree is None:
            tree, problem = parse(code, filename)
            if problem is not None:
                raise ValidationError([problem])
        if problems is None:
            problems = self.prepare(tree, code)
        if problems:
            raise ValidationError(problems)
        return compile(tree, filename, "exec", flags=flags, dont_inherit=True)

    def prepare(self, tree: ast.Module, code: str = "") -> list[Any]:
        """Rewrite ``tree`` in place; return what the run-time layer refuses in it."""
        return rewrite(tree, self.policy, code)

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        """While open, functions defined by model code may run (they refuse otherwise)."""
        table = self.builtins
        self._depth += 1
        table[STEP] = bool  # a C no-op: __sandbox_step__() costs one call
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                table[STEP] = _outside_step


_HOST_FUNCTIONS = frozenset({types.FunctionType, types.MethodType, types.BuiltinFunctionType})


def safe_builtins(policy: Policy) -> dict[str, object]:
    """A fresh ``__builtins__`` table for exec'ing model code under ``policy``.

    With the run-time layer on, the table of a new :class:`RuntimeLayer`; with it off
    (tests of the validator alone), a copy of Python's own builtins.
    """
    if not policy.runtime:
        return dict(vars(builtins))
    return RuntimeLayer(policy).builtins


def runtime_layer(namespace: MutableMapping[str, Any]) -> RuntimeLayer | None:
    """The run-time layer whose builtins ``namespace`` runs with, if any."""
    table = namespace.get("__builtins__")
    layer = table.get(LAYER_KEY) if isinstance(table, dict) else None
    return layer if isinstance(layer, RuntimeLayer) else None


def guarded_import(policy: Policy) -> Callable[..., Any]:
    """A stand-alone ``__import__`` replacement that enforces ``policy`` (with its own views)."""
    return RuntimeLayer(policy).import_
