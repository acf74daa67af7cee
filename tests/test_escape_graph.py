"""Hostile corpus, family 3: walks of the object graph from what model code is given (the
session, query results, mapped classes, tools, ``disclose``) to module globals, the
environment, the raw database connection or SQLAlchemy's code generators (issue 7.2).

Also the objects SQLAlchemy hands *to* model code: a TypeDecorator's callbacks receive the
dialect, which opens raw connections. The run-time layer makes such objects inert (none of
their attributes can be read), however they arrive.
"""

from __future__ import annotations

from sandbox_harness import Harness, for_each_payload

DECORATOR = (
    "from sqlalchemy.types import TypeDecorator, String\n"
    "from sqlalchemy import literal\n"
    "class T(TypeDecorator):\n"
    "    impl = String\n"
    "    cache_ok = True\n"
    "    def process_bind_param(self, value, dialect):\n"
    "        {body}\n"
    "        return value\n"
    "session.execute(select(literal('x', T())))\n"
)

PAYLOADS = [
    ("session.bind", "print('ESCAPED', session.bind)"),
    ("session.get_bind", "print('ESCAPED', session.get_bind())"),
    ("session.connection", "print('ESCAPED', session.connection().connection.dbapi_connection)"),
    ("getattr bind", "print('ESCAPED', getattr(session, 'bi' + 'nd'))"),
    ("attrgetter bind", "from operator import attrgetter\nprint('ESCAPED', attrgetter('get_' + 'bind')(session)())"),
    ("methodcaller connection", "from operator import methodcaller\nprint('ESCAPED', methodcaller('conn' + 'ection')(session))"),
    ("result context", "r = session.execute(text('select 1'))\nprint('ESCAPED', r.context.root_connection)"),
    ("result context via getattr", "r = session.execute(text('select 1'))\nc = getattr(r, 'con' + 'text')\nprint('ESCAPED', getattr(c, 'root_' + 'connection'))"),
    ("result cursor", "r = session.execute(text('select 1'))\nprint('ESCAPED', getattr(r, 'cur' + 'sor').connection)"),
    ("result dialect connect", "r = session.execute(text('select 1'))\nd = getattr(r, 'dia' + 'lect')\nprint('ESCAPED', d.connect(':memory:'))"),
    ("vars of a result", "r = session.execute(text('select 1'))\nv = vars(r)\nprint('ESCAPED', [x for x in v.values() if 'Context' in type(x).__name__][0].cursor)"),
    ("vars of the session", "v = vars(session)\nprint('ESCAPED', v['bind'])"),
    ("transaction connections", "t = session.get_transaction()\nprint('ESCAPED', getattr(t, 'conn' + 'ection')(None))"),
    ("dialect in a type callback", DECORATOR.format(body="print('ESCAPED', dialect.connect(':memory:'))")),
    ("dialect in a callback via getattr", DECORATOR.format(body="print('ESCAPED', getattr(dialect, 'con' + 'nect')(':memory:'))")),
    ("dialect kept for later", DECORATOR.format(body="record(type(dialect).__name__)") + "print('ESCAPED', vars(T))"),
    ("inspect the session", "from sqlalchemy import inspect\nprint('ESCAPED', inspect(session).bind)"),
    ("instance state to session bind", "from sqlalchemy import inspect\nb = session.scalars(select(Book)).first()\ns = inspect(b).session\nprint('ESCAPED', getattr(s, 'bi' + 'nd'))"),
    ("mapper registry", "from sqlalchemy import inspect\nprint('ESCAPED', inspect(Author).registry.map_imperatively)"),
    ("mapper dispatch", "from sqlalchemy import inspect\nprint('ESCAPED', getattr(inspect(Author), 'dis' + 'patch'))"),
    ("metadata bind", "print('ESCAPED', Author.metadata.bind)"),
    ("table to bind", "print('ESCAPED', getattr(Author.metadata, 'bi' + 'nd'))"),
    ("tool globals", "print('ESCAPED', lookup.__globals__['MODULE_SECRET'])"),
    ("tool globals via getattr", "print('ESCAPED', getattr(lookup, '__glo' + 'bals__')['MODULE_SECRET'])"),
    ("tool globals via vars", "print('ESCAPED', vars(lookup))\nprint(vars(type(namespace_object()))['describe'].__globals__)"),
    ("method __func__", "h = namespace_object()\nprint('ESCAPED', h.describe.__func__.__globals__['MODULE_SECRET'])"),
    ("disclose's toolbox", "print('ESCAPED', disclose.__self__.tools['lookup'].function.__globals__)"),
    ("builtins via print", "print('ESCAPED', print.__self__.open)"),
    ("class init globals", "print('ESCAPED', type(session).__init__.__globals__['os'].environ['PY_AGENT_CANARY'])"),
    ("super to object", "class X:\n    pass\nprint('ESCAPED', super(X, X()).__getattribute__('__class__'))"),
    ("subclasses walk", "for c in object.__subclasses__():\n    print('ESCAPED', c)"),
    ("subclasses via type", "t = type(type(session))\nprint('ESCAPED', t.__subclasses__(t))"),
    ("mro walk", "print('ESCAPED', type(session).mro()[-1].__subclasses__())"),
    ("metaclass builds a mapped class", "M = type(Author)\nX = M('X', (Author,), {'__tablename__': 'x'})\nprint('ESCAPED', X)"),
    ("type three arguments", "X = type('X', (), {})\nprint('ESCAPED', X)"),
    ("json module internals", "import json\nprint('ESCAPED', json.codecs.sys.modules['os'].environ['PY_AGENT_CANARY'])"),
    ("random os", "import random\nprint('ESCAPED', random._os.environ['PY_AGENT_CANARY'])"),
    ("random os computed", "import random\nprint('ESCAPED', getattr(random, '_' + 'os').environ['PY_AGENT_CANARY'])"),
    ("typing sys", "import typing\nprint('ESCAPED', getattr(typing, 'sy' + 's').modules['os'].environ)"),
    ("vars of a module", "import random\nprint('ESCAPED', vars(random)['_os'].environ)"),
    ("module of a function", "import json\nm = json.dumps.__module__\nprint('ESCAPED', m, vars(json)['codecs'])"),
    ("sqlalchemy.util", "import sqlalchemy\nprint('ESCAPED', getattr(sqlalchemy, 'ut' + 'il').attrsetter)"),
    ("code generator", "from sqlalchemy.orm.scoping import create_proxy_methods\nprint('ESCAPED', create_proxy_methods)"),
    ("code generator computed", "import sqlalchemy.orm.scoping as s\nf = getattr(s, 'create_proxy_' + 'methods')\nprint('ESCAPED', f)"),
    ("serializer unpickles", "from sqlalchemy.ext import serializer\nprint('ESCAPED', serializer.loads)"),
    ("pickle column type", "from sqlalchemy import PickleType, type_coerce, literal, LargeBinary\nprint('ESCAPED', PickleType)"),
    ("pickle column type computed", "import sqlalchemy\nP = getattr(sqlalchemy, 'Pickle' + 'Type')\nprint('ESCAPED', P)"),
    ("class registry eval", "from sqlalchemy.orm import clsregistry\nprint('ESCAPED', clsregistry)"),
    ("compiles hook", "from sqlalchemy.ext.compiler import compiles\nprint('ESCAPED', compiles)"),
    ("engine from url", "import sqlalchemy\nprint('ESCAPED', getattr(sqlalchemy, 'create_' + 'engine')('sqlite://'))"),
    ("dialect class", "from sqlalchemy.dialects.sqlite import pysqlite\nd = pysqlite.dialect(dbapi=None)\nprint('ESCAPED', d.connect)"),
    ("environment through a class", "import uuid\nprint('ESCAPED', getattr(uuid, 'o' + 's').environ['PY_AGENT_CANARY'])"),
]


@for_each_payload(PAYLOADS)
def test_the_object_graph_leads_nowhere(harness: Harness, layers: str, name: str, code: str) -> None:
    harness.run(code, layers).assert_safe()


def test_ordinary_graph_reads_still_work(harness: Harness) -> None:
    result = harness.run(
        "from sqlalchemy import inspect\n"
        "m = inspect(Book)\n"
        "print(sorted(c.key for c in m.columns)[:3], sorted(m.relationships.keys()))\n"
        "print(m.local_table.name, Book.__tablename__, Book.__table__.name)\n"
        "b = session.scalars(select(Book).order_by(Book.id)).first()\n"
        "state = inspect(b)\n"
        "print(state.persistent, {a.key: a.value for a in state.attrs}['title'] == b.title)\n"
        "print(type(b).__name__, b.__class__.__name__, getattr(b, 'title') == b.title)\n"
        "print(Author.metadata.tables['authors'].c.name.type)"
    )
    result.assert_ran()
