"""Hostile corpus, family 4: imports under other names, builtins and import tricks, unicode
spellings, and string evaluation through annotations and mappings (issue 7.4).

``import x as y`` and ``from m import f as g`` must be checked as strictly as the original
names; a module an allowed module re-exports is as forbidden as importing it; builtins that
run strings, open files or import are absent; and a mapped class (whose string annotations
SQLAlchemy evaluates with ``eval``) cannot be created.
"""

from __future__ import annotations

from sandbox_harness import Harness, for_each_payload

ENV = "environ['PY_AGENT_CANARY']"

PAYLOADS = [
    ("import os", f"import os\nprint('ESCAPED', os.{ENV})"),
    ("import os as json", f"import os as json\nprint('ESCAPED', json.{ENV})"),
    ("from os import environ as e", "from os import environ as e\nprint('ESCAPED', e['PY_AGENT_CANARY'])"),
    ("import os.path as p", "import os.path as p\nprint('ESCAPED', p.os)"),
    ("import sys as s", "import sys as s\nprint('ESCAPED', s.modules['os'].environ)"),
    ("from typing import sys as s", f"from typing import sys as s\nprint('ESCAPED', s.modules['os'].{ENV})"),
    ("from json import codecs as c", "from json import codecs as c\nprint('ESCAPED', c.sys)"),
    ("from random import _os as o", f"from random import _os as o\nprint('ESCAPED', o.{ENV})"),
    ("from sqlalchemy import util as u", "from sqlalchemy import util as u\nprint('ESCAPED', u.attrsetter)"),
    ("import sqlalchemy.util as u", "import sqlalchemy.util as u\nprint('ESCAPED', u)"),
    ("import sqlalchemy.event as ev", "import sqlalchemy.event as ev\nprint('ESCAPED', ev.listen)"),
    ("from sqlalchemy import event as e", "from sqlalchemy import event as e\nprint('ESCAPED', e.listen)"),
    ("import importlib", "import importlib\nprint('ESCAPED', importlib.import_module('os').environ)"),
    ("import json.tool", "import json.tool\nprint('ESCAPED', json.tool.sys)"),
    ("import sqlalchemy.testing", "import sqlalchemy.testing as t\nprint('ESCAPED', t)"),
    ("relative import", "from . import sandbox_harness\nprint('ESCAPED', sandbox_harness.MODULE_SECRET)"),
    ("__import__", f"m = __import__('os')\nprint('ESCAPED', m.{ENV})"),
    ("__builtins__ import", f"m = __builtins__['__import__']('os')\nprint('ESCAPED', m.{ENV})"),
    ("__builtins__ open", "print('ESCAPED', __builtins__)"),
    ("__build_class__", "print('ESCAPED', __build_class__)"),
    ("__loader__", "print('ESCAPED', __loader__, __spec__)"),
    ("eval", "print('ESCAPED', eval('1 + 1'))"),
    ("exec", "exec('print(\"ESCAPED\")')"),
    ("compile", "print('ESCAPED', compile('1', 'f', 'eval'))"),
    ("open a file", "print('ESCAPED', open('/etc/hostname').read())"),
    ("globals", "print('ESCAPED', globals()['__builtins__'])"),
    ("locals", "print('ESCAPED', locals())"),
    ("vars without an object", "print('ESCAPED', vars())"),
    ("dir without an object", "print('ESCAPED', dir())"),
    ("breakpoint", "breakpoint()\nprint('ESCAPED')"),
    ("input", "print('ESCAPED', input())"),
    ("io open", "import io\nprint('ESCAPED', io.open('/etc/hostname').read())"),
    ("io open aliased", "import io as i\nf = getattr(i, 'op' + 'en')\nprint('ESCAPED', f('/etc/hostname').read())"),
    ("from io import open", "from io import open as o\nprint('ESCAPED', o('/etc/hostname').read())"),
    ("io FileIO", "import io\nprint('ESCAPED', io.FileIO('/etc/hostname').read())"),
    ("io through csv", "import csv\nprint('ESCAPED', getattr(csv, 'Str' + 'ingIO'), csv.sys)"),
    ("unicode eval", "print('ESCAPED', ｅｖａｌ('1'))"),
    ("unicode __import__", "print('ESCAPED', __ｉｍｐｏｒｔ__('os'))"),
    ("unicode import", f"import ｏｓ\nprint('ESCAPED', ｏｓ.{ENV})"),
    ("unicode import from", "from ｔｙｐｉｎｇ import ｓｙｓ\nprint('ESCAPED', ｓｙｓ)"),
    ("unicode string dunder", "n = '＿＿globals＿＿'\nprint('ESCAPED', getattr(lookup, n))"),
    ("mapped subclass with eval'd annotation", "from sqlalchemy.orm import Mapped, mapped_column\nclass X(Author):\n    secret: Mapped[\"print('ESCAPED') or int\"] = mapped_column(nullable=True)\nprint('ESCAPED', X)"),
    ("declarative base", "from sqlalchemy.orm import DeclarativeBase\nclass B(DeclarativeBase):\n    pass\nprint('ESCAPED', B)"),
    ("declarative base computed", "import sqlalchemy.orm as o\nD = getattr(o, 'Declarative' + 'Base')\nclass B(D):\n    pass\nprint('ESCAPED', B)"),
    ("relationship string eval", "from sqlalchemy.orm import relationship\nr = relationship('__import__(\"os\")')\nprint('ESCAPED', r)"),
    ("get_type_hints eval", "import typing\ndef f(x: 'print(\"ESCAPED\")'):\n    pass\nprint('ESCAPED', getattr(typing, 'get_type_' + 'hints')(f))"),
    ("ForwardRef eval", "import typing\nF = getattr(typing, 'Forward' + 'Ref')\nprint('ESCAPED', F('1+1'))"),
    ("metaclass keyword", "class M(type):\n    pass\nclass X(metaclass=M):\n    pass\nprint('ESCAPED', X)"),
    ("dataclass field name injection", "import dataclasses\nD = dataclasses.make_dataclass('D', [('x', int)], namespace={'y': 1})\nprint('ESCAPED', getattr(D, '__init__').__globals__)"),
]


@for_each_payload(PAYLOADS)
def test_imports_and_builtins_reach_nothing(harness: Harness, layers: str, name: str, code: str) -> None:
    harness.run(code, layers).assert_safe()


def test_the_runtime_layer_refuses_new_mapped_classes(harness: Harness) -> None:
    # A subclass of a mapped class is mapped (SQLAlchemy evaluates its string annotations
    # and adds it to the registry for everyone); only the run-time layer knows what the
    # bases are, so the validator alone lets this through.
    for layers in ("both", "runtime-only"):
        result = harness.run("class X(Book):\n    pass\nprint('made', X)", layers)
        assert result.failed and "schema is fixed" in result.text, result.text


def test_allowed_imports_under_other_names(harness: Harness) -> None:
    result = harness.run(
        "import json as j, datetime as dt\n"
        "from operator import attrgetter as ag\n"
        "from collections import Counter as C\n"
        "import sqlalchemy.orm as orm\n"
        "import io\n"
        "buf = io.StringIO()\n"
        "print(j.dumps({'a': 1}), dt.date(2024, 1, 2).isoformat(), C('aab')['a'], file=buf)\n"
        "books = session.scalars(select(Book).order_by(Book.id).limit(2)).all()\n"
        "print(buf.getvalue().strip(), [ag('author.name')(b) for b in books] == [b.author.name for b in books], orm.Session)"
    )
    result.assert_ran()
