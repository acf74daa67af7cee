"""The run-time layer's compile step: rewrite model code so that what it touches is checked.

Applied to the parsed tree just before it is compiled, whatever the validator said:

- every attribute *read* ``obj.name`` becomes ``__sandbox_attr__(obj, "name")``, the guard
  of ``guards.py`` (receiver and value checks); the name itself is checked here, by the
  policy's rules (dunders, private names, blocked attributes), and so are the names of
  attribute *writes* and *deletes* and of match-class patterns;
- identifiers that are dunders (``__builtins__``, ``__import__``, ``def __del__``...) are
  refused, except special methods defined directly in a class body (and assignments of
  them there, ``__repr__ = __str__``) and ``super().__init__``-style calls;
- the first statement of every function body, of every ``finally:`` block and of every
  ``except`` handler, and the start of every ``lambda``, is ``__sandbox_step__()``, which
  raises when no step is running: nothing the model defines (a method called by a later
  flush, a generator's ``finally`` run when the garbage collector closes it) runs
  outside its step;
- a ``case`` whose pattern has a class pattern checks every value it captured;
- ``a ** b`` becomes ``__sandbox_pow__(a, b)`` (see ``guards.checked_pow``);
- function annotations, and annotations outside class bodies, are dropped (nothing needs
  them, and Python 3.14 would evaluate them lazily, later); string annotations that remain
  must be plain type expressions, as in the validator.

The guard names are dunders, so model code can neither name nor replace them; they live
in the namespace's builtins (see ``runtime.py``).
"""

from __future__ import annotations

import ast
import re
from typing import Any

from .policy import SPECIAL_METHODS, Policy, bad_string_annotations, dunder_advice, normalize_name
from .source import Violation

ATTR = "__sandbox_attr__"
STEP = "__sandbox_step__"
VALUES = "__sandbox_values__"
POW = "__sandbox_pow__"

_DUNDER_IN_TEXT = re.compile(r"__[^\W_]\w*?__")
_SKIPPED_FIELDS = frozenset({"ctx", "type_comment", "kind"})
_FIELDS: dict[type, tuple[str, ...]] = {ast.Attribute: ("value",), ast.Constant: ()}  # attr: by the handler
# One shared node per guard name: compile() only reads the tree, and only the Call around
# each use carries the position that tracebacks show.
_NOWHERE = {"lineno": 1, "col_offset": 0, "end_lineno": 1, "end_col_offset": 0}
_ATTR_NAME = ast.Name(id=ATTR, ctx=ast.Load(), **_NOWHERE)
_STEP_NAME = ast.Name(id=STEP, ctx=ast.Load(), **_NOWHERE)
_VALUES_NAME = ast.Name(id=VALUES, ctx=ast.Load(), **_NOWHERE)
_POW_NAME = ast.Name(id=POW, ctx=ast.Load(), **_NOWHERE)
_NAME_CONSTANTS: dict[str, ast.Constant] = {}
# Shared generated nodes, skipped by the walk (their names are the guards' dunders).
_GENERATED: set[int] = {id(_ATTR_NAME), id(_STEP_NAME), id(_VALUES_NAME), id(_POW_NAME)}


def rewrite(tree: ast.Module, policy: Policy, code: str = "", checker: Any = None) -> list[Violation]:
    """Rewrite ``tree`` in place for the run-time layer; return what it refuses (may be []).

    ``checker`` (the validator's, when both layers are on) sees every original node in the
    same walk, before the node is rewritten: one traversal instead of two. Its findings
    stay its own; the rewrite's refusals are returned here.
    """
    rewriter = _Rewriter(policy, code)
    rewriter.walk(tree, checker)
    rewriter.finish()
    return sorted(rewriter.problems, key=lambda v: (v.line, v.col))


_PREPARED = "sandbox_prepared"  # attributes set on a prepared ast.Module
_PROBLEMS = "sandbox_problems"


def mark_prepared(tree: ast.Module, policy: Policy, problems: list[Violation]) -> None:
    """Remember on ``tree`` that it was rewritten under ``policy`` (and what that refused)."""
    setattr(tree, _PREPARED, policy)
    setattr(tree, _PROBLEMS, problems)


def prepared_problems(tree: ast.Module, policy: Policy) -> list[Violation] | None:
    """What the rewrite refused if ``tree`` was prepared under ``policy``; None if it was not.

    Raises ValueError if it was prepared under another policy (it cannot be rewritten twice).
    """
    prepared = getattr(tree, _PREPARED, None)
    if prepared is None:
        return None
    if prepared is not policy:
        raise ValueError("the tree was prepared under another policy")
    return list(getattr(tree, _PROBLEMS))


def _name_constant(name: str) -> ast.Constant:
    node = _NAME_CONSTANTS.get(name)
    if node is None:
        node = _NAME_CONSTANTS[name] = ast.Constant(value=name, **_NOWHERE)
        _GENERATED.add(id(node))
    return node


def _positions(node: Any) -> dict[str, int]:
    return {
        "lineno": node.lineno,
        "col_offset": node.col_offset,
        "end_lineno": node.end_lineno,
        "end_col_offset": node.end_col_offset,
    }


def _step_statement(at: Any) -> ast.Expr:
    where = _positions(at)
    return ast.Expr(value=ast.Call(func=_STEP_NAME, args=[], keywords=[], **where), **where)


class _Rewriter:
    def __init__(self, policy: Policy, code: str) -> None:
        self.policy = policy
        self.code = code
        self.problems: list[Violation] = []
        self.allowed: set[int] = set()  # nodes whose identifiers may be dunders
        self.class_statements: set[int] = set()  # statements directly in a class body
        self.unannotate: list[Any] = []  # functions and annotated assignments to strip
        self._seen: set[tuple[str, int, int]] = set()

    def finish(self) -> None:
        """Drop annotations that nothing needs (3.14 would evaluate them lazily, later)."""
        for node in self.unannotate:
            if type(node) is ast.AnnAssign:
                _drop_annotation(node)
                continue
            node.returns = None
            arguments = node.args
            for arg in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg, arguments.kwarg):
                if arg is not None:
                    arg.annotation = None

    def report(self, node: Any, rule: str, message: str) -> None:
        line = getattr(node, "lineno", 1) or 1
        col = (getattr(node, "col_offset", 0) or 0) + 1
        if (message, line, col) not in self._seen:
            self._seen.add((message, line, col))
            self.problems.append(Violation(rule, message, line, col))

    # -- the walk ------------------------------------------------------------------------------
    def walk(self, tree: ast.AST, checker: Any = None) -> None:
        """Visit every node once, parents first; rewrite each in place after ``checker`` saw it.

        Rewrites change a node's own fields (an attribute read becomes a call by taking the
        class ast.Call in place), never its parent's, so no parent links are needed and the
        checker, run first on each node, sees the code as written.
        """
        plans = _PLANS
        allowed = self.allowed
        identifier = self.identifier
        if checker is not None:
            check_handlers = checker.handlers
            check_allowed = checker.allowed_dunders
            check_identifier = checker.check_identifier
        node_type = ast.AST
        generated = _GENERATED
        no_checker = checker is None
        stack: list[Any] = [tree]
        push = stack.append
        pop = stack.pop
        while stack:
            node = pop()
            node_id = id(node)
            if node_id in generated:
                continue
            cls = type(node)
            if not no_checker:
                check = check_handlers.get(cls)
                if check is not None:
                    check(node)
            handler, fields = plans.get(cls) or _plan(cls)
            if handler is not None:
                if handler(self, node):
                    continue  # the handler took care of the children
                if type(node) is not cls:  # it changed (Attribute -> Call)
                    cls = type(node)
                    fields = (plans.get(cls) or _plan(cls))[1]
            for field_name in fields:
                value = getattr(node, field_name, None)
                kind = type(value)
                if kind is str:
                    texts: Any = (value,)
                elif kind is list:
                    texts = ()
                    for item in value:
                        if type(item) is str:
                            texts += (item,)
                        elif isinstance(item, node_type):
                            push(item)
                    if not texts:
                        continue
                else:
                    if value is not None and isinstance(value, node_type):
                        push(value)
                    continue
                # Identifiers: the usual ones (ASCII, no double underscore) need no look.
                for text in texts:
                    if "__" in text or not text.isascii():
                        if node_id not in allowed:
                            identifier(node, text)
                        if not no_checker and cls is not ast.Constant and node_id not in check_allowed:
                            check_identifier(node, text)

    # -- names ---------------------------------------------------------------------------------
    def identifier(self, node: Any, text: str) -> None:
        if "__" not in text and text.isascii():
            return
        match = _DUNDER_IN_TEXT.search(normalize_name(text))
        if match:
            name = match.group(0)
            self.report(node, "dunder", f"'{name}' is not allowed: {dunder_advice(name)}.")

    def attribute(self, node: ast.Attribute) -> bool:
        """Check an attribute's name; turn a read into a guard call (in place)."""
        name = node.attr
        if type(node.ctx) is not ast.Load:
            refusal = self.policy.attribute_refusal(name, True)
            if refusal is not None:
                self.report(node, *refusal)
            return False
        refusal = self.policy.attribute_refusal(name)
        if refusal is not None and not (name in SPECIAL_METHODS and _is_super_call(node.value)):
            self.report(node, *refusal)
            return False
        value = node.value
        node.__class__ = ast.Call  # same position, so tracebacks point at the attribute
        del node.attr, node.ctx
        del node.value
        node.func = _ATTR_NAME
        node.args = [value, _name_constant(name)]
        node.keywords = []
        return False

    # -- handlers (return True when they walked the node's children themselves) ----------------
    def function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
        self.unannotate.append(node)  # after the walk: the validator checks them first
        body = node.body
        first = body[0]
        docstring = (
            type(first) is ast.Expr and type(first.value) is ast.Constant and type(first.value.value) is str
        )
        body.insert(1 if docstring else 0, _step_statement(first))
        return False

    def lambda_(self, node: ast.Lambda) -> bool:
        body = node.body
        where = _positions(body)
        call = ast.Call(func=_STEP_NAME, args=[], keywords=[], **where)
        node.body = ast.BoolOp(op=ast.Or(), values=[call, body], **where)
        return False

    def try_(self, node: ast.Try) -> bool:
        if node.finalbody:
            node.finalbody.insert(0, _step_statement(node.finalbody[0]))
        return False

    def handler(self, node: ast.ExceptHandler) -> bool:
        node.body.insert(0, _step_statement(node.body[0]))
        return False

    def class_(self, node: ast.ClassDef) -> bool:
        for keyword in node.keywords:
            if keyword.arg == "metaclass":
                self.report(keyword, "class-keyword", "metaclass= is not allowed; write a plain class (or a @dataclass).")
        for statement in node.body:
            self.class_statements.add(id(statement))
            kind = type(statement)
            if kind in (ast.FunctionDef, ast.AsyncFunctionDef) and statement.name in SPECIAL_METHODS:
                self.allowed.add(id(statement))  # def __init__(self): ...
            elif kind is ast.Assign:  # __hash__ = None, __repr__ = __str__
                for target in (*statement.targets, statement.value):
                    if type(target) is ast.Name and target.id in SPECIAL_METHODS:
                        self.allowed.add(id(target))
            elif kind is ast.AnnAssign:
                for bad, text in bad_string_annotations(statement.annotation):
                    self.report(
                        bad,
                        "annotation",
                        f"the string annotation {text!r} is not a plain type expression; write a class "
                        f"name such as \"Author\" or \"list[Book]\", or drop the annotation.",
                    )
        return False

    def match_case(self, node: ast.match_case) -> bool:
        pattern = node.pattern
        if any(type(p) is ast.MatchClass for p in ast.walk(pattern)):
            names = sorted(_captured_names(pattern))
            if names:
                where = _positions(pattern)
                check = ast.Call(
                    func=_VALUES_NAME, args=[ast.Name(id=n, ctx=ast.Load(), **where) for n in names], keywords=[], **where
                )
                node.guard = check if node.guard is None else ast.BoolOp(op=ast.And(), values=[check, node.guard], **where)
        return False

    def match_class(self, node: ast.MatchClass) -> bool:
        for name in node.kwd_attrs:  # `case C(attr=...)` reads attr
            refusal = self.policy.attribute_refusal(name)
            if refusal is not None:
                self.report(node, *refusal)
        return False

    def bin_op(self, node: ast.BinOp) -> bool:
        """``a ** b`` becomes ``__sandbox_pow__(a, b)``: huge integer powers run in C, unstoppable."""
        if type(node.op) is ast.Pow:
            left, right = node.left, node.right
            node.__class__ = ast.Call
            del node.left, node.op, node.right
            node.func = _POW_NAME
            node.args = [left, right]
            node.keywords = []
        return False

    def aug_assign(self, node: ast.AugAssign) -> bool:
        """``x **= n`` on a name becomes ``x = __sandbox_pow__(x, n)``."""
        target = node.target
        if type(node.op) is ast.Pow and type(target) is ast.Name:
            where = _positions(node)
            value = ast.Call(func=_POW_NAME, args=[ast.Name(id=target.id, ctx=ast.Load(), **_positions(target)), node.value], keywords=[], **where)
            node.__class__ = ast.Assign
            del node.target, node.op
            node.targets = [target]
            node.value = value
        return False

    def ann_assign(self, node: ast.AnnAssign) -> bool:
        if id(node) not in self.class_statements:
            self.unannotate.append(node)  # kept in class bodies: dataclasses read them
        return False

    def match_value(self, node: ast.MatchValue) -> bool:
        # `case Color.RED:` must stay a dotted name (Python compares, never hands it out).
        value = node.value
        while type(value) is ast.Attribute:
            refusal = self.policy.attribute_refusal(value.attr)
            if refusal is not None:
                self.report(value, *refusal)
            value = value.value
        if type(value) is ast.Name:
            self.identifier(value, value.id)
        return True


def _is_super_call(node: Any) -> bool:
    return (
        type(node) is ast.Call
        and type(node.func) is ast.Name
        and node.func.id == "super"
    )


def _captured_names(pattern: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(pattern):
        if type(node) in (ast.MatchAs, ast.MatchStar) and node.name:
            names.add(node.name)
        elif type(node) is ast.MatchMapping and node.rest:
            names.add(node.rest)
    return names


def _drop_annotation(node: ast.AnnAssign) -> None:
    """``x: T = v`` becomes ``x = v`` and ``x: T`` becomes ``pass``, in place."""
    target, value = node.target, node.value
    for name in ("target", "annotation", "value", "simple"):
        delattr(node, name)
    if value is None:
        node.__class__ = ast.Pass
    else:
        node.__class__ = ast.Assign
        node.targets = [target]
        node.value = value


_HANDLERS: dict[type, Any] = {
    ast.Attribute: _Rewriter.attribute,
    ast.AnnAssign: _Rewriter.ann_assign,
    ast.BinOp: _Rewriter.bin_op,
    ast.AugAssign: _Rewriter.aug_assign,
    ast.FunctionDef: _Rewriter.function,
    ast.AsyncFunctionDef: _Rewriter.function,
    ast.Lambda: _Rewriter.lambda_,
    ast.Try: _Rewriter.try_,
    ast.ExceptHandler: _Rewriter.handler,
    ast.ClassDef: _Rewriter.class_,
    ast.match_case: _Rewriter.match_case,
    ast.MatchClass: _Rewriter.match_class,
    ast.MatchValue: _Rewriter.match_value,
}
if hasattr(ast, "TryStar"):
    _HANDLERS[ast.TryStar] = _Rewriter.try_

# Per node class: its handler (or None) and the fields the walk visits; one look-up per node.
_PLANS: dict[type, tuple[Any, tuple[str, ...]]] = {}


def _plan(cls: type) -> tuple[Any, tuple[str, ...]]:
    fields = _FIELDS.get(cls)
    if fields is None:
        fields = tuple(f for f in cls._fields if f not in _SKIPPED_FIELDS)
    plan = _PLANS[cls] = (_HANDLERS.get(cls), fields)
    return plan
