"""The AST validator on its own: hostile snippets are refused with the right rule and line,
ordinary agent code passes, and NFKC spellings of blocked names are caught."""

from __future__ import annotations

import textwrap

import pytest

from py_agent.sandbox.validator import (
    DEFAULT_ALLOWED_IMPORTS,
    DEFAULT_BLOCKED_MODULES,
    DEFAULT_BLOCKED_NAMES,
    Policy,
    ValidationError,
    Violation,
    check,
    validate,
)

# The validator's rules depend on whether the run-time layer is on: with it, checked
# getattr/vars/dir/type and `x.__class__` are allowed; without it (the validator alone)
# they are refused. Tests of rules that hold either way run under both policies.
ALONE = Policy(runtime=False)
BOTH_POLICIES = [pytest.param(Policy(), id="with-runtime"), pytest.param(ALONE, id="validator-alone")]


def found(code: str, policy: Policy | None = None) -> set[tuple[str, int]]:
    """(rule, line) of every violation."""
    return {(v.rule, v.line) for v in check(textwrap.dedent(code), policy)}


def assert_refused(code: str, rule: str, line: int = 1, policy: Policy | None = None) -> None:
    result = found(code, policy)
    assert (rule, line) in result, f"expected [{rule}] on line {line}, got {sorted(result)}"


# -- dunders in any spelling -----------------------------------------------------------------

DUNDER_CASES = [
    "x.__globals__",
    "y = 1\nx = ().__class__.__base__.__subclasses__()",
    "__builtins__",
    "__builtins__['eval']",
    "__import__('os')",
    "getattr(x, '__globals__')",
    "import operator\noperator.attrgetter('__globals__')(f)",
    "vars()['__x__']",
    "'{0.__globals__}'.format(x)",
    "'{.__globals__}'.format(f)",
    "'{x.__init__.__globals__}'.format_map({'x': f})",
    "'{0[__builtins__]}'.format(g)",
    "f'{x.__globals__}'",
    "f'{x:{y.__code__}}'",
    "name = 'x__globals__x'[1:-1]",
    "name = b'__globals__'.decode()",
    "dict(__class__=1)",
    "def f(__x__):\n    pass",
    "class A:\n    __slots__ = ()",
    "try:\n    pass\nexcept Exception as __e__:\n    pass",
    "def f():\n    global __builtins__",
    "match x:\n    case C(__class__=c):\n        pass",
    "from __future__ import annotations",
    "import math as __m__",
]


@pytest.mark.parametrize("policy", BOTH_POLICIES)
@pytest.mark.parametrize("code", DUNDER_CASES)
def test_dunders_are_refused(code: str, policy: Policy) -> None:
    assert_refused(code, "dunder", line=_dunder_line(code), policy=policy)


def test_plain_data_dunders_may_be_read() -> None:
    # Names, docstrings, table names and enum members are plain data: fine in both modes.
    code = "n = Book.__name__, Book.__qualname__, Book.__doc__, Book.__tablename__, Genre.__members__"
    assert check(code) == [] and check(code, ALONE) == []
    # Writing them is still refused.
    assert_refused("Book.__name__ = 'x'", "dunder")


def test_class_table_and_mapper_need_the_runtime_layer() -> None:
    # type(x)-like reads are safe only because the run-time layer checks what follows them.
    for code in ("n = x.__class__.__name__", "t = Book.__table__.name", "m = Book.__mapper__"):
        assert check(code) == [], code
        (violation,) = check(code, ALONE)
        assert violation.rule == "dunder"
    # The message names the working alternative.
    assert "sqlalchemy.inspect(Model).local_table" in check("t = Book.__table__", ALONE)[0].message
    assert "isinstance" in check("c = x.__class__", ALONE)[0].message


def _dunder_line(code: str) -> int:
    """The first line mentioning a double underscore."""
    for number, line in enumerate(code.splitlines(), 1):
        if "__" in line:
            return number
    raise AssertionError("no dunder in test case")


def test_dunder_positions_count_characters() -> None:
    (violation,) = check("s = 'é'; y.__globals__")
    assert (violation.rule, violation.line, violation.col) == ("dunder", 1, 10)


def test_four_underscores_in_sql_like_patterns_are_fine() -> None:
    # `____` is an SQL LIKE pattern (four characters), not a dunder.
    assert check("q = select(Author).where(Author.name.like('____'))") == []


def test_special_methods_may_be_defined_in_classes() -> None:
    code = """
        class Money(Exception):
            def __init__(self, amount):
                super().__init__(f"{amount} EUR")
                self.amount = amount
            def __repr__(self):
                return f"Money({self.amount})"
            def __eq__(self, other):
                return isinstance(other, Money) and other.amount == self.amount
            __hash__ = None
    """
    # With the run-time layer, model functions cannot run after their step, so special
    # methods (and `__hash__ = None`, `__repr__ = __str__` in the class body) are fine.
    assert found(code) == set()
    # Without it, host code could call __repr__/__eq__ after the step: only __init__ is allowed.
    assert found(code, ALONE) == {("dunder", 6), ("dunder", 8), ("dunder", 10)}


@pytest.mark.parametrize(
    ("code", "line"),
    [
        ("def __init__(self):\n    pass", 1),  # only inside a class body
        ("class A:\n    def __getattr__(self, name):\n        pass", 2),  # getattr by name
        ("class A:\n    def __del__(self):\n        pass", 2),  # runs at some later gc
        ("class A:\n    def f(self):\n        return super().__getattribute__(n)", 3),
        ("class A:\n    def f(self):\n        return self.__init__", 3),  # only via super()
        ("class A:\n    def f(self):\n        return super().__init__.__globals__", 3),
    ],
)
def test_special_method_exceptions_are_narrow(code: str, line: int) -> None:
    assert_refused(code, "dunder", line=line)


# -- blocked names -------------------------------------------------------------------------

BLOCKED_NAMES = sorted(
    {
        "exec", "eval", "compile", "open", "getattr", "setattr", "delattr", "globals",
        "locals", "vars", "dir", "breakpoint", "input", "help", "memoryview", "exit", "quit",
    }
)


GUARDED_NAMES = ["dir", "getattr", "hasattr", "setattr", "type", "vars"]


@pytest.mark.parametrize("name", BLOCKED_NAMES)
def test_blocked_names_as_calls(name: str) -> None:
    assert_refused(f"x = 1\n{name}('x')", "blocked-name", line=2, policy=ALONE)
    if name not in GUARDED_NAMES:
        assert_refused(f"x = 1\n{name}('x')", "blocked-name", line=2)


@pytest.mark.parametrize("name", BLOCKED_NAMES)
def test_blocked_names_as_bare_references(name: str) -> None:
    assert_refused(f"f = {name}", "blocked-name", policy=ALONE)
    assert_refused(f"fns = [print, {name}]", "blocked-name", policy=ALONE)
    if name not in GUARDED_NAMES:
        assert_refused(f"f = {name}", "blocked-name")


@pytest.mark.parametrize("name", GUARDED_NAMES)
def test_guarded_builtins_are_allowed_with_the_runtime_layer(name: str) -> None:
    # The run-time layer offers checked versions; literal names are still checked now.
    assert check(f"f = {name}") == []
    assert check("v = getattr(book, column.key)\nsetattr(book, 'title', 'x')\nt = type(x).__name__") == []
    assert_refused("g = getattr(gen, 'gi_frame')", "blocked-attribute")
    assert_refused("s = setattr(book, '_sa_instance_state', None)", "private-attribute")
    assert_refused("v = vars()", "dynamic-attribute")
    assert_refused("C = type('C', (), {})", "dynamic-attribute")


def test_blocked_names_cover_the_brief() -> None:
    assert set(BLOCKED_NAMES) <= DEFAULT_BLOCKED_NAMES
    assert {"hasattr", "type"} <= DEFAULT_BLOCKED_NAMES


def test_blocked_name_bound_by_an_import() -> None:
    assert_refused("from re import compile", "blocked-name")  # binds the name `compile`
    assert_refused("import math as eval", "blocked-name")
    assert check("import re\nr = re.compile('a+')") == []  # the attribute is fine


def test_blocked_name_message_says_what_to_do() -> None:
    (violation,) = check("getattr(x, 'name')", ALONE)
    assert "obj.name" in violation.message
    assert str(violation).startswith("line 1, col 1: [blocked-name] ")


# -- blocked attributes ----------------------------------------------------------------------

@pytest.mark.parametrize(
    "attr",
    [
        "gi_frame", "f_globals", "f_locals", "f_back", "tb_frame", "cr_frame", "ag_frame",
        "f_builtins", "co_code", "func_globals", "mro", "gi_code", "f_code",
    ],
)
def test_frame_and_introspection_attributes(attr: str) -> None:
    assert_refused(f"g = (i for i in [])\nx = g.{attr}", "blocked-attribute", line=2)


def test_generator_frame_escape() -> None:
    code = "g = (i for i in [])\nb = g.gi_frame.f_back.f_globals"
    assert found(code) == {("blocked-attribute", 2)}


@pytest.mark.parametrize(
    "code",
    [
        "import typing\nx = typing.sys",  # allowed modules re-export dangerous ones
        "import json\nx = json.codecs",
        "import enum\nx = enum.bltns",
        "import uuid\nx = uuid.os",
        "import dataclasses\nx = dataclasses.inspect",
        "from typing import sys",
    ],
)
def test_modules_reached_through_allowed_modules(code: str) -> None:
    assert_refused(code, "blocked-attribute", line=code.count("\n") + 1)


def test_inspect_attribute_suggests_the_sqlalchemy_import() -> None:
    (violation,) = check("import sqlalchemy\nsqlalchemy.inspect(Author)")
    assert violation.rule == "blocked-attribute"
    assert "from sqlalchemy import inspect" in violation.message
    assert check("from sqlalchemy import inspect\nm = inspect(Author)") == []
    assert_refused("from dataclasses import inspect", "blocked-attribute")  # the module


@pytest.mark.parametrize(
    "code",
    [
        "import typing\nh = typing.get_type_hints(C)",  # evaluates string annotations
        "from typing import ForwardRef",
        "import string\nv = string.Formatter().get_field(name, [x], {})",  # getattr by name
        "from sqlalchemy.orm import relationship",  # string arguments are eval'd
        "import sqlalchemy.orm\nr = sqlalchemy.orm.relationship('A', primaryjoin='x')",
        "Author.registry.map_imperatively(C, t)",
        "from sqlalchemy import create_engine",
        "e = session.bind",
        "e = session.get_bind()",
        "c = session.connection().connection",
        "d = session.bind.dialect.dbapi",
    ],
)
def test_attributes_that_evaluate_strings_or_bypass_the_session(code: str) -> None:
    assert_refused(code, "blocked-attribute", line=code.count("\n") + 1)


def test_sqlalchemy_code_generators_are_unreachable() -> None:
    # sqlalchemy.util.attrsetter builds source text from its argument and execs it.
    code = "import sqlalchemy.orm\nf = sqlalchemy.orm.util.util.attrsetter(text)"
    assert ("blocked-attribute", 2) in found(code)


def test_match_class_patterns_are_attribute_lookups() -> None:
    code = "match g:\n    case object(gi_frame=frame):\n        pass"
    assert_refused(code, "blocked-attribute", line=2)


def test_allowed_attributes_exempt_column_names() -> None:
    code = "cars = session.scalars(select(Car).where(Car.engine == 'V8')).all()"
    assert_refused(code, "blocked-attribute")
    assert check(code, Policy(allowed_attributes=frozenset({"engine"}))) == []
    # Dunders and private names are never exempt.
    policy = Policy(allowed_attributes=frozenset({"__globals__", "_os"}))
    assert_refused("x = y.__globals__", "dunder", policy=policy)
    assert_refused("x = y._os", "private-attribute", policy=policy)


def test_format_map_is_allowed_but_its_fields_are_checked() -> None:
    # Decision: format_map is no more dangerous than format (both only read attributes
    # named in the string), so the same string rule covers both.
    assert check("s = '{name}: {n}'.format_map({'name': 'a', 'n': 1})") == []
    assert_refused("s = '{x.__globals__}'.format_map(d)", "dunder")


# -- private attributes ----------------------------------------------------------------------

def test_private_attributes() -> None:
    assert_refused("import random\nos = random._os", "private-attribute", line=2)
    assert_refused("from typing import _eval_type", "private-attribute")
    assert_refused("s = author._sa_instance_state", "private-attribute")


def test_public_underscore_attributes_of_rows_and_namedtuples() -> None:
    code = """
        rows = session.execute(select(Author.id, Author.name)).all()
        maps = [r._mapping for r in rows]
        dicts = [r._asdict() for r in rows]
        names = rows[0]._fields if rows else ()
    """
    assert found(code) == set()


# -- attrgetter / methodcaller ---------------------------------------------------------------

DYNAMIC_LOOKUPS = [
    "from operator import attrgetter\nf = attrgetter(name)",
    "import operator\nf = operator.attrgetter('name', other)",
    "import operator\nf = operator.attrgetter",
    "from operator import methodcaller\nf = methodcaller(name)",
    "import operator\nf = operator.attrgetter(*names)",
    "import operator\nu = '_' * 2\nf = operator.attrgetter(u + 'class' + u)",
    "from operator import attrgetter as ag\nf = ag",  # an alias hides the name
]


@pytest.mark.parametrize("code", DYNAMIC_LOOKUPS)
def test_dynamic_attribute_lookups(code: str) -> None:
    # Without the run-time layer, only literal names can be checked: computed ones are refused.
    found_rules = {rule for rule, _ in found(code, ALONE)}
    assert "dynamic-attribute" in found_rules, found_rules
    # With it, operator's attrgetter/methodcaller are replaced by checked versions.
    assert check(code) == []


def test_attrgetter_literal_names_are_checked() -> None:
    for policy in (Policy(), ALONE):
        assert_refused("from operator import attrgetter\nf = attrgetter('gi_frame')", "blocked-attribute", line=2, policy=policy)
        assert_refused("from operator import attrgetter\nf = attrgetter('a._b')", "private-attribute", line=2, policy=policy)
        assert_refused("from operator import attrgetter\nf = attrgetter('a.__globals__')", "dunder", line=2, policy=policy)


def test_attrgetter_with_literal_names_is_fine() -> None:
    code = """
        from operator import attrgetter, methodcaller
        books = sorted(books, key=attrgetter('author.name', 'title'))
        upper = list(map(methodcaller('upper'), names))
    """
    assert found(code) == set()


# -- imports ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "module",
    [
        "os", "sys", "subprocess", "importlib", "builtins", "ctypes", "js", "pyodide",
        "pyodide_js", "socket", "shutil", "pathlib", "_io", "inspect", "gc", "signal",
        "threading", "multiprocessing", "pickle", "marshal", "code", "codeop", "types",
        "posix", "nt", "_thread", "asyncio", "urllib", "http", "ftplib", "smtplib",
        "webbrowser", "sqlite3", "weakref", "atexit", "contextlib", "sqlalchemy.event",
        "sqlalchemy.ext.serializer",
    ],
)
def test_blocked_modules(module: str) -> None:
    assert module in DEFAULT_BLOCKED_MODULES
    assert_refused(f"import {module}", "blocked-module")
    assert_refused(f"x = 1\nfrom {module} import thing", "blocked-module", line=2)


def test_blocked_modules_win_over_the_allow_list() -> None:
    policy = Policy.with_imports(["os", "sqlite3"])
    assert_refused("import os", "blocked-module", policy=policy)
    assert_refused("import sqlite3", "blocked-module", policy=policy)


def test_submodules_and_dotted_imports() -> None:
    assert_refused("import os.path", "blocked-module")  # `import x.y` checks x
    assert_refused("from os import path", "blocked-module")
    assert_refused("from pyodide.ffi import to_js", "blocked-module")
    assert_refused("import sqlalchemy.util", "blocked-module")  # blocked below an allowed package
    assert_refused("from sqlalchemy import util", "blocked-module")  # x.y is a blocked module
    assert check("import collections.abc\nfrom sqlalchemy.orm import selectinload") == []


def test_imports_outside_the_allow_list() -> None:
    assert_refused("import numpy", "import-not-allowed")
    assert_refused("x = 1\nfrom requests import get", "import-not-allowed", line=2)
    assert_refused("import datetimex", "import-not-allowed")  # a prefix is not a package
    (violation,) = check("import numpy")
    assert "'numpy'" in violation.message and "datetime, decimal" in violation.message


def test_with_imports_adds_modules() -> None:
    policy = Policy.with_imports(["numpy"])
    assert check("import numpy.linalg", policy) == []
    assert DEFAULT_ALLOWED_IMPORTS < policy.allowed_imports


def test_relative_imports() -> None:
    assert_refused("from . import x", "relative-import")
    assert_refused("from .models import Author", "relative-import")
    assert_refused("from ..x import y", "relative-import")


def test_default_allow_list() -> None:
    for module in (
        "math", "datetime", "decimal", "fractions", "statistics", "random", "re", "json",
        "itertools", "functools", "collections", "string", "textwrap", "uuid", "enum",
        "dataclasses", "typing", "operator", "calendar", "zoneinfo", "sqlalchemy",
    ):
        assert check(f"import {module}") == [], module


# -- string annotations ----------------------------------------------------------------------

@pytest.mark.parametrize(
    "code",
    [
        "x: 'exec(\"import os\")' = 1",
        "def f() -> 'open(\"x\").read()':\n    pass",
        "def f(a: 'List[print(1)]'):\n    pass",
        "class A(Author):\n    x: Mapped['Book or print(1)']",
    ],
)
def test_string_annotations_must_be_type_expressions(code: str) -> None:
    assert_refused(code, "annotation", line=code.count("\n") + 1 if code.startswith("class") else 1)


def test_ordinary_string_annotations() -> None:
    code = """
        from typing import Annotated, Literal, Optional
        a: 'Author' = None
        b: Mapped['list[Book]']
        c: 'Optional[Author] | None' = None
        d: Literal['hello world', 'x'] = 'x'
        e: Annotated[int, 'a free text note'] = 1
        f: "list['Book']" = []
        g: "Literal['a b']" = 'a b'
        def f(x: 'Author') -> 'list[Book]':
            return x.books
    """
    assert found(code) == set()


# -- syntax ----------------------------------------------------------------------------------

def test_syntax_errors_become_violations() -> None:
    (violation,) = check("x = 1\ndef f(:\n    pass")
    assert violation.rule == "syntax" and violation.line == 2
    assert "does not parse" in violation.message


# Each of these kills Pyodide's parser (JavaScript stack overflow) if it is parsed.
TOO_DEEP = {
    "unary": "-" * 3000 + "1",
    "sum": "x = " + "+".join(["1"] * 3000),
    "attributes": "a" + ".b" * 3000,
    "calls": "x = a" + ".b()" * 2000,
    "subscripts": "x = a" + "[0]" * 2000,
    "not": "x = " + "not " * 3000 + "y",
    "lambda": "f = " + "lambda: " * 2000 + "1",
    "conditional": "x = " + "1 if a else " * 2000 + "2",
    "power": "x = " + "2**" * 2000 + "1",
    "f-string": 'x = f"{' + "-" * 3000 + '1}"',
    "continued lines": "x = 1 \\\n" + "+ 1 \\\n" * 2000 + "+ 1",
    "in brackets": "x = (1\n" + "+ 1\n" * 2000 + ")",
}


@pytest.mark.parametrize("name", sorted(TOO_DEEP))
def test_too_deep_code_is_refused_before_parsing(name: str) -> None:
    (violation,) = check(TOO_DEEP[name])
    assert violation.rule == "too-complex"
    assert "split it into several statements" in violation.message


def test_long_but_flat_code_is_fine() -> None:
    data = "data = [" + ", ".join(f"-{i}.5" for i in range(2000)) + "]"
    prose = "s = '" + "a-b. c-d. " * 600 + "'"
    lines = "\n".join(f"x{i} = a.b.c + d - e * f" for i in range(300))
    nested = "x = " + "(" * 100 + "1" + ")" * 100 + "\n" + "# padding " * 100
    for code in (data, prose, lines, nested):
        assert check(code) == []


def test_nul_bytes_are_a_syntax_violation() -> None:
    (violation,) = check("x = 1\0")
    assert violation.rule == "syntax"


# -- NFKC and case ---------------------------------------------------------------------------

def test_nfkc_spellings_of_blocked_names() -> None:
    # Python normalises identifiers with NFKC, so these *are* eval and getattr.
    assert_refused("ｅｖａｌ('1')", "blocked-name")
    assert_refused("f = ｇｅｔａｔｔｒ", "blocked-name", policy=ALONE)
    assert_refused("x = getattr(g, 'ｇｉ_ｆｒａｍｅ')", "blocked-attribute")
    assert_refused("ᵉval('1')", "blocked-name")  # U+1D49 MODIFIER LETTER SMALL E
    assert_refused("import ｏｓ", "blocked-module")
    assert_refused("g = (i for i in [])\nx = g.ｇｉ_ｆｒａｍｅ", "blocked-attribute", line=2)


def test_nfkc_spellings_of_dunders() -> None:
    assert_refused("x.__ｇｌｏｂａｌｓ__", "dunder")
    assert_refused("ｘ = __ｂｕｉｌｔｉｎｓ__", "dunder")
    # Strings are not normalised by Python; the validator normalises them anyway.
    assert_refused("n = '＿＿globals＿＿'", "dunder")
    assert_refused("n = '__ｇｌｏｂａｌｓ__'", "dunder")
    assert_refused("s = '{0.ｇｉ_ｆｒａｍｅ}'.format(g)", "format-field")


def test_case() -> None:
    # Module names are compared case-insensitively (case-insensitive file systems)...
    assert_refused("import OS", "blocked-module")
    assert_refused("import SubProcess", "blocked-module")
    # ...identifiers are not: Python names are case-sensitive, so `Eval` is not `eval`.
    assert check("Eval = 1\nprint(Eval)") == []
    # Dunder strings are found whatever their case.
    assert_refused("n = '__GLOBALS__'.lower()", "dunder")


# -- ordinary agent code passes --------------------------------------------------------------

BENIGN = [
    """
    from sqlalchemy import select, func
    authors = session.scalars(select(Author).where(Author.name.like('%T%'))).all()
    print([a.name for a in authors])
    """,
    """
    from sqlalchemy import select, func, desc
    from sqlalchemy.orm import selectinload
    stmt = (
        select(Author.name, func.count(Book.id).label('n'))
        .join(Book)
        .group_by(Author.id)
        .order_by(desc('n'))
    )
    for name, n in session.execute(stmt):
        print(f"{name}: {n} book{'s' if n != 1 else ''}")
    """,
    """
    author = Author(name='Tolkien')
    session.add(author)
    session.flush()
    book = session.get(Book, 1)
    book.title = book.title.strip()
    session.delete(book)
    """,
    """
    import datetime
    today = datetime.date.today()
    squares = {n: n * n for n in range(10) if n % 2}
    pairs = [(a, b) for a in range(3) for b in range(a)]
    total = sum(x for x in squares.values())
    key = lambda a: (a.name.lower(), a.id)
    """,
    """
    class Summary:
        def __init__(self, rows):
            self.rows = rows

        def text(self):
            return ', '.join(str(r) for r in self.rows)

    class Shout(Summary):
        def text(self):
            return super().text().upper()
    """,
    """
    result = await some_tool('query')
    async def fetch_all(items):
        return [await lookup(i) async for i in aiter_items(items)]
    data = await fetch_all([1, 2])
    """,
    """
    counter = 0
    def bump():
        global counter
        counter += 1
    def outer():
        x = 0
        def inner():
            nonlocal x
            x += 1
        inner()
        return x
    """,
    """
    import json, re, math, decimal, statistics, itertools, functools, collections
    from dataclasses import dataclass, field
    from enum import Enum
    from typing import Optional
    @dataclass
    class Row:
        name: str
        tags: list[str] = field(default_factory=list)
        note: Optional[str] = None
    try:
        value = json.loads('{"a": 1}')
    except (ValueError, KeyError) as err:
        print('bad', err)
    finally:
        pass
    """,
    """
    match command.split():
        case ['add', name]:
            session.add(Author(name=name))
        case [first, *rest]:
            print(first, rest)
        case {'title': title}:
            print(title)
        case Point(x=0, y=y):
            print(y)
    """,
    """
    rows = session.execute(select(Book)).scalars().all()
    titles = '; '.join('{0.title} ({0.year})'.format(b) for b in rows)
    text = f"{len(rows):>5} rows, first: {rows[0].title!r:.20}" if rows else 'none'
    """,
]


@pytest.mark.parametrize("code", BENIGN)
def test_benign_code_passes(code: str) -> None:
    assert check(textwrap.dedent(code)) == []


# -- API -------------------------------------------------------------------------------------

def test_every_problem_on_a_line_is_reported() -> None:
    violations = check("import os, sys\nx = y.__globals__.__base__")
    assert [(v.rule, v.line, v.col) for v in violations] == [
        ("blocked-module", 1, 8),
        ("blocked-module", 1, 12),
        ("dunder", 2, 5),
        ("dunder", 2, 5),
    ]
    assert "__base__" in violations[2].message + violations[3].message


def test_check_reports_every_violation_in_source_order() -> None:
    code = "import os\nx = eval('1')\ny = x.__globals__\nimport numpy\n"
    violations = check(code)
    assert [(v.rule, v.line) for v in violations] == [
        ("blocked-module", 1),
        ("blocked-name", 2),
        ("dunder", 3),
        ("import-not-allowed", 4),
    ]


def test_validate_raises_with_all_violations() -> None:
    validate("x = 1")
    with pytest.raises(ValidationError) as info:
        validate("import os\nx = eval('1')")
    err = info.value
    assert [v.rule for v in err.violations] == ["blocked-module", "blocked-name"]
    text = str(err)
    assert "2 problems" in text
    assert "line 1, col 8: [blocked-module]" in text  # points at `os`
    assert "line 2, col 5: [blocked-name]" in text


def test_violation_str() -> None:
    v = Violation("dunder", "no dunders.", 3, 4)
    assert str(v) == "line 3, col 4: [dunder] no dunders."


def test_custom_policy_fields() -> None:
    policy = Policy(blocked_names=DEFAULT_BLOCKED_NAMES | {"print"})
    assert_refused("print(1)", "blocked-name", policy=policy)
    assert check("print(1)") == []


# -- every refusal says what to write instead ------------------------------------------------

@pytest.mark.parametrize(
    ("code", "policy", "hint"),
    [
        ("d = book.__dict__", Policy(), "vars(obj)"),
        ("d = book.__dict__", ALONE, "inspect(obj).attrs"),
        ("t = Book.__table__", ALONE, "inspect(Model).local_table"),
        ("m = Book.__mapper__", ALONE, "sqlalchemy.inspect(Model)"),
        ("n = rows.__len__()", Policy(), "len(x)"),
        ("c = x.__class__", ALONE, "isinstance"),
        ("a = x.__annotations__", Policy(), "dataclasses.fields"),
        ("import os", Policy(), "no file system"),
        ("f = open('x.csv', 'w')", Policy(), "io.StringIO"),
        ("from sqlalchemy import event", Policy(), "directly in this step"),
        ("e = session.bind", Policy(), "session.execute"),
        ("s = book._sa_instance_state", Policy(), "public attributes"),
        ("import string\nf = string.Formatter()", Policy(), "f-string"),
        ("t = '{}'\ns = t.format(1)", ALONE, "string literal"),
        ("class A(metaclass=M):\n    pass", Policy(), "plain class"),
        ("class A:\n    def __del__(self):\n        pass", Policy(), "clean up explicitly"),
        ("class A:\n    def __getattr__(self, n):\n        pass", Policy(), "@property"),
        ("import io\nf = io.open('x')", Policy(), "StringIO"),
        ("import csv\ncsv.register_dialect('x')", Policy(), "csv.writer(buffer, delimiter=';')"),
        ("import threading", Policy(), "await"),
        ("if __name__ == '__main__':\n    pass", Policy(), "drop any"),
        ("print(x.__subclasses__())", Policy(), "isinstance"),
    ],
)
def test_refusals_say_what_to_write(code: str, policy: Policy, hint: str) -> None:
    messages = " | ".join(v.message for v in check(code, policy))
    assert messages, code
    assert hint in messages, messages


@pytest.mark.parametrize(
    "code",
    [
        "import csv, io, difflib, pprint, copy, html, base64, hashlib, unicodedata, numbers",
        "from io import StringIO, BytesIO",
    ],
)
def test_ordinary_modules_are_allowed(code: str) -> None:
    assert check(code) == []


def test_format_templates_are_checked_like_code() -> None:
    for policy in (Policy(), ALONE):
        assert_refused("s = '{0.gi_frame.f_globals}'.format(g)", "format-field", policy=policy)
        assert_refused("s = 'x {0.bind.url}'", "format-field", policy=policy)  # any template-like constant
        assert_refused("s = '{x._private}'.format_map(d)", "format-field", policy=policy)
        assert check("s = '{0.title} {0.author.name!r:>10} {1[0]}'.format(book, [1])", policy) == []
        assert check("s = '{\"json\": 1}'", policy) == []  # not a template with attributes
    # Only the run-time layer can check a template built while the code runs.
    assert check("t = '{0.' + name + '}'\ns = t.format(x)") == []
    assert_refused("t = '{0.' + name + '}'\ns = t.format(x)", "format-template", line=2, policy=ALONE)
    assert_refused("f = str.format", "format-template", policy=ALONE)
    assert_refused("from operator import methodcaller\nf = methodcaller('format', 1)", "format-template", line=2, policy=ALONE)


def test_what_only_the_runtime_layer_makes_safe() -> None:
    generator = "def g():\n    try:\n        yield 1\n    finally:\n        print('done')"
    assert check(generator) == []
    assert_refused(generator, "finalizer", line=2, policy=ALONE)
    assert check("import io") == []
    assert_refused("import io", "import-not-allowed", policy=ALONE)
    assert_refused("import dataclasses\nD = dataclasses.make_dataclass('D', [])", "blocked-attribute", line=2, policy=ALONE)
