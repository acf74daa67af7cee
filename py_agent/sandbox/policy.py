"""What model code may use: the rules that both sandbox layers apply.

The validator (``validator.py``) applies these rules to the source before anything runs;
the run-time layer (``runtime.py``, ``guards.py``, ``rewrite.py``) applies the same rules to
the names and values the code actually touches. Keeping the rules here, in one place, is
what makes the two layers agree: a name is refused for the same reason, with the same
advice, whichever layer sees it first.

Every refusal message says what to write instead: a model reads these messages and
rewrites its code, so "not allowed" without an alternative only costs another step.

Layers can be switched off, for tests only, without editing code:
``Policy(validator=False)`` / ``Policy(runtime=False)``, or the environment variable
``PY_AGENT_SANDBOX_OFF=validator`` (or ``runtime``) read when a Policy is created.
At least one layer is always on.
"""

from __future__ import annotations

import ast
import os
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# -- imports ---------------------------------------------------------------------------------

DEFAULT_ALLOWED_IMPORTS: frozenset[str] = frozenset(
    {
        "base64",  # pure encoding functions
        "bisect",
        "calendar",
        "collections",
        "copy",  # copy/deepcopy of plain data; its module-level dispatch table is hidden
        "csv",  # CSV export into io.StringIO; the global dialect registry is hidden
        "dataclasses",
        "datetime",
        "decimal",
        "difflib",  # pure text comparison
        "enum",
        "fractions",
        "functools",
        "hashlib",  # digests of bytes; no file access
        "heapq",
        "html",  # escape/unescape
        "io",  # only StringIO and BytesIO (in-memory buffers): see MODULE_ONLY
        "itertools",
        "json",
        "math",
        "numbers",  # abstract number classes for isinstance()
        "operator",  # attrgetter/methodcaller are replaced by checked versions at run time
        "pprint",
        "random",
        "re",
        "sqlalchemy",
        "statistics",
        "string",  # string.Formatter is hidden (it looks attributes up by computed name)
        "textwrap",
        "typing",
        "unicodedata",
        "uuid",
        "zoneinfo",
    }
)

DEFAULT_BLOCKED_MODULES: frozenset[str] = frozenset(
    {
        # Interpreter and import machinery.
        "sys", "builtins", "importlib", "imp", "_imp", "zipimport", "pkgutil", "runpy",
        "inspect", "gc", "types", "code", "codeop", "ctypes", "_ctypes", "cffi", "marshal",
        "pickle", "_pickle", "copyreg", "shelve", "dbm", "annotationlib", "site", "sysconfig",
        "linecache", "traceback", "tracemalloc", "faulthandler", "atexit", "pdb", "bdb",
        "trace", "dis", "ast", "_frozen_importlib", "_frozen_importlib_external",
        "weakref", "_weakref", "_string", "contextvars", "_contextvars",
        # Operating system, files, processes, threads.
        "os", "posix", "nt", "posixpath", "ntpath", "genericpath", "_posixsubprocess",
        "subprocess", "pty", "tty", "fcntl", "resource", "signal", "mmap", "platform",
        "pathlib", "shutil", "tempfile", "glob", "fileinput", "_io", "codecs",
        "zipfile", "tarfile", "logging", "threading", "_thread", "multiprocessing",
        "concurrent", "asyncio", "selectors", "select", "contextlib",
        # Network.
        "socket", "ssl", "socketserver", "urllib", "http", "ftplib", "smtplib", "poplib",
        "imaplib", "xmlrpc", "webbrowser", "email",
        # Browser (Pyodide) bridges and package installation.
        "js", "pyodide", "pyodide_js", "_pyodide", "_pyodide_core", "pyodide_http",
        "emscripten", "micropip", "pip", "setuptools", "ensurepip", "venv",
        # Raw database access bypasses the managed transaction; SQLAlchemy internals hold
        # code generators (sqlalchemy.util.attrsetter execs its argument); event listeners
        # would run model code later, outside its step.
        "sqlite3", "_sqlite3", "sqlalchemy.util", "sqlalchemy.testing", "sqlalchemy.event",
        "sqlalchemy.sql.coercions", "sqlalchemy.orm.clsregistry", "sqlalchemy.ext.serializer",
        "sqlalchemy.ext.declarative", "sqlalchemy.ext.compiler", "json.tool", "argparse",
        *(f"sqlalchemy.dialects.{d}.provision" for d in ("sqlite", "postgresql", "mysql", "oracle", "mssql")),
    }
)

# What to use instead of a blocked module (the most specific entry wins).
MODULE_ADVICE: dict[str, str] = {
    "sqlalchemy.event": "event listeners would run your code later, outside its step; do the work directly in this step's code",
    "sqlite3": "it reaches the raw database outside the managed transaction; use `session` (session.execute(text(...)) for SQL)",
    "pickle": "unpickling runs code; use json for data",
    "inspect": "for a mapped class use `from sqlalchemy import inspect` and `inspect(Model).columns`",
    "logging": "print() what you want to report",
    "contextlib": "write try/finally (or a class with __enter__/__exit__) instead",
    "types": "test types with isinstance(x, SomeClass)",
    "weakref": "finalizers would run after the step; clean up explicitly in your code",
    "atexit": "exit hooks would run after the step; do the work now",
    "io": "only io.StringIO and io.BytesIO are available, and only with the run-time layer",
    **dict.fromkeys(("threading", "_thread", "asyncio", "concurrent", "multiprocessing"),
                    "there are no threads or event loops to use; call async tools with `await` directly"),
    **dict.fromkeys(("os", "sys", "pathlib", "shutil", "subprocess", "tempfile", "glob"),
                    "there is no file system or operating system here; work with `session`, the tools and print()"),
    **dict.fromkeys(("js", "pyodide", "pyodide_js", "micropip"), "there is no access to the browser or to package installation"),
}

# Of these modules, model code sees only the listed members.
MODULE_ONLY: dict[str, frozenset[str]] = {
    "io": frozenset({"StringIO", "BytesIO", "SEEK_SET", "SEEK_CUR", "SEEK_END", "UnsupportedOperation"}),
}
# Members hidden from model code although the module is allowed (process-wide state that
# would outlive the step, or getattr by another name). name -> what to write instead.
MODULE_HIDDEN: dict[str, dict[str, str]] = {
    "csv": dict.fromkeys(
        ("register_dialect", "unregister_dialect", "field_size_limit"),
        "the csv dialect registry is shared by the whole program; pass the options directly, "
        "e.g. csv.writer(buffer, delimiter=';')",
    ),
    "copy": {"d": "use copy.copy(x) or copy.deepcopy(x)"},
}

# -- names -----------------------------------------------------------------------------------

DEFAULT_BLOCKED_NAMES: frozenset[str] = frozenset(
    {
        # Running code from strings.
        "exec",
        "eval",
        "compile",
        # Files, console, debugger, process.
        "open",
        "input",
        "breakpoint",
        "help",
        "exit",
        "quit",
        # Attribute access by computed name (reaches dunders without spelling them).
        "getattr",
        "setattr",
        "delattr",
        "hasattr",
        # Namespace introspection (returns dicts holding __builtins__ and friends).
        "globals",
        "locals",
        "vars",
        "dir",
        # Raw memory; and `type`, which hands out classes (and their mro) for any object.
        "memoryview",
        "type",
    }
)

# Blocked builtins that the run-time layer offers in a checked form: with it on, model code
# may use them (the validator still checks literal arguments); with it off, they stay refused.
GUARDED_BUILTINS: frozenset[str] = frozenset({"getattr", "setattr", "hasattr", "vars", "dir", "type"})

NAME_REASONS: dict[str, str] = {
    **dict.fromkeys(("exec", "eval", "compile"), "write the code directly instead of running code from a string"),
    "open": "there are no files; build text in io.StringIO (e.g. for csv.writer) and print() it",
    **dict.fromkeys(
        ("input", "breakpoint", "help", "exit", "quit"),
        "there is no console or process; use print() for output and `session` for data",
    ),
    **dict.fromkeys(
        ("getattr", "setattr", "delattr", "hasattr"),
        "use ordinary attribute access such as `obj.name` or `obj.name = value`; to loop over a mapped "
        "object's columns use `{a.key: a.value for a in sqlalchemy.inspect(obj).attrs}`",
    ),
    **dict.fromkeys(("globals", "locals"), "refer to variables directly by name"),
    "vars": "for a mapped object use `{a.key: a.value for a in sqlalchemy.inspect(obj).attrs}`; for a row, `row._asdict()`",
    "dir": "for a mapped class use `sqlalchemy.inspect(Model).columns.keys()`; otherwise refer to attributes by name",
    "memoryview": "use bytes or bytearray instead",
    "type": "use isinstance(x, SomeClass) to test a type, or print(repr(x)) to look at a value",
}

# -- attributes ------------------------------------------------------------------------------

_FRAME_REASON = (
    "it reaches interpreter internals (frames, code objects, the class hierarchy); "
    "work with the values themselves instead"
)
_MODULE_REASON = "it is a module that model code may not use; import only allowed modules"
_EVAL_REASON = "it evaluates strings as code; write the code directly instead"
_GETATTR_REASON = "it looks attributes up by a computed name; write `obj.name` directly instead"
_FORMATTER_REASON = (
    "string.Formatter looks attributes up by computed names; format with an f-string "
    "(f\"{book.title}: {book.price:.2f}\") or str.format (\"{}: {:.2f}\".format(title, price))"
)
_MAPPING_REASON = (
    "defining mappings and relationships is not allowed (their string arguments are "
    "evaluated as code, and new mapped classes would outlive the step); the schema is fixed, "
    "so query the existing mapped classes"
)
_DATABASE_REASON = (
    "it reaches the raw database connection outside the managed transaction; "
    "use the provided `session` (session.execute, session.scalars, session.add)"
)
_EVENT_REASON = (
    "event listeners would run your code later, outside its step; do the work directly in "
    "this step's code instead"
)

_INSPECT_REASON = (
    "`x.inspect` is refused because `inspect` is also a blocked module; "
    "write `from sqlalchemy import inspect` and call `inspect(obj)`"
)
ATTRIBUTE_REASONS: dict[str, str] = {
    **dict.fromkeys(
        (
            "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code",
            "f_globals", "f_locals", "f_back", "f_builtins", "f_code", "f_trace", "tb_frame",
            "tb_next", "co_code", "co_consts", "func_globals", "func_code", "mro",
        ),
        _FRAME_REASON,
    ),
    **dict.fromkeys(
        (
            "os", "sys", "builtins", "bltns", "subprocess", "importlib", "codecs",
            "ctypes", "posix", "nt", "shutil", "socket", "marshal", "pickle", "linecache",
            "annotationlib", "js", "pyodide", "pyodide_js", "sqlite3", "asyncio",
            "threading", "logging", "traceback", "types", "gc", "weakref", "copyreg",
            "contextlib", "atexit", "pathlib", "tempfile", "argparse", "platform", "sysconfig",
            "warnings", "coercions", "provision", "sqla_queue", "clsregistry", "serializer",
            # sqlalchemy.util and sqlalchemy.testing under the names SQLAlchemy's own
            # modules import them as (util.attrsetter execs its argument).
            "util", "langhelpers", "compat", "compat_typing", "sa_typing", "testing",
            "attrsetter",
        ),
        _MODULE_REASON,
    ),
    "inspect": _INSPECT_REASON,
    **dict.fromkeys(
        (
            "get_type_hints", "ForwardRef", "evaluate_forward_ref", "get_annotations",
            "call_evaluate_function", "call_annotate_function",
        ),
        _EVAL_REASON,
    ),
    "get_field": _GETATTR_REASON,
    "Formatter": _FORMATTER_REASON,
    **dict.fromkeys(
        (
            "relationship", "Relationship", "RelationshipProperty", "relation", "backref",
            "dynamic_loader", "association_proxy", "AssociationProxy", "map_imperatively",
            "registry", "declarative_base", "as_declarative", "DeclarativeBase",
            "DeclarativeBaseNoMeta", "DeclarativeMeta", "declared_attr", "MappedAsDataclass",
            "mapped_as_dataclass", "declarative_mixin",
        ),
        _MAPPING_REASON,
    ),
    **dict.fromkeys(
        (
            "create_engine", "create_async_engine", "engine_from_config",
            "async_engine_from_config", "create_mock_engine", "create_pool_from_url",
            "bind", "get_bind", "engine", "connection", "raw_connection", "dbapi",
            "loaded_dbapi", "import_dbapi", "dbapi_connection", "driver_connection", "connect",
            "dialect", "context", "root_connection", "cursor", "pool", "sync_engine",
            "sync_connection",
        ),
        _DATABASE_REASON,
    ),
    **dict.fromkeys(
        ("compiles", "deregister", "as_mutable", "associate_with", "associate_with_attribute"),
        "it registers code that SQLAlchemy would run for every later statement, outside this step; "
        "write the SQL you need with select()/func/text() directly",
    ),
    **dict.fromkeys(
        ("create_proxy_methods", "de_stringify_annotation", "eval_expression", "eval_name_only"),
        "it is an internal SQLAlchemy helper that generates code from strings; write the code directly",
    ),
    **dict.fromkeys(("event", "listen", "listens_for", "dispatch"), _EVENT_REASON),
    "PickleType": "it unpickles bytes (pickle runs code); store text or JSON instead",
}
DEFAULT_BLOCKED_ATTRIBUTES: frozenset[str] = frozenset(ATTRIBUTE_REASONS)
# Refused only without the run-time layer: class factories that take a namespace can give a
# class a finalizer the validator cannot see (with the layer, model functions cannot run
# after their step anyway).
WITHOUT_RUNTIME_ATTRIBUTES: dict[str, str] = {
    "make_dataclass": "write a @dataclass class statement instead",
}

# Underscore attributes that are public API (SQLAlchemy's Row, namedtuples).
PUBLIC_UNDERSCORE_ATTRIBUTES: frozenset[str] = frozenset(
    {"_mapping", "_asdict", "_fields", "_field_defaults", "_replace", "_make", "_t", "_tuple"}
)

# Module members whose names are also blocked attributes but which are fine to import from
# that module: `from sqlalchemy import inspect` is SQLAlchemy's inspection function, while
# `x.inspect` may be the inspect module (dataclasses.inspect).
ALLOWED_MODULE_MEMBERS: frozenset[tuple[str, str]] = frozenset(
    {("sqlalchemy", "inspect"), ("sqlalchemy.inspection", "inspect")}
)

# -- dunders ---------------------------------------------------------------------------------

# Dunder attributes that are plain data (strings, a read-only mapping of enum members):
# reading them is harmless with or without the run-time layer.
SAFE_DUNDER_READS: frozenset[str] = frozenset(
    {"__name__", "__qualname__", "__doc__", "__module__", "__tablename__", "__members__", "__version__"}
)
# Dunder attributes that are harmless to read only because the run-time layer checks every
# attribute read after them (`x.__class__` is `type(x)`; a Table and a Mapper lead only to
# ordinary, checked attributes). Refused when the run-time layer is off.
GUARDED_DUNDER_READS: frozenset[str] = frozenset({"__class__", "__table__", "__mapper__"})

# Special methods that classes written by the model may define (directly in a class body)
# and reach through `super()`, e.g. `def __init__(self): super().__init__()`. Not listed,
# so refused: __getattribute__, __getattr__, __setattr__, __delattr__ (attribute access by
# computed name), __del__ (runs at some later garbage collection), __new__,
# __init_subclass__, __class_getitem__, __set_name__ (class-creation hooks).
SPECIAL_METHODS: frozenset[str] = frozenset(
    "__" + name + "__"
    for name in (
        "init post_init repr str format bytes hash bool eq ne lt le gt ge len length_hint "
        "iter next reversed contains getitem setitem delitem missing call enter exit "
        "aenter aexit aiter anext await index int float complex round trunc floor ceil "
        "neg pos abs invert add sub mul matmul truediv floordiv mod divmod pow lshift "
        "rshift and or xor radd rsub rmul rmatmul rtruediv rfloordiv rmod rdivmod rpow "
        "rlshift rrshift rand ror rxor iadd isub imul imatmul itruediv ifloordiv imod "
        "ipow ilshift irshift iand ior ixor"
    ).split()
)
# With the run-time layer off, nothing stops host code (SQLAlchemy comparing values at a
# later flush, an error message's repr) from calling a model's special method after its
# step; so then only these may be defined (they run when model code builds an object).
SPECIAL_METHODS_WITHOUT_RUNTIME: frozenset[str] = frozenset({"__init__", "__post_init__"})

_CALL_INSTEAD = {
    "__len__": "len(x)", "__str__": "str(x)", "__repr__": "repr(x)", "__iter__": "iter(x) or a for loop",
    "__next__": "next(it)", "__contains__": "`item in x`", "__getitem__": "x[key]", "__setitem__": "x[key] = value",
    "__delitem__": "del x[key]", "__eq__": "x == y", "__ne__": "x != y", "__lt__": "x < y", "__le__": "x <= y",
    "__gt__": "x > y", "__ge__": "x >= y", "__hash__": "hash(x)", "__bool__": "bool(x)", "__call__": "x(...)",
    "__format__": "format(x, spec) or an f-string", "__add__": "x + y", "__sub__": "x - y", "__mul__": "x * y",
    "__abs__": "abs(x)", "__int__": "int(x)", "__float__": "float(x)", "__round__": "round(x)",
    "__enter__": "a `with` statement", "__exit__": "a `with` statement", "__reversed__": "reversed(x)",
}
_HIERARCHY = "the class hierarchy is not available; test types with isinstance(x, SomeClass) or issubclass(A, B)"
_FUNCTION_INSIDES = (
    "function internals are not available; call the function instead (`disclose('name')` prints a "
    "tool's signature and documentation)"
)
_NO_FILES = "there are no files or modules here: your code runs as one step of a conversation"
_CLASS_HOOK = "class-creation hooks are not allowed; write a plain class (or a @dataclass)"
_ATTRIBUTE_HOOK = (
    "attribute hooks are not allowed; use properties (@property) or plain methods, and read "
    "attributes with `obj.name`"
)
DUNDER_ADVICE: dict[str, str] = {
    **{name: f"call the builtin instead: {call}" for name, call in _CALL_INSTEAD.items()},
    "__init__": "create objects by calling the class, e.g. Author(name='x'); inside a class, call super().__init__(...)",
    "__dict__": "for a mapped object use `{a.key: a.value for a in sqlalchemy.inspect(obj).attrs}`; for a row, `row._asdict()`",
    "__annotations__": "use `dataclasses.fields(obj)` for a dataclass, or `sqlalchemy.inspect(Model).columns` for a mapped class",
    "__class__": "use isinstance(x, SomeClass) to test a type",
    "__table__": "use `sqlalchemy.inspect(Model).local_table` (its name: `Model.__tablename__`; its columns: `inspect(Model).columns`)",
    "__mapper__": "use `sqlalchemy.inspect(Model)` (columns: `.columns`, relationships: `.relationships`)",
    **dict.fromkeys(("__subclasses__", "__bases__", "__base__", "__mro__"), _HIERARCHY),
    **dict.fromkeys(
        ("__globals__", "__code__", "__closure__", "__builtins__", "__func__", "__self__", "__wrapped__",
         "__defaults__", "__kwdefaults__", "__traceback__", "__context__", "__cause__"),
        _FUNCTION_INSIDES,
    ),
    "__import__": "write an import statement such as `import json`",
    **dict.fromkeys(("__getattribute__", "__getattr__", "__setattr__", "__delattr__"), _ATTRIBUTE_HOOK),
    "__del__": "finalizers are not allowed (they would run after the step); clean up explicitly at the end of your code",
    "__slots__": "remove __slots__; plain attributes work",
    **dict.fromkeys(("__init_subclass__", "__class_getitem__", "__set_name__", "__new__", "__prepare__", "__build_class__"), _CLASS_HOOK),
    **dict.fromkeys(("__file__", "__loader__", "__spec__", "__path__", "__package__", "__cached__", "__main__"), _NO_FILES),
    "__future__": "drop the `from __future__ import ...` line; it is not needed",
    "__all__": "import the names you need explicitly",
}
_DUNDER_GENERIC = (
    "dunder (double-underscore) names reach interpreter internals and are not allowed; use the "
    "object's public attributes, or builtins such as len(), str(), repr() and isinstance()"
)


def dunder_advice(name: str, runtime: bool = True) -> str:
    """What to write instead of the dunder ``name`` (for refusal messages)."""
    if name == "__class__" and runtime:
        return "use type(x) (e.g. type(x).__name__) or isinstance(x, SomeClass)"
    if name == "__dict__" and runtime:
        return "use vars(obj)"
    if name == "__name__":
        return (
            "there is no module `__name__` here: your code runs as a step, not as a module "
            "(drop any `if __name__ == '__main__':` guard); a class's name is `SomeClass.__name__`"
        )
    return DUNDER_ADVICE.get(name, _DUNDER_GENERIC)


# -- names as Python compares them -----------------------------------------------------------

def normalize_name(text: str) -> str:
    """Normalise like Python normalises identifiers (cheap for the usual ASCII text)."""
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def is_private_name(name: str) -> bool:
    return name.startswith("_") and not is_dunder(name) and name not in PUBLIC_UNDERSCORE_ATTRIBUTES


# -- string annotations ----------------------------------------------------------------------
# SQLAlchemy (``Mapped["..."]``) and ``typing`` turn string annotations into code with
# ``eval``, so a string annotation must be a plain type expression such as "Author" or
# "list[Book] | None".

_TYPE_EXPRESSION_NODES = (
    ast.Expression, ast.Name, ast.Attribute, ast.Subscript, ast.Tuple, ast.List,
    ast.Constant, ast.BinOp, ast.BitOr, ast.Load,
)


def bad_string_annotations(annotation: ast.expr) -> list[tuple[ast.Constant, str]]:
    """The string constants in ``annotation`` that typing would evaluate and that are not
    plain type expressions (each with its text)."""
    return [(node, text) for node, text in _evaluated_strings(annotation) if not _is_type_expression(text)]


def _evaluated_strings(expr: ast.expr) -> Iterable[tuple[ast.Constant, str]]:
    """String constants in an annotation that typing would evaluate (forward references).

    The arguments of ``Literal[...]`` and the metadata of ``Annotated[...]`` are plain values.
    """
    if isinstance(expr, ast.Constant):
        if isinstance(expr.value, str):
            yield expr, expr.value
        return
    if isinstance(expr, ast.Subscript):
        head = expr.value
        head_name = head.id if isinstance(head, ast.Name) else head.attr if isinstance(head, ast.Attribute) else ""
        if head_name == "Literal":
            return
        items = expr.slice.elts if isinstance(expr.slice, ast.Tuple) else [expr.slice]
        if head_name == "Annotated":
            items = items[:1]
        yield from _evaluated_strings(head)
        for item in items:
            yield from _evaluated_strings(item)
        return
    for child in ast.iter_child_nodes(expr):
        if isinstance(child, ast.expr):
            yield from _evaluated_strings(child)


def _is_type_expression(text: str) -> bool:
    """True for names, dotted names, subscripts, tuples/lists of those, ``|`` and None."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        if not isinstance(node, _TYPE_EXPRESSION_NODES):
            return False
        if isinstance(node, ast.BinOp) and not isinstance(node.op, ast.BitOr):
            return False
    # Strings inside the string ("list['Book']") are evaluated in turn.
    return all(_is_type_expression(text) for _, text in _evaluated_strings(tree.body))


# -- the policy ------------------------------------------------------------------------------

LAYERS_OFF_VARIABLE = "PY_AGENT_SANDBOX_OFF"


def _layer_on(layer: str) -> bool:
    """False when the environment switches ``layer`` off (tests only)."""
    off = os.environ.get(LAYERS_OFF_VARIABLE, "")
    return layer not in {part.strip().lower() for part in off.split(",")}


@dataclass(frozen=True)
class Policy:
    """What model code may import and use, and which sandbox layers enforce it.

    ``allowed_imports`` holds module names; each allows the module and its submodules
    (``"datetime"`` allows ``datetime`` and ``datetime.x``). ``blocked_modules`` always win,
    also over submodules (``"sqlalchemy.util"`` is refused although ``sqlalchemy`` is allowed).

    ``validator`` and ``runtime`` switch the two layers (tests only; see the module
    docstring). With the run-time layer on, checked versions of ``getattr``, ``setattr``,
    ``hasattr``, ``vars``, ``dir`` and one-argument ``type`` are available and templates
    built at run time may be formatted; with it off the validator refuses all of those.
    """

    allowed_imports: frozenset[str] = DEFAULT_ALLOWED_IMPORTS
    blocked_names: frozenset[str] = DEFAULT_BLOCKED_NAMES
    blocked_modules: frozenset[str] = DEFAULT_BLOCKED_MODULES
    blocked_attributes: frozenset[str] = DEFAULT_BLOCKED_ATTRIBUTES
    # Exempt from blocked_attributes, e.g. the schema's column names (a `Car.engine` column).
    allowed_attributes: frozenset[str] = frozenset()
    validator: bool = field(default_factory=lambda: _layer_on("validator"))
    runtime: bool = field(default_factory=lambda: _layer_on("runtime"))
    # Memo of attribute_refusal (names repeat a lot); not part of the policy's identity.
    _memo: dict[tuple[Any, ...], Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if not (self.validator or self.runtime):
            raise ValueError(
                "at least one sandbox layer must be on: the validator, the run-time layer or both "
                f"(check {LAYERS_OFF_VARIABLE} and the Policy's validator/runtime arguments)"
            )

    @classmethod
    def with_imports(cls, extra: Iterable[str]) -> Policy:
        """The default policy plus ``extra`` allowed modules (blocked modules stay blocked)."""
        return cls(allowed_imports=DEFAULT_ALLOWED_IMPORTS | frozenset(extra))

    @property
    def refused_names(self) -> frozenset[str]:
        """Builtin names model code may not use (the guarded ones are fine with the run-time layer)."""
        names = self._memo.get(("refused",))
        if names is None:
            names = self.blocked_names - GUARDED_BUILTINS if self.runtime else self.blocked_names | GUARDED_BUILTINS
            self._memo[("refused",)] = names
        return names  # type: ignore[no-any-return]

    # -- modules -----------------------------------------------------------------------------
    def is_blocked_module(self, name: str) -> bool:
        key = ("blocked", name)
        memo = self._memo
        if key not in memo:
            lowered = name.lower()
            memo[key] = _in_packages(lowered, self.blocked_modules)
        return memo[key]  # type: ignore[return-value]

    def is_allowed_module(self, name: str) -> bool:
        key = ("allowed", name)
        memo = self._memo
        if key not in memo:
            if self.is_blocked_module(name):
                memo[key] = False
            elif not self.runtime and name.split(".")[0] in MODULE_ONLY:
                memo[key] = False  # only the run-time layer's view can hide the rest of the module
            else:
                memo[key] = _in_packages(name, self.allowed_imports)
        return memo[key]  # type: ignore[return-value]

    def allowed_list(self) -> str:
        return ", ".join(sorted(self.allowed_imports))

    def import_refusal(self, name: str) -> tuple[str, str] | None:
        """``(rule, message)`` if importing ``name`` is refused, else None."""
        if self.is_blocked_module(name):
            advice = next((MODULE_ADVICE[m] for m in _prefixes(name.lower()) if m in MODULE_ADVICE), None)
            return (
                "blocked-module",
                (
                    f"import of '{name}' is blocked: "
                    + (advice or "model code has no access to the operating system, the interpreter, "
                       "the network or the raw database; use `session` and the provided tools")
                    + f". Allowed modules: {self.allowed_list()}."
                ),
            )
        if not self.is_allowed_module(name):
            return (
                "import-not-allowed",
                (
                    f"import of '{name}' is not allowed; allowed modules: "
                    f"{self.allowed_list()}. Solve the task with these."
                ),
            )
        return None

    def member_refusal(self, module: str, name: str) -> str | None:
        """Why ``module.name`` is hidden from model code by the module rules, else None."""
        top = module.split(".")[0]
        only = MODULE_ONLY.get(top)
        if only is not None and module == top and name not in only:
            return (
                f"'{module}.{name}' is not available: of '{module}', model code may use only "
                f"{', '.join(sorted(only))} (in-memory buffers)"
            )
        advice = MODULE_HIDDEN.get(module, {}).get(name)
        if advice is not None:
            return f"'{module}.{name}' is not available: {advice}"
        return None

    # -- attributes --------------------------------------------------------------------------
    def attribute_refusal(self, name: str, store: bool = False) -> tuple[str, str] | None:
        """``(rule, message)`` if the attribute ``name`` may not be read (or, with ``store``,
        written or deleted), else None. Rules: ``dunder``, ``blocked-attribute``,
        ``private-attribute``."""
        key = (name, store)
        try:
            return self._memo[key]
        except KeyError:
            pass
        refusal = self._attribute_refusal(name, store)
        self._memo[key] = refusal
        return refusal

    def _attribute_refusal(self, name: str, store: bool) -> tuple[str, str] | None:
        if is_dunder(name):
            if not store and (name in SAFE_DUNDER_READS or (self.runtime and name in GUARDED_DUNDER_READS)):
                return None
            verb = "writing" if store and name in SAFE_DUNDER_READS else "using"
            return "dunder", f"{verb} '{name}' is not allowed: {dunder_advice(name, self.runtime)}."
        if name in self.blocked_attributes and name not in self.allowed_attributes:
            reason = ATTRIBUTE_REASONS.get(name, "it is blocked by the policy")
            return "blocked-attribute", f"attribute '{name}' is not allowed: {reason}."
        if not self.runtime and name in WITHOUT_RUNTIME_ATTRIBUTES:
            return "blocked-attribute", f"attribute '{name}' is not allowed here: {WITHOUT_RUNTIME_ATTRIBUTES[name]}."
        if is_private_name(name):
            return (
                "private-attribute",
                (
                    f"'{name}' is private (leading underscore) and is not allowed; use the "
                    f"public attributes and methods instead."
                ),
            )
        return None

    def name_refusal(self, name: str) -> str | None:
        """Why the builtin ``name`` may not be used, else None."""
        if name in self.refused_names:
            return f"'{name}' is not available to model code: {NAME_REASONS.get(name, 'it is blocked by the policy')}."
        return None


def _prefixes(name: str) -> list[str]:
    """``a.b.c`` -> ``["a.b.c", "a.b", "a"]``: the most specific first."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


def _in_packages(name: str, packages: frozenset[str]) -> bool:
    """True if ``name`` is one of ``packages`` or a submodule of one."""
    parts = name.split(".")
    return any(".".join(parts[:i]) in packages for i in range(1, len(parts) + 1))


def default_policy() -> Policy:
    """The default policy (layer switches read from the environment now)."""
    key = os.environ.get(LAYERS_OFF_VARIABLE, "")
    policy = _DEFAULTS.get(key)
    if policy is None:
        policy = _DEFAULTS[key] = Policy()
    return policy


_DEFAULTS: dict[str, Policy] = {}
