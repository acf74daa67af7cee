"""Static (AST) checks for model-written Python, run before the code is executed.

The validator is the first of several layers (the run-time layer of ``runtime.py`` is the
second; the browser worker's Content-Security-Policy and the database transaction are the
others). It rejects code that reaches for interpreter internals or for anything outside an
allow-list of modules, and explains each problem in a sentence a language model can act on.
The rules themselves live in ``policy.py`` and are shared with the run-time layer.

What it refuses (rule ids are stable; tests and prompts may rely on them):

``syntax``             the code does not parse.
``dunder``             any ``__name__``-style identifier, attribute, keyword or import, and
                       any string constant containing one (``getattr(x, "__class__")``,
                       ``"{0.__class__}".format(x)``), except: plain-data reads such as
                       ``cls.__name__``, ``__doc__``, ``__tablename__`` (and, with the
                       run-time layer on, ``type(x)``-like ``x.__class__``, ``__table__``,
                       ``__mapper__``); special methods defined directly in a class body
                       and reached through ``super()``.
``blocked-name``       references to ``eval``, ``exec``, ``open``, ... as calls or as bare
                       values (``f = eval``). With the run-time layer on, ``getattr``,
                       ``setattr``, ``hasattr``, ``vars``, ``dir`` and one-argument
                       ``type`` are its checked versions and allowed.
``blocked-attribute``  attributes that reach frames, code objects, modules such as ``os`` or
                       ``sys`` re-exported by allowed modules, evaluators of strings, event
                       listeners, or the raw database connection (``g.gi_frame``,
                       ``typing.sys``, ``relationship``, ``session.bind``, ``event.listen``).
``private-attribute``  ``obj._name`` (except a few public SQLAlchemy/namedtuple names such as
                       ``row._mapping``); private module members such as ``random._os``
                       re-export modules.
``format-field``       an attribute in a format field breaks the rules above
                       (``"{0.gi_frame}"``), in any string constant that is a template.
``format-template``    (run-time layer off) ``str.format``/``format_map`` on a template that
                       is not a string literal: only the run-time layer can check a
                       template built while the code runs.
``dynamic-attribute``  ``operator.attrgetter``/``methodcaller`` with names that are not
                       literals, or imported under another name (run-time layer off);
                       ``vars()``/``dir()`` without an argument and ``type(a, b, c)``.
``class-keyword``      ``class C(metaclass=...)``.
``finalizer``          (run-time layer off) ``try``/``with`` blocks in generators: their
                       clean-up runs whenever the generator is garbage-collected, maybe
                       after the step.
``annotation``         string annotations that are not plain type expressions: SQLAlchemy and
                       ``typing`` evaluate such strings with ``eval``.
``import-not-allowed`` imports outside the policy's allow-list.
``blocked-module``     imports of modules that are always refused (``os``, ``sys``, ``js``...).
``relative-import``    ``from . import x``.
``broad-except``       bare ``except:`` and ``except BaseException`` (they would swallow the
                       time limit).
``too-complex``        absurdly deep expressions ("-" * 2000 + "1"), refused before parsing:
                       Pyodide's parser would overflow the JavaScript stack and die.

Identifiers are compared after NFKC normalisation, which is what Python itself does
(``ｅｖａｌ`` *is* ``eval``); the parser already normalises identifiers, and string constants
are normalised here before they are searched. Names are otherwise compared
case-sensitively, as Python does (``Eval`` is an ordinary name); module names are compared
case-insensitively, to be safe on case-insensitive file systems.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from typing import Any

from .formatting import FORMAT_METHODS, template_paths
from .policy import (
    ALLOWED_MODULE_MEMBERS,
    ATTRIBUTE_REASONS,
    DEFAULT_ALLOWED_IMPORTS,
    DEFAULT_BLOCKED_ATTRIBUTES,
    DEFAULT_BLOCKED_MODULES,
    DEFAULT_BLOCKED_NAMES,
    GUARDED_DUNDER_READS,
    PUBLIC_UNDERSCORE_ATTRIBUTES,
    SAFE_DUNDER_READS,
    SPECIAL_METHODS,
    SPECIAL_METHODS_WITHOUT_RUNTIME,
    Policy,
    bad_string_annotations,
    default_policy,
    dunder_advice,
    is_private_name,
    normalize_name,
)
from .rewrite import mark_prepared, rewrite
from .source import ValidationError, Violation, parse

__all__ = [
    "ALLOWED_MODULE_MEMBERS",
    "ATTRIBUTE_REASONS",
    "DEFAULT_ALLOWED_IMPORTS",
    "DEFAULT_BLOCKED_ATTRIBUTES",
    "DEFAULT_BLOCKED_MODULES",
    "DEFAULT_BLOCKED_NAMES",
    "PUBLIC_UNDERSCORE_ATTRIBUTES",
    "SPECIAL_METHODS",
    "Policy",
    "ValidationError",
    "Violation",
    "check",
    "check_parsed",
    "is_private_name",
    "normalize_name",
    "validate",
]

_DUNDER_IN_TEXT = re.compile(r"__[^\W_]\w*?__")
# Fields the walk skips: `ctx` holds no names; the others are strings but not identifiers.
# Attribute names are checked by check_attribute_node (reads and writes differ).
_SKIPPED_FIELDS = frozenset({"ctx", "type_comment", "kind"})
_FIELDS: dict[type, tuple[str, ...]] = {ast.Attribute: ("value",)}
# Callables that perform getattr with their (string) arguments.
_DYNAMIC_ATTRIBUTE_CALLS = frozenset({"attrgetter", "methodcaller"})
_BROAD_EXCEPTIONS = frozenset({"BaseException", "KeyboardInterrupt", "SystemExit", "GeneratorExit"})


def check(code: str, policy: Policy | None = None) -> list[Violation]:
    """Every rule ``code`` breaks, in source order; an empty list means it may run.

    Top-level ``await`` is accepted (the code is parsed, not compiled).
    """
    return check_parsed(code, policy)[0]


def check_parsed(code: str, policy: Policy | None = None) -> tuple[list[Violation], ast.Module | None]:
    """Like :func:`check`, and also the parsed tree (None when the code did not parse).

    The loop hands the tree on to the executor, so a step's code is parsed once. With the
    run-time layer on, the same walk also prepares the tree for it (its rewrite, see
    ``rewrite.py``): the validator checks each node as written, then the rewrite changes
    it, and the executor compiles the result without walking it again. With the validator
    switched off (``policy.validator``) nothing is checked here.
    """
    policy = policy or default_policy()
    tree, problem = parse(code)
    if problem is not None:
        return [problem], None
    assert tree is not None
    checker = _Checker(code, policy) if policy.validator else None
    if policy.runtime:
        mark_prepared(tree, policy, rewrite(tree, policy, code, checker))
    elif checker is not None:
        checker.visit_all(tree)
    if checker is None:
        return [], tree
    checker.check_module_members()
    return sorted(checker.violations, key=lambda v: (v.line, v.col)), tree


def validate(code: str, policy: Policy | None = None) -> None:
    """Raise :class:`ValidationError` if :func:`check` finds anything."""
    violations = check(code, policy)
    if violations:
        raise ValidationError(violations)


def _is_literal_string(node: Any) -> bool:
    return (type(node) is ast.Constant and type(node.value) is str) or type(node) is ast.JoinedStr


class _Checker:
    """One pass over the tree; collects violations instead of stopping at the first."""

    def __init__(self, code: str, policy: Policy) -> None:
        self.code = code
        self.policy = policy
        self.runtime = policy.runtime
        self.refused_names = policy.refused_names
        self.dunder_reads = SAFE_DUNDER_READS | GUARDED_DUNDER_READS if self.runtime else SAFE_DUNDER_READS
        self.special_methods = SPECIAL_METHODS if self.runtime else SPECIAL_METHODS_WITHOUT_RUNTIME
        self.violations: list[Violation] = []
        self._seen: set[tuple[str, int, int, str]] = set()
        self._lines: list[str] | None = None
        # Nodes already checked by their parent (attrgetter calls, `"...".format(...)`).
        self._checked: set[int] = set()
        # Method definitions and names whose special-method name is allowed.
        self._allowed_dunders: set[int] = set()
        self.allowed_dunders = self._allowed_dunders  # read by the shared walk (rewrite.py)
        self.handlers = self._handlers
        self.check_identifier = self._check_identifier
        # `name.attr` uses and the modules names are bound to by `import`, matched after
        # the walk (the walk does not visit statements in order): `import io; io.open`.
        self._name_attributes: list[tuple[ast.Attribute, str, str]] = []
        self._module_names: dict[str, str] = {}

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
        handlers = self.handlers
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
                        elif type(item) is str and not names_ok:
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
            ast.FunctionDef: self.check_function,
            ast.AsyncFunctionDef: self.check_function,
            ast.arg: self.check_arg,
            ast.AnnAssign: self.check_ann_assign,
            ast.ExceptHandler: self.check_except,
        }

    # -- identifiers and names -------------------------------------------------------

    def _check_identifier(self, node: ast.AST, text: str) -> None:
        if "__" not in text and text.isascii():  # the usual case, cheaply
            return
        # Dotted import paths and t-string source texts contain several identifiers.
        match = _DUNDER_IN_TEXT.search(normalize_name(text))
        if match:
            name = match.group(0)
            self.report(node, "dunder", f"'{name}' is not allowed: {dunder_advice(name, self.runtime)}.")

    def check_name(self, node: ast.Name) -> None:
        if node.id in self.refused_names:  # check_bound_name's test, inline: a third of all nodes are names
            self.check_bound_name(node, node.id)
        if node.id in _DYNAMIC_ATTRIBUTE_CALLS and not self.runtime and id(node) not in self._checked:
            self._report_dynamic(node, node.id)

    def check_bound_name(self, node: ast.AST, name: str) -> None:
        """Blocked names are refused as values, as targets and as import aliases."""
        reason = self.policy.name_refusal(name) if name in self.refused_names else None
        if reason is not None:
            self.report(node, "blocked-name", reason)

    # -- attributes ------------------------------------------------------------------

    def check_attribute_node(self, node: ast.Attribute) -> None:
        name = node.attr
        store = type(node.ctx) is not ast.Load
        if not store and name in SPECIAL_METHODS and _is_super_call(node.value):
            if name in self.special_methods:
                return  # super().__init__(...)
        if not store and name in FORMAT_METHODS and not self.runtime and id(node) not in self._checked:
            self.report(
                node,
                "format-template",
                f"'.{name}' may only be used directly on a string literal here (the template must be "
                f"visible in the code), e.g. \"{{}}: {{:.2f}}\".format(title, price); or use an f-string.",
            )
            return
        if type(node.value) is ast.Name:
            self._name_attributes.append((node, node.value.id, name))
        self.check_attribute(node, name, store)

    def check_module_members(self) -> None:
        """Members that a module's rules hide (io.open, csv.register_dialect), used by name."""
        if not self._module_names:
            return
        for node, name, attr in self._name_attributes:
            module = self._module_names.get(name)
            if module is not None:
                hidden = self.policy.member_refusal(module, attr)
                if hidden is not None:
                    self.report(node, "blocked-attribute", hidden + ".")

    def check_attribute(self, node: ast.AST, name: str, store: bool = False) -> None:
        refusal = self.policy.attribute_refusal(name, store)
        if refusal is not None:
            self.report(node, *refusal)
        elif name in _DYNAMIC_ATTRIBUTE_CALLS and not self.runtime and id(node) not in self._checked:
            self._report_dynamic(node, name)

    def _report_dynamic(self, node: ast.AST, name: str) -> None:
        self.report(
            node,
            "dynamic-attribute",
            f"'{name}' may only be called directly with literal attribute names, "
            f"e.g. {name}(\"name\"); or write a lambda such as `lambda a: a.name`.",
        )

    # -- strings ---------------------------------------------------------------------

    def check_string_constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        if not isinstance(value, str) or (value.isascii() and "_" not in value and "{" not in value):
            return
        text = normalize_name(value)
        if "__" in text:
            for match in _DUNDER_IN_TEXT.finditer(text):
                name = match.group(0)
                if name not in self.dunder_reads:
                    self.report(
                        node,
                        "dunder",
                        f"the string contains the dunder name '{name}'; dunder names may not be used in "
                        f"any form (attributes, getattr-style strings, format fields): {dunder_advice(name, self.runtime)}.",
                    )
                    break
        if "{" in text and ("." in text or "[" in text):
            self.check_template(node, text)

    def check_template(self, node: ast.AST, template: str) -> None:
        """Attributes in format fields obey the same rules as attributes in code."""
        try:
            paths = list(template_paths(template))
        except ValueError:
            return  # not a format template
        for field, is_attribute, key in paths:
            if is_attribute:
                refusal = self.policy.attribute_refusal(normalize_name(str(key)))
                if refusal is not None:
                    self.report(node, "format-field", f"the format field '{{{field}}}' reads an attribute: {refusal[1]}")
                    return

    # -- calls -----------------------------------------------------------------------

    def check_call(self, node: ast.Call) -> None:
        func = node.func
        if type(func) is ast.Name:
            name = func.id
        elif type(func) is ast.Attribute:
            name = func.attr
            if name in FORMAT_METHODS and _is_literal_string(func.value):
                self._checked.add(id(func))  # "{}: {}".format(...): the literal is checked as a template
                return
        else:
            return
        if name in _DYNAMIC_ATTRIBUTE_CALLS:
            self._check_dynamic_call(node, func, name)
        elif type(func) is ast.Name and self.runtime:
            self._check_guarded_builtin(node, name)

    def _check_dynamic_call(self, node: ast.Call, func: ast.expr, name: str) -> None:
        self._checked.add(id(func))
        # attrgetter("a.b", "c") looks up every argument; methodcaller("m", *args) only the first.
        names = node.args if name == "attrgetter" else node.args[:1]
        literals = [a.value for a in names if type(a) is ast.Constant and type(a.value) is str]
        if not names or len(literals) != len(names):
            if not self.runtime:  # the run-time layer checks computed names; without it, refuse
                self._report_dynamic(node, name)
            return
        for arg, literal in zip(names, literals):
            for part in normalize_name(literal).split("."):
                refusal = self.policy.attribute_refusal(part)
                if refusal is not None and refusal[0] != "dunder":  # dunders: string rule
                    self.report(arg, *refusal)
                elif not self.runtime and name == "methodcaller" and part in FORMAT_METHODS:
                    self.report(arg, "format-template", "methodcaller('format') is not allowed here; call .format on a string literal, or use an f-string.")

    def _check_guarded_builtin(self, node: ast.Call, name: str) -> None:
        """getattr & co. are checked at run time; literal names get their message now."""
        args = node.args
        if name in ("getattr", "hasattr", "setattr") and len(args) >= 2:
            key = args[1]
            if type(key) is ast.Constant and type(key.value) is str:
                refusal = self.policy.attribute_refusal(normalize_name(key.value), name == "setattr")
                if refusal is not None and refusal[0] != "dunder":  # dunders: string rule
                    self.report(key, *refusal)
        elif name in ("vars", "dir") and not args and not node.keywords:
            self.report(node, "dynamic-attribute", f"{name}() needs an object here, e.g. {name}(book); refer to your own variables by name.")
        elif name == "type" and len(args) + len(node.keywords) > 1:
            self.report(node, "dynamic-attribute", "type() takes one argument here (the class of x); to define a class, write a `class` statement.")

    # -- imports ---------------------------------------------------------------------

    def check_import(self, node: ast.Import) -> None:
        for alias in node.names:  # `import os, sys`: one report each, at each name
            refusal = self.policy.import_refusal(alias.name)
            if refusal is not None:
                self.report(alias, *refusal)
            if alias.asname is not None:
                self.check_bound_name(alias, alias.asname)
                self._module_names[alias.asname] = alias.name
            else:
                top = alias.name.split(".")[0]
                self._module_names[top] = top

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
            hidden = self.policy.member_refusal(module, alias.name)
            if hidden is not None:
                self.report(alias, "blocked-attribute", hidden + ".")
            if alias.asname is not None and self.policy.is_allowed_module(submodule):
                self._module_names[alias.asname] = submodule  # from html import parser as p
            if alias.name in _DYNAMIC_ATTRIBUTE_CALLS and alias.asname not in (None, alias.name) and not self.runtime:
                self.report(
                    alias,
                    "dynamic-attribute",
                    f"import '{alias.name}' under its own name (`from {module} import {alias.name}`), "
                    f"so that its arguments can be checked.",
                )
            self.check_bound_name(alias, alias.asname or alias.name)

    # -- classes, functions, handlers ------------------------------------------------

    def check_class(self, node: ast.ClassDef) -> None:
        for keyword in node.keywords:
            if keyword.arg == "metaclass":
                self.report(keyword, "class-keyword", "metaclass= is not allowed; write a plain class (or a @dataclass).")
        for statement in node.body:
            kind = type(statement)
            if kind in (ast.FunctionDef, ast.AsyncFunctionDef) and statement.name in SPECIAL_METHODS:
                if statement.name in self.special_methods:
                    self._allowed_dunders.add(id(statement))  # def __init__(self): ...
                else:
                    self._allowed_dunders.add(id(statement))  # reported here, not twice
                    self.report(
                        statement,
                        "dunder",
                        f"defining '{statement.name}' is not allowed without the run-time layer: host code "
                        f"could call it after the step. Define __init__ only, and plain methods.",
                    )
            elif kind is ast.Assign and self.runtime:  # __hash__ = None, __repr__ = __str__
                for target in (*statement.targets, statement.value):
                    if type(target) is ast.Name and target.id in SPECIAL_METHODS:
                        self._allowed_dunders.add(id(target))

    def check_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if node.returns is not None:
            self.check_annotation(node.returns)
        if not self.runtime and _is_generator(node):
            for inner in _own_nodes(node):
                if type(inner) in (ast.Try, ast.With, ast.AsyncWith) or type(inner).__name__ == "TryStar":
                    self.report(
                        inner,
                        "finalizer",
                        "a generator may not hold try/with blocks here: their clean-up would run when the "
                        "generator is garbage-collected, after the step. Collect the results in a list instead.",
                    )
                    break

    def check_match_class(self, node: ast.MatchClass) -> None:
        for attr in node.kwd_attrs:  # `case C(attr=...)` is a getattr
            self.check_attribute(node, attr)

    def check_arg(self, node: ast.arg) -> None:
        if node.annotation is not None:
            self.check_annotation(node.annotation)

    def check_ann_assign(self, node: ast.AnnAssign) -> None:
        self.check_annotation(node.annotation)

    def check_annotation(self, annotation: ast.expr) -> None:
        """String annotations must be type expressions such as "Author" or "list[Book]".

        SQLAlchemy (``Mapped["..."]``) and ``typing`` turn these strings into code with
        ``eval``, so anything else in them is refused.
        """
        for node, text in bad_string_annotations(annotation):
            self.report(
                node,
                "annotation",
                f"the string annotation {text!r} is not a plain type expression; "
                f"write a class name such as \"Author\" or \"list[Book]\", or drop the annotation.",
            )

    def check_except(self, node: ast.ExceptHandler) -> None:
        """Refuse handlers that would swallow the step's time limit or an interrupt.

        The time bound and the browser's interrupt arrive as BaseExceptions; no timer
        can get out of a bare ``except:`` or ``except BaseException`` in a loop.
        """
        caught = node.type
        names = caught.elts if isinstance(caught, ast.Tuple) else [caught]
        broad = caught is None or any(isinstance(n, ast.Name) and n.id in _BROAD_EXCEPTIONS for n in names)
        if broad:
            self.report(
                node,
                "broad-except",
                "bare `except:` and `except BaseException` are not allowed (they would swallow the "
                "time limit); catch `Exception` or a specific error instead.",
            )


def _is_super_call(node: Any) -> bool:
    return type(node) is ast.Call and type(node.func) is ast.Name and node.func.id == "super"


def _own_nodes(function: ast.AST) -> list[ast.AST]:
    """The nodes of a function's body, not those of functions or classes nested in it."""
    found: list[ast.AST] = []
    stack = list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def _is_generator(function: ast.AST) -> bool:
    return any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in _own_nodes(function))
