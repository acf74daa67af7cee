"""Static (AST) checks for model-written Python, run before the code is executed.

The validator is the first of several layers (see ``py_agent.sandbox.runtime`` for the run-time
layer; the browser worker's Content-Security-Policy and the database transaction are the
others). It rejects code that reaches for interpreter internals or for anything outside an
allow-list of modules, and explains each problem in a sentence a language model can act on.

What it refuses (rule ids are stable; tests and prompts may rely on them):

``syntax``             the code does not parse.
``dunder``             any ``__name__``-style identifier, attribute, keyword or import, and
                       any string constant containing one (``getattr(x, "__class__")``,
                       ``"{0.__class__}".format(x)``, ``attrgetter("__globals__")``). The
                       one exception: classes may define special methods such as
                       ``__init__`` and ``__repr__`` and call them through ``super()``.
``blocked-name``       references to ``eval``, ``exec``, ``open``, ``getattr``, ... as calls
                       or as bare values (``f = eval``).
``blocked-attribute``  attributes that reach frames, code objects, modules such as ``os`` or
                       ``sys`` re-exported by allowed modules, evaluators of strings, or the
                       raw database connection (``g.gi_frame``, ``typing.sys``,
                       ``relationship``, ``session.bind``).
``private-attribute``  ``obj._name`` (except a few public SQLAlchemy/namedtuple names such as
                       ``row._mapping``); private module members such as ``random._os``
                       re-export modules.
``dynamic-attribute``  ``operator.attrgetter``/``methodcaller`` with anything but literal,
                       allowed attribute names (they are getattr by another name).
``annotation``         string annotations that are not plain type expressions: SQLAlchemy and
                       ``typing`` evaluate such strings with ``eval``.
``import-not-allowed`` imports outside the policy's allow-list.
``blocked-module``     imports of modules that are always refused (``os``, ``sys``, ``js``...).
``relative-import``    ``from . import x``.
``too-complex``        absurdly deep expressions ("-" * 2000 + "1"), refused before parsing:
                       Pyodide's parser would overflow the JavaScript stack and die.

Identifiers are compared after NFKC normalisation, which is what Python itself does
(``ｅｖａｌ`` *is* ``eval``); the parser already normalises identifiers, and string constants
are normalised here before they are searched for dunders. Names are otherwise compared
case-sensitively, as Python does (``Eval`` is an ordinary name); module names are compared
case-insensitively, to be safe on case-insensitive file systems.
"""

from __future__ import annotations

import ast
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

DEFAULT_ALLOWED_IMPORTS: frozenset[str] = frozenset(
    {
        "bisect",
        "calendar",
        "collections",
        "dataclasses",
        "datetime",
        "decimal",
        "enum",
        "fractions",
        "functools",
        "heapq",
        "itertools",
        "json",
        "math",
        "operator",
        "random",
        "re",
        "sqlalchemy",
        "statistics",
        "string",
        "textwrap",
        "typing",
        "uuid",
        "zoneinfo",
    }
)

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

DEFAULT_BLOCKED_MODULES: frozenset[str] = frozenset(
    {
        # Interpreter and import machinery.
        "sys", "builtins", "importlib", "imp", "_imp", "zipimport", "pkgutil", "runpy",
        "inspect", "gc", "types", "code", "codeop", "ctypes", "_ctypes", "cffi", "marshal",
        "pickle", "_pickle", "copyreg", "shelve", "dbm", "annotationlib", "site", "sysconfig",
        "linecache", "traceback", "tracemalloc", "faulthandler", "atexit", "pdb", "bdb",
        "trace", "dis", "ast", "_frozen_importlib", "_frozen_importlib_external",
        # Operating system, files, processes, threads.
        "os", "posix", "nt", "posixpath", "ntpath", "genericpath", "_posixsubprocess",
        "subprocess", "pty", "tty", "fcntl", "resource", "signal", "mmap", "platform",
        "pathlib", "shutil", "tempfile", "glob", "fileinput", "io", "_io", "codecs",
        "zipfile", "tarfile", "logging", "threading", "_thread", "multiprocessing",
        "concurrent", "asyncio", "selectors", "select",
        # Network.
        "socket", "ssl", "socketserver", "urllib", "http", "ftplib", "smtplib", "poplib",
        "imaplib", "xmlrpc", "webbrowser", "email",
        # Browser (Pyodide) bridges and package installation.
        "js", "pyodide", "pyodide_js", "_pyodide", "_pyodide_core", "pyodide_http",
        "emscripten", "micropip", "pip", "setuptools", "ensurepip", "venv",
        # Raw database access bypasses the managed transaction; SQLAlchemy internals hold
        # code generators (sqlalchemy.util.attrsetter execs its argument).
        "sqlite3", "_sqlite3", "sqlalchemy.util", "sqlalchemy.testing",
    }
)

# Attribute names refused wherever they appear (``x.NAME``, ``from m import NAME``, match
# class patterns). Each maps to the reason given to the model.
_FRAME_REASON = (
    "it reaches interpreter internals (frames, code objects, the class hierarchy); "
    "work with the values themselves instead"
)
_MODULE_REASON = (
    "it is a module that model code may not use; import only allowed modules"
)
_EVAL_REASON = "it evaluates strings as code; write the code directly instead"
_GETATTR_REASON = (
    "it looks attributes up by a computed name; write `obj.name` directly instead"
)
_MAPPING_REASON = (
    "defining mappings and relationships is not allowed (their string arguments are "
    "evaluated as code); the schema is fixed, so query the existing mapped classes"
)
_DATABASE_REASON = (
    "it reaches the raw database connection outside the managed transaction; "
    "use the provided `session` (session.execute, session.scalars, session.add)"
)
_INSPECT_REASON = (
    "`x.inspect` is refused because `inspect` is also a blocked module; "
    "write `from sqlalchemy import inspect` and call `inspect(obj)`"
)
ATTRIBUTE_REASONS: dict[str, str] = {
    **dict.fromkeys(
        (
            "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code",
            "f_globals", "f_locals", "f_back", "f_builtins", "f_code", "tb_frame",
            "co_code", "func_globals", "func_code", "mro",
        ),
        _FRAME_REASON,
    ),
    **dict.fromkeys(
        (
            "os", "sys", "builtins", "bltns", "subprocess", "importlib", "codecs", "io",
            "ctypes", "posix", "nt", "shutil", "socket", "marshal", "pickle", "linecache",
            "annotationlib", "js", "pyodide", "pyodide_js", "sqlite3", "asyncio",
            "threading", "logging", "traceback",
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
    **dict.fromkeys(
        (
            "relationship", "Relationship", "RelationshipProperty", "relation", "backref",
            "dynamic_loader", "association_proxy", "AssociationProxy", "map_imperatively",
        ),
        _MAPPING_REASON,
    ),
    **dict.fromkeys(
        (
            "create_engine", "create_async_engine", "engine_from_config",
            "async_engine_from_config", "create_mock_engine", "create_pool_from_url",
            "bind", "get_bind", "engine", "connection", "raw_connection", "dbapi",
            "loaded_dbapi", "import_dbapi", "dbapi_connection", "driver_connection",
        ),
        _DATABASE_REASON,
    ),
}
DEFAULT_BLOCKED_ATTRIBUTES: frozenset[str] = frozenset(ATTRIBUTE_REASONS)

# Underscore attributes that are public API (SQLAlchemy's Row, namedtuples).
PUBLIC_UNDERSCORE_ATTRIBUTES: frozenset[str] = frozenset(
    {"_mapping", "_asdict", "_fields", "_field_defaults", "_replace", "_make", "_t", "_tuple"}
)

# Callables that perform getattr with their (string) arguments.
_DYNAMIC_ATTRIBUTE_CALLS = frozenset({"attrgetter", "methodcaller"})

# Module members whose names are also blocked attributes but which are fine to import from
# that module: `from sqlalchemy import inspect` is SQLAlchemy's inspection function, while
# `x.inspect` may be the inspect module (dataclasses.inspect).
ALLOWED_MODULE_MEMBERS: frozenset[tuple[str, str]] = frozenset(
    {("sqlalchemy", "inspect"), ("sqlalchemy.inspection", "inspect")}
)

# Special methods that classes written by the model may define (directly in a class body)
# and reach through `super()`, e.g. `def __init__(self): super().__init__()`. Defining or
# delegating these reads nothing new. Not listed, so refused: __getattribute__, __getattr__,
# __setattr__, __delattr__ (attribute access by computed name), __del__ (runs at some later
# garbage collection), __new__, __init_subclass__, __class_getitem__, __set_name__.
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

_NAME_REASONS: dict[str, str] = {
    **dict.fromkeys(("exec", "eval", "compile"), "write the code directly instead of running code from a string"),
    **dict.fromkeys(
        ("open", "input", "breakpoint", "help", "exit", "quit"),
        "there is no file, console or process access; work with `session` and the given tools, and use print() for output",
    ),
    **dict.fromkeys(
        ("getattr", "setattr", "delattr", "hasattr"),
        "use ordinary attribute access such as `obj.name` or `obj.name = value`",
    ),
    **dict.fromkeys(("globals", "locals", "vars", "dir"), "refer to variables directly by name"),
    "memoryview": "use bytes or bytearray instead",
    "type": "use isinstance(x, SomeClass) to test a type, or print(repr(x)) to look at a value",
}

_DUNDER_IN_TEXT = re.compile(r"__[^\W_]\w*?__")
# Fields the walk skips: `ctx` holds no names; the others are strings but not identifiers.
_SKIPPED_FIELDS = frozenset({"ctx", "type_comment", "kind"})
_FIELDS: dict[type, tuple[str, ...]] = {}  # per node class: the fields the walk reads
# Nodes allowed inside a string annotation such as "Author" or "list[Book] | None".
_TYPE_EXPRESSION_NODES = (
    ast.Expression, ast.Name, ast.Attribute, ast.Subscript, ast.Tuple, ast.List,
    ast.Constant, ast.BinOp, ast.BitOr, ast.Load,
)


def normalize_name(text: str) -> str:
    """Normalise like Python normalises identifiers (cheap for the usual ASCII text)."""
    return text if text.isascii() else unicodedata.normalize("NFKC", text)


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def is_private_name(name: str) -> bool:
    return (
        name.startswith("_")
        and not _is_dunder(name)
        and name not in PUBLIC_UNDERSCORE_ATTRIBUTES
    )


@dataclass(frozen=True)
class Policy:
    """What model code may import and use.

    ``allowed_imports`` holds module names; each allows the module and its submodules
    (``"datetime"`` allows ``datetime`` and ``datetime.x``). ``blocked_modules`` always win,
    also over submodules (``"sqlalchemy.util"`` is refused although ``sqlalchemy`` is allowed).
    """

    allowed_imports: frozenset[str] = DEFAULT_ALLOWED_IMPORTS
    blocked_names: frozenset[str] = DEFAULT_BLOCKED_NAMES
    blocked_modules: frozenset[str] = DEFAULT_BLOCKED_MODULES
    blocked_attributes: frozenset[str] = DEFAULT_BLOCKED_ATTRIBUTES
    # Exempt from blocked_attributes, e.g. the schema's column names (a `Car.engine` column).
    allowed_attributes: frozenset[str] = frozenset()

    @classmethod
    def with_imports(cls, extra: Iterable[str]) -> Policy:
        """The default policy plus ``extra`` allowed modules (blocked modules stay blocked)."""
        return cls(allowed_imports=DEFAULT_ALLOWED_IMPORTS | frozenset(extra))

    @cached_property
    def _blocked_folded(self) -> frozenset[str]:
        return frozenset(normalize_name(m).casefold() for m in self.blocked_modules)

    def is_blocked_module(self, name: str) -> bool:
        """True if ``name`` or any package above it is in ``blocked_modules``."""
        parts = normalize_name(name).casefold().split(".")
        return any(".".join(parts[:i]) in self._blocked_folded for i in range(1, len(parts) + 1))

    def is_allowed_module(self, name: str) -> bool:
        """True if ``name`` may be imported: under an allowed module and not blocked."""
        if self.is_blocked_module(name):
            return False
        return any(name == m or name.startswith(m + ".") for m in self.allowed_imports)

    def allowed_list(self) -> str:
        """The importable modules, for messages: "bisect, calendar, ..."."""
        return ", ".join(sorted(m for m in self.allowed_imports if not self.is_blocked_module(m)))

    def import_refusal(self, name: str) -> tuple[str, str] | None:
        """``(rule, message)`` if importing ``name`` is refused, else None.

        Shared by the validator and the run-time import hook so both say the same thing.
        """
        if self.is_blocked_module(name):
            return (
                "blocked-module",
                (
                    f"import of '{name}' is blocked: model code has no access to the operating "
                    f"system, the interpreter, the network or the raw database. Use `session` "
                    f"and the provided tools; allowed modules: {self.allowed_list()}."
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

    def attribute_refusal(self, name: str) -> tuple[str, str] | None:
        """``(rule, message)`` if the attribute ``name`` may not be used, else None."""
        if _is_dunder(name):
            return (
                "dunder",
                (
                    f"'{name}' is a dunder (double-underscore) name; these reach interpreter "
                    f"internals and are not allowed. Use the public API instead."
                ),
            )
        if name in self.blocked_attributes and name not in self.allowed_attributes:
            reason = ATTRIBUTE_REASONS.get(name, "it is blocked by the policy")
            return "blocked-attribute", f"attribute '{name}' is not allowed: {reason}."
        if is_private_name(name):
            return (
                "private-attribute",
                (
                    f"'{name}' is private (leading underscore) and is not allowed; use the "
                    f"public attributes and methods instead."
                ),
            )
        return None


DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class Violation:
    """One broken rule. ``line`` and ``col`` are 1-based, ``col`` counts characters."""

    rule: str
    message: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"line {self.line}, col {self.col}: [{self.rule}] {self.message}"


class ValidationError(Exception):
    """The code was refused; ``violations`` lists every problem found."""

    def __init__(self, violations: list[Violation]) -> None:
        self.violations = list(violations)
        count = len(self.violations)
        lines = [f"The code was rejected before running ({count} problem{'s' * (count != 1)}):"]
        lines += [str(v) for v in self.violations]
        super().__init__("\n".join(lines))


def check(code: str, policy: Policy | None = None) -> list[Violation]:
    """Every rule ``code`` breaks, in source order; an empty list means it may run.

    Top-level ``await`` is accepted (the code is parsed, not compiled).
    """
    return check_parsed(code, policy)[0]


def check_parsed(code: str, policy: Policy | None = None) -> tuple[list[Violation], ast.Module | None]:
    """Like :func:`check`, and also the parsed tree (None when the code did not parse).

    The loop hands the tree on to the executor, so a step's code is parsed once.
    """
    policy = policy or DEFAULT_POLICY
    if _too_deep(code):
        return [_too_complex()], None
    try:
        tree = ast.parse(code, mode="exec")
    except SyntaxError as err:
        line = err.lineno or 1
        col = err.offset or 1
        return [
            Violation("syntax", f"the code does not parse: {err.msg}. Fix the syntax and send the whole code again.", line, col)
        ], None
    except ValueError as err:  # e.g. source containing NUL bytes
        return [Violation("syntax", f"the code does not parse: {err}. Send plain Python source.", 1, 1)], None
    except (RecursionError, MemoryError):  # the parser's own limits, e.g. "-" * 100_000 + "1"
        return [_too_complex()], None
    checker = _Checker(code, policy)
    checker.visit_all(tree)
    return sorted(checker.violations, key=lambda v: (v.line, v.col)), tree


def validate(code: str, policy: Policy | None = None) -> None:
    """Raise :class:`ValidationError` if :func:`check` finds anything."""
    violations = check(code, policy)
    if violations:
        raise ValidationError(violations)


# Pyodide's parser overflows the JavaScript stack (a fatal error that kills the interpreter)
# at about 1,750 chained operators in one expression, e.g. "-" * 2000 + "1" or
# "+".join(["1"] * 2000); CPython raises RecursionError or MemoryError instead. (Deep
# brackets are fine: the parser's own limit refuses them cleanly.) So code long enough to
# get there is scanned first, and anything near that depth is refused unparsed.
_SCAN_FROM = 1000  # characters; shorter code cannot chain enough operators
_DEPTH_LIMIT = 500  # no sensible expression comes close
_CHAIN_CHARACTERS = "+-*/%@&|^~<>.!="
_CHAIN_KEYWORDS = frozenset({"not", "and", "or", "if", "else", "lambda", "await", "in", "is", "for", "yield"})
_CHAIN_KEYWORD_PATTERN = rf"\b(?:{'|'.join(sorted(_CHAIN_KEYWORDS))})\b"
_CHAIN_KEYWORD_RE = re.compile(_CHAIN_KEYWORD_PATTERN)
_STRING_BODY = "|".join(
    (
        r"'''(?:\\.|[^\\])*?'''",
        r'"""(?:\\.|[^\\])*?"""',
        r"'(?:\\.|[^\\'\n])*'",
        r'"(?:\\.|[^\\"\n])*"',
    )
)
_SCAN = re.compile(
    r"(?P<comment>#[^\n]*)"
    rf"|(?P<string>(?P<prefix>[A-Za-z]{{0,3}})(?:{_STRING_BODY}))"
    rf"|(?P<word>{_CHAIN_KEYWORD_PATTERN})"  # other names are skipped
    r"|(?P<open>[(\[{])"
    r"|(?P<close>[)\]}])"
    r"|(?P<continuation>\\\r?\n)"
    r"|(?P<separator>[,;\n])"
    rf"|(?P<operator>[{re.escape(_CHAIN_CHARACTERS)}])"
)


def _too_deep(code: str) -> bool:
    """True if ``code`` may chain operators deeply enough to crash Pyodide's parser."""
    if len(code) < _SCAN_FROM:
        return False
    # Cheap upper bound first (counting in C): most long code stops here.
    bound = (
        sum(map(code.count, _CHAIN_CHARACTERS))
        + sum(map(code.count, "()[]{}"))
        + len(_CHAIN_KEYWORD_RE.findall(code))
    )
    return bound > _DEPTH_LIMIT and _nesting_estimate(code) > _DEPTH_LIMIT


def _nesting_estimate(code: str) -> int:
    """A rough upper bound of how deeply the parser recurses on ``code`` (no parsing).

    Counts operators, operator keywords and brackets chained within one expression;
    commas and statement ends start a new chain. Overcounting is harmless (the limit is far
    above real code); f-string bodies are estimated in turn, as they hold expressions.
    """
    levels = [0]  # chain length at each open bracket
    total = 0  # sum(levels)
    worst = 0
    for match in _SCAN.finditer(code):
        kind = match.lastgroup
        if kind == "string" or kind == "prefix":
            prefix = (match.group("prefix") or "").lower()
            if "f" in prefix or "t" in prefix:
                literal = match.group("string")[len(prefix):]
                quote = 3 if literal[:3] in ("'''", '"""') else 1
                nested = _nesting_estimate(literal[quote:-quote])
                worst = max(worst, total + len(levels) - 1 + nested)
            continue
        if kind == "open":
            levels.append(0)
            continue
        elif kind == "close":
            if len(levels) > 1:
                total -= levels.pop()
        elif kind == "separator":
            if match.group() == "\n" and len(levels) > 1:
                continue  # newlines inside brackets do not end the expression
            total -= levels[-1]
            levels[-1] = 0
            continue
        elif kind != "operator" and kind != "word":  # comments, line continuations
            continue
        # An operator or keyword, or a closed bracket group (as in f(x)(y) or a.b(c).d),
        # makes the current chain one longer.
        levels[-1] += 1
        total += 1
        worst = max(worst, total + len(levels) - 1)
    return worst


def _too_complex() -> Violation:
    return Violation(
        "too-complex",
        f"an expression chains or nests too deeply (more than {_DEPTH_LIMIT} operators or "
        f"brackets in one expression); split it into several statements.",
        1,
        1,
    )


class _Checker:
    """One pass over the tree; collects violations instead of stopping at the first."""

    def __init__(self, code: str, policy: Policy) -> None:
        self.code = code
        self.policy = policy
        self.violations: list[Violation] = []
        self._seen: set[tuple[str, int, int, str]] = set()
        self._lines: list[str] | None = None
        # Calls to attrgetter/methodcaller whose arguments were checked.
        self._checked_dynamic_calls: set[int] = set()
        # Method definitions and super() calls whose special-method name is allowed.
        self._allowed_dunders: set[int] = set()

    # -- reporting -------------------------------------------------------------------

    def report(self, node: ast.AST, rule: str, message: str) -> None:
        line = getattr(node, "lineno", 1) or 1
        col = self._char_col(line, getattr(node, "col_offset", 0) or 0)
        key = (rule, line, col, message)
        if key not in self._seen:  # one node may be reached by two checks
            self._seen.add(key)
            self.violations.append(Violation(rule, message, line, col))

    def _char_col(self, line: int, byte_offset: int) -> int:
        """AST offsets count UTF-8 bytes; the model needs a 1-based character column."""
        if self.code.isascii():
            return byte_offset + 1
        if self._lines is None:
            self._lines = re.split(r"\r\n|\r|\n", self.code)
        text = self._lines[line - 1] if 0 < line <= len(self._lines) else ""
        return len(text.encode("utf-8")[:byte_offset].decode("utf-8", errors="ignore")) + 1

    # -- traversal -------------------------------------------------------------------

    def visit_all(self, tree: ast.AST) -> None:
        """Visit every node once, parents before children (check_call relies on that).

        One hand-written walk instead of ``ast.walk`` plus a second pass over the fields:
        the validator is on the hot path. Identifier fields are found generically (any
        ``str`` field of a non-Constant node), so that new syntax (match patterns, type
        parameters, t-strings) is covered without listing every field.
        """
        handlers = self._handlers
        allowed_dunders = self._allowed_dunders
        check_identifier = self._check_identifier
        node_type = ast.AST
        stack = [tree]
        push = stack.append
        while stack:
            node = stack.pop()
            cls = type(node)
            handler = handlers.get(cls)
            if handler is not None:
                handler(node)
            if cls is ast.Constant:
                continue
            names_ok = id(node) in allowed_dunders
            fields = _FIELDS.get(cls)
            if fields is None:
                fields = _FIELDS[cls] = tuple(f for f in cls._fields if f not in _SKIPPED_FIELDS)
            for field_name in fields:
                value = getattr(node, field_name, None)
                if isinstance(value, node_type):
                    push(value)
                elif type(value) is list:
                    for item in value:
                        if isinstance(item, node_type):
                            push(item)
                        elif type(item) is str:
                            check_identifier(node, item)
                elif type(value) is str and not names_ok:
                    check_identifier(node, value)

    @property
    def _handlers(self) -> dict[type, Callable[[Any], None]]:
        return {
            ast.Constant: self.check_string_constant,
            ast.Name: self.check_name,
            ast.Attribute: self.check_attribute_node,
            ast.Call: self.check_call,
            ast.Import: self.check_import,
            ast.ImportFrom: self.check_import_from,
            ast.MatchClass: self.check_match_class,
            ast.ClassDef: self.check_class,
            ast.FunctionDef: self.check_returns,
            ast.AsyncFunctionDef: self.check_returns,
            ast.arg: self.check_arg,
            ast.AnnAssign: self.check_ann_assign,
            ast.ExceptHandler: self.check_except,
        }

    def check_except(self, node: ast.ExceptHandler) -> None:
        """Refuse handlers that would swallow the step's time limit or an interrupt.

        The time bound and the browser's interrupt arrive as BaseExceptions; no timer
        can get out of a bare ``except:`` or ``except BaseException`` in a loop.
        """
        caught = node.type
        names = caught.elts if isinstance(caught, ast.Tuple) else [caught]
        broad = caught is None or any(
            isinstance(n, ast.Name) and n.id in ("BaseException", "KeyboardInterrupt", "SystemExit", "GeneratorExit")
            for n in names
        )
        if broad:
            self.report(
                node,
                "broad-except",
                "bare `except:` and `except BaseException` are not allowed (they would swallow the "
                "time limit); catch `Exception` or a specific error instead.",
            )

    def check_attribute_node(self, node: ast.Attribute) -> None:
        value = node.value
        if (
            node.attr in SPECIAL_METHODS
            and isinstance(value, ast.Call)
            and isinstance(value.func, ast.Name)
            and value.func.id == "super"
        ):
            self._allowed_dunders.add(id(node))  # super().__init__(...)
        self.check_attribute(node, node.attr)

    def check_class(self, node: ast.ClassDef) -> None:
        for statement in node.body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)) and statement.name in SPECIAL_METHODS:
                self._allowed_dunders.add(id(statement))  # def __init__(self): ...

    def check_match_class(self, node: ast.MatchClass) -> None:
        for attr in node.kwd_attrs:  # `case C(attr=...)` is a getattr
            self.check_attribute(node, attr)

    def check_returns(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if node.returns is not None:
            self.check_annotation(node.returns)

    def check_arg(self, node: ast.arg) -> None:
        if node.annotation is not None:
            self.check_annotation(node.annotation)

    def check_ann_assign(self, node: ast.AnnAssign) -> None:
        self.check_annotation(node.annotation)

    def _check_identifier(self, node: ast.AST, text: str) -> None:
        if "__" not in text and text.isascii():  # the usual case, cheaply
            return
        # Dotted import paths and t-string source texts contain several identifiers.
        match = _DUNDER_IN_TEXT.search(normalize_name(text))
        if match:
            self.report(
                node,
                "dunder",
                f"'{match.group(0)}' is a dunder (double-underscore) name; these reach "
                f"interpreter internals and are not allowed. Use the public API instead.",
            )

    def check_string_constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if not isinstance(value, str) or ("_" not in value and value.isascii()):
            return
        match = _DUNDER_IN_TEXT.search(normalize_name(value))
        if match:
            self.report(
                node,
                "dunder",
                f"the string contains the dunder name '{match.group(0)}'; dunder names may "
                f"not be used in any form (attributes, getattr-style strings, format fields). "
                f"Use the public API instead.",
            )

    def check_name(self, node: ast.Name) -> None:
        self.check_bound_name(node, node.id)
        if node.id in _DYNAMIC_ATTRIBUTE_CALLS and id(node) not in self._checked_dynamic_calls:
            self._report_dynamic(node, node.id)

    def check_bound_name(self, node: ast.AST, name: str) -> None:
        """Blocked names are refused as values, as targets and as import aliases."""
        if name in self.policy.blocked_names:
            reason = _NAME_REASONS.get(name, "it is blocked by the policy")
            self.report(node, "blocked-name", f"'{name}' is not available to model code: {reason}.")

    def check_attribute(self, node: ast.AST, name: str) -> None:
        refusal = self.policy.attribute_refusal(name)
        if refusal is not None:
            if refusal[0] != "dunder":  # dunders are reported by the walk's identifier check
                self.report(node, *refusal)
        elif name in _DYNAMIC_ATTRIBUTE_CALLS and id(node) not in self._checked_dynamic_calls:
            self._report_dynamic(node, name)

    def _report_dynamic(self, node: ast.AST, name: str) -> None:
        self.report(
            node,
            "dynamic-attribute",
            f"'{name}' may only be called directly with literal attribute names, "
            f"e.g. {name}(\"name\"); or write a lambda such as `lambda a: a.name`.",
        )

    def check_call(self, node: ast.Call) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if name not in _DYNAMIC_ATTRIBUTE_CALLS:
            return
        self._checked_dynamic_calls.add(id(func))
        # attrgetter("a.b", "c") looks up every argument; methodcaller("m", *args) only the first.
        names = node.args if name == "attrgetter" else node.args[:1]
        literals = [a.value for a in names if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        if not names or len(literals) != len(names):
            self._report_dynamic(node, name)
            return
        for arg, literal in zip(names, literals):
            for part in normalize_name(literal).split("."):
                refusal = self.policy.attribute_refusal(part)
                if refusal is not None and refusal[0] != "dunder":  # dunders: string rule
                    self.report(arg, *refusal)

    def check_import(self, node: ast.Import) -> None:
        for alias in node.names:  # `import os, sys`: one report each, at each name
            refusal = self.policy.import_refusal(alias.name)
            if refusal is not None:
                self.report(alias, *refusal)
            if alias.asname is not None:
                self.check_bound_name(alias, alias.asname)

    def check_import_from(self, node: ast.ImportFrom) -> None:
        if node.level:
            self.report(
                node,
                "relative-import",
                "relative imports (`from . import x`) are not allowed; import allowed modules "
                f"by their full name. Allowed modules: {self.policy.allowed_list()}.",
            )
            return
        module = node.module or ""
        refusal = self.policy.import_refusal(module)
        if refusal is not None:
            self.report(node, *refusal)
            return
        for alias in node.names:
            if alias.name == "*":
                continue
            submodule = f"{module}.{alias.name}"
            if self.policy.is_blocked_module(submodule):
                self.report(alias, *self.policy.import_refusal(submodule))  # type: ignore[misc]
                continue
            refusal = self.policy.attribute_refusal(alias.name)
            if refusal is not None and refusal[0] != "dunder" and (module, alias.name) not in ALLOWED_MODULE_MEMBERS:
                self.report(alias, *refusal)
            self.check_bound_name(alias, alias.asname or alias.name)

    def check_annotation(self, annotation: ast.expr) -> None:
        """String annotations must be type expressions such as "Author" or "list[Book]".

        SQLAlchemy (``Mapped["..."]``) and ``typing`` turn these strings into code with
        ``eval``, so anything else in them is refused.
        """
        for node, text in _evaluated_strings(annotation):
            if not _is_type_expression(text):
                self.report(
                    node,
                    "annotation",
                    f"the string annotation {text!r} is not a plain type expression; "
                    f"write a class name such as \"Author\" or \"list[Book]\", or drop the annotation.",
                )


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
