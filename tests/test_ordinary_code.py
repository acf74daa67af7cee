"""The ordinary-code corpus: realistic model-written steps against the bookshop demo that
must run, unchanged, with every layer on (issue 7.6): queries, joins, aggregates, writes,
CSV export, dynamic attribute idioms, dataclasses, enums, dates, JSON, string formatting,
classes with special methods, generators. Each also runs with the run-time layer alone.

A refusal of one of these is a bug in the sandbox, not in the snippet.
"""

from __future__ import annotations

from sandbox_harness import Harness, for_each_payload

SNIPPETS = [
    ("list authors", "authors = session.scalars(select(Author).order_by(Author.name)).all()\nfor a in authors:\n    print(a.name, a.country)"),
    ("books per genre", "rows = session.execute(select(Book.genre, func.count(Book.id)).group_by(Book.genre)).all()\nfor genre, n in rows:\n    print(f'{genre.value:<16}{n:>3}')"),
    ("join on country", "stmt = select(Book.title).join(Book.author).where(Author.country == 'GB').order_by(Book.title)\nprint(session.scalars(stmt).all())"),
    ("average price per author", "stmt = select(Author.name, func.avg(Book.price)).join(Book).group_by(Author.id).order_by(desc(func.avg(Book.price)))\nfor name, avg in session.execute(stmt):\n    print(f'{name}: {float(avg):.2f}')"),
    ("top five prices", "for b in session.scalars(select(Book).order_by(Book.price.desc()).limit(5)):\n    print(b.title, b.price)"),
    ("published since", "import datetime\nrecent = session.scalars(select(Book).where(Book.published >= datetime.date(2000, 1, 1))).all()\nprint(len(recent), sorted(b.title for b in recent)[:3])"),
    ("restock fantasy", "from sqlalchemy import update\nresult = session.execute(update(Book).where(Book.genre == Genre.FANTASY).values(stock=Book.stock + 5))\nprint(result.rowcount, 'books restocked')"),
    ("add author and books", "a = Author(name='J. R. R. Tolkien', country='GB')\na.books = [Book(title='The Hobbit', genre=Genre.FANTASY, price=9.99, stock=3), Book(title='The Silmarillion', genre=Genre.FANTASY, price=12.5, stock=1)]\nsession.add(a)\nsession.flush()\nprint(a.id is not None, len(a.books))"),
    ("delete unused tags", "unused = session.scalars(select(Tag).where(~Tag.books.any())).all()\nfor t in unused:\n    session.delete(t)\nprint(len(unused))"),
    ("order totals", "for o in session.scalars(select(Order).order_by(Order.placed_at).limit(3)):\n    print(o.id, o.customer.name, o.status.name, o.total)"),
    ("best customer", "stmt = select(Customer.name, func.count(Order.id).label('n')).join(Order).group_by(Customer.id).order_by(desc('n')).limit(1)\nprint(session.execute(stmt).one())"),
    (
        "csv export",
        "import csv, io\nbuf = io.StringIO()\nw = csv.writer(buf)\nw.writerow(['title', 'author', 'price'])\n"
        "for b in session.scalars(select(Book).order_by(Book.title).limit(5)):\n    w.writerow([b.title, b.author.name, b.price])\nprint(buf.getvalue())",
    ),
    (
        "csv dict writer",
        "import csv\nfrom io import StringIO\nout = StringIO()\nfields = ['name', 'email']\nw = csv.DictWriter(out, fieldnames=fields, delimiter=';')\nw.writeheader()\n"
        "for c in session.scalars(select(Customer)):\n    w.writerow({'name': c.name, 'email': c.email})\nprint(out.getvalue().splitlines()[:3])",
    ),
    (
        "csv import",
        "import csv, io\ndata = 'name,email\\nZoe Ward,zoe@example.com\\nYuki Ito,yuki@example.com\\n'\n"
        "for row in csv.DictReader(io.StringIO(data)):\n    session.add(Customer(name=row['name'], email=row['email']))\nsession.flush()\n"
        "print(session.scalar(select(func.count(Customer.id))))",
    ),
    ("csv to bytes", "import csv, io\ns = io.StringIO()\ncsv.writer(s, quoting=csv.QUOTE_ALL).writerows([[1, 'a'], [2, 'b']])\nb = io.BytesIO(s.getvalue().encode('utf-8'))\nprint(len(b.getvalue()))"),
    ("difflib close matches", "import difflib\ntitles = session.scalars(select(Book.title)).all()\nprint(difflib.get_close_matches('Pride and Prejudce', titles, n=1))"),
    ("difflib unified diff", "import difflib\nprint(''.join(difflib.unified_diff(['a\\n', 'b\\n'], ['a\\n', 'c\\n'])))"),
    (
        "getattr over columns",
        "from sqlalchemy import inspect\nb = session.get(Book, 1)\ncols = [c.key for c in inspect(Book).columns]\nprint({name: str(getattr(b, name)) for name in cols if name != 'id'})",
    ),
    ("getattr over table columns", "b = session.get(Book, 2)\nrow = {col.name: getattr(b, col.name, None) for col in Book.__table__.columns}\nprint(row['title'], row['stock'])"),
    ("setattr from a dict", "b = session.get(Book, 3)\nchanges = {'stock': 42, 'price': 5.49}\nfor key, value in changes.items():\n    setattr(b, key, value)\nsession.flush()\nprint(b.stock, b.price)"),
    ("vars of an object", "b = session.get(Book, 1)\nb.title\nprint(sorted(k for k in vars(b) if not k.startswith('_'))[:4])"),
    ("vars of a dataclass", "from dataclasses import dataclass\n@dataclass\nclass P:\n    x: int\n    y: int\nprint(vars(P(1, 2)))"),
    ("hasattr and getattr default", "b = session.get(Book, 3)\nprint(hasattr(b, 'file_format'), getattr(b, 'file_format', None), hasattr(b, 'nope'))"),
    ("dir of a row object", "a = session.get(Author, 1)\nprint([n for n in dir(a) if not n.startswith('_')][:5])"),
    ("type name", "for x in [1, 'a', session.get(Book, 1), Genre.FICTION]:\n    print(type(x).__name__)"),
    ("class name", "b = session.scalars(select(Book).where(Book.kind == 'ebook')).first()\nprint(b.__class__.__name__, type(b) is EBook, isinstance(b, Book))"),
    ("table name and doc", "print(Book.__tablename__, Author.__tablename__, Book.__doc__.split('.')[0])"),
    ("inspect columns and relationships", "from sqlalchemy import inspect\nm = inspect(Order)\nprint([c.key for c in m.columns], list(m.relationships.keys()), m.local_table.name)"),
    ("table columns", "print([c.name for c in Book.__table__.columns][:4], Book.__table__.c.price.type)"),
    ("enum iteration", "print([g.value for g in Genre], Genre['FANTASY'], Genre('horror'), len(Genre))"),
    ("enum members mapping", "print(list(OrderStatus.__members__)[:2])"),
    ("dataclass summary", "from dataclasses import dataclass, field, asdict\n@dataclass(order=True)\nclass Row:\n    price: float\n    title: str = field(compare=False)\nrows = sorted(Row(float(b.price), b.title) for b in session.scalars(select(Book).limit(4)))\nprint(asdict(rows[0]))"),
    ("dates", "from datetime import date, datetime, timedelta\nb = session.get(Book, 1)\nage = (date(2026, 1, 1) - b.published).days // 365\nprint(age, (datetime(2026, 1, 1) + timedelta(days=30)).strftime('%Y-%m-%d'))"),
    ("json export", "import json\nrows = [{'title': b.title, 'price': b.price, 'published': b.published} for b in session.scalars(select(Book).limit(2))]\nprint(json.dumps(rows, default=str, indent=2))"),
    ("string formatting", "b = session.get(Book, 1)\nt = '{:<30} {:>8.2f}'\nprint(t.format(b.title, b.price), '{0.title!r} by {0.author.name}'.format(b), '%s: %d' % (b.title, b.stock))"),
    ("format_map", "b = session.get(Book, 1)\nprint('{title} ({stock} left)'.format_map({'title': b.title, 'stock': b.stock}))"),
    ("built template", "fields = ['title', 'price']\ntemplate = ' | '.join('{' + f + '}' for f in fields)\nb = session.get(Book, 1)\nprint(template.format(title=b.title, price=b.price))"),
    ("template with attribute path", "fmt = '{b.title} - {b.author.name}'\nprint(fmt.format(b=session.get(Book, 2)))"),
    ("f-string specs", "b = session.get(Book, 4)\nw = 10\nprint(f'{b.title[:w]:>{w}} | {b.price:08.3f} | {b.stock!s:^5} | {b.genre!r}')"),
    (
        "class with special methods",
        "from functools import total_ordering\n@total_ordering\nclass Money:\n    def __init__(self, cents):\n        self.cents = cents\n    def __eq__(self, other):\n        return self.cents == other.cents\n"
        "    def __lt__(self, other):\n        return self.cents < other.cents\n    def __hash__(self):\n        return hash(self.cents)\n    def __add__(self, other):\n        return Money(self.cents + other.cents)\n"
        "    def __repr__(self):\n        return f'Money({self.cents / 100:.2f})'\nprices = [Money(int(b.price * 100)) for b in session.scalars(select(Book).limit(5))]\nprint(max(prices), sum(prices, Money(0)), len(set(prices)))",
    ),
    ("class with __str__ and __len__", "class Shelf:\n    def __init__(self, books):\n        self.books = list(books)\n    def __len__(self):\n        return len(self.books)\n    def __iter__(self):\n        return iter(self.books)\n    def __str__(self):\n        return f'Shelf of {len(self)}'\ns = Shelf(session.scalars(select(Book).limit(3)))\nprint(s, [b.id for b in s])"),
    ("__hash__ = None and __repr__ alias", "class Tagged:\n    def __init__(self, n):\n        self.n = n\n    def __str__(self):\n        return f'#{self.n}'\n    __repr__ = __str__\n    __hash__ = None\nprint([Tagged(1)])"),
    ("generator batches", "def batches(items, size):\n    batch = []\n    for item in items:\n        batch.append(item)\n        if len(batch) == size:\n            yield batch\n            batch = []\n    if batch:\n        yield batch\nfor chunk in batches(session.scalars(select(Book.title)), 10):\n    print(len(chunk))"),
    ("generator with try/finally", "def titles():\n    try:\n        for b in session.scalars(select(Book).limit(3)):\n            yield b.title\n    finally:\n        print('done')\nprint(list(titles()))"),
    ("groupby", "from itertools import groupby\nbooks = session.scalars(select(Book).order_by(Book.author_id)).all()\nfor author_id, group in groupby(books, key=lambda b: b.author_id):\n    print(author_id, len(list(group)))"),
    ("counter and defaultdict", "from collections import Counter, defaultdict\nc = Counter(b.genre.value for b in session.scalars(select(Book)))\nby_country = defaultdict(list)\nfor a in session.scalars(select(Author)):\n    by_country[a.country].append(a.name)\nprint(c.most_common(2), dict(by_country)['GB'][:2])"),
    ("statistics", "import statistics\nprices = [float(p) for p in session.scalars(select(Book.price))]\nprint(round(statistics.median(prices), 2), round(statistics.stdev(prices), 2))"),
    ("decimal quantize", "from decimal import Decimal, ROUND_HALF_UP\ntotal = sum((b.price for b in session.scalars(select(Book))), Decimal('0'))\nprint(total.quantize(Decimal('0.1'), rounding=ROUND_HALF_UP))"),
    ("decimal context", "import decimal\nwith decimal.localcontext() as ctx:\n    ctx.prec = 4\n    print(decimal.Decimal(1) / 7)\ndecimal.getcontext().prec = 6\nprint(decimal.Decimal(2) / 3)"),
    ("textwrap", "import textwrap\nb = session.get(Book, 1)\nprint(textwrap.shorten(b.title * 3, width=30, placeholder='...'), textwrap.fill('word ' * 20, width=30).count('\\n'))"),
    ("regex", "import re\npattern = re.compile(r'\\bof\\b', re.I)\nprint([t for t in session.scalars(select(Book.title)) if pattern.search(t)][:3])"),
    ("attrgetter and methodcaller", "from operator import attrgetter, methodcaller, itemgetter\nbooks = sorted(session.scalars(select(Book).limit(6)), key=attrgetter('author.name', 'title'))\nprint([methodcaller('upper')(b.title) for b in books][:2], itemgetter(0)([1, 2]))"),
    ("attrgetter with a computed name", "from operator import attrgetter\nkey = 'price'\nprint(sorted(session.scalars(select(Book).limit(4)), key=attrgetter(key))[0].title)"),
    ("reduce and lru_cache", "from functools import reduce, lru_cache\n@lru_cache(maxsize=None)\ndef fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\nprint(fib(30), reduce(lambda a, b: a + b.stock, session.scalars(select(Book)), 0))"),
    ("match statement", "for b in session.scalars(select(Book).limit(5)):\n    match b.genre:\n        case Genre.FANTASY:\n            kind = 'fantasy'\n        case Genre.FICTION | Genre.ROMANCE:\n            kind = 'novel'\n        case _:\n            kind = 'other'\n    print(b.title, kind)"),
    ("match class pattern", "from dataclasses import dataclass\n@dataclass\nclass Point:\n    x: int\n    y: int\nmatch Point(1, 2):\n    case Point(x=1, y=y):\n        print('y is', y)"),
    ("integrity error handled", "from sqlalchemy.exc import IntegrityError\ntry:\n    with session.begin_nested():\n        session.add(Author(name='Jane Austen'))\nexcept IntegrityError as e:\n    print('duplicate:', type(e.orig).__name__)"),
    ("session.get", "b = session.get(Book, 5)\nprint(b.title if b else 'missing', session.get(Book, 10**6))"),
    ("relationship append", "a = session.scalars(select(Author).where(Author.name == 'Mary Shelley')).one()\na.books.append(Book(title='Mathilda', genre=Genre.FICTION, price=6.5))\nsession.flush()\nprint(len(a.books))"),
    ("many to many", "classic = session.scalars(select(Tag).where(Tag.name == 'classic')).one()\nb = session.get(Book, 13)\nb.tags.append(classic)\nsession.flush()\nprint([t.name for t in b.tags], len(classic.books))"),
    ("polymorphic ebooks", "ebooks = session.scalars(select(EBook).order_by(EBook.file_size_kb.desc())).all()\nprint([(e.title, e.file_format) for e in ebooks][:2])"),
    ("hybrid in a query", "stmt = select(OrderItem.order_id, func.sum(OrderItem.line_total)).group_by(OrderItem.order_id).order_by(OrderItem.order_id)\nprint(session.execute(stmt).all()[:2])"),
    ("exists subquery", "from sqlalchemy import exists\nstmt = select(Customer.name).where(~exists().where(Order.customer_id == Customer.id))\nprint(session.scalars(stmt).all())"),
    ("scalar subquery", "sub = select(func.max(Book.price)).scalar_subquery()\nprint(session.scalars(select(Book.title).where(Book.price == sub)).all())"),
    ("bulk delete", "from sqlalchemy import delete\nr = session.execute(delete(OrderItem).where(OrderItem.quantity > 5))\nprint(r.rowcount)"),
    ("raw sql", "rows = session.execute(text('select title, price from books where price > :p order by price desc limit 3'), {'p': 10}).all()\nfor row in rows:\n    print(row.title, row._mapping['price'], row._asdict())"),
    ("eager loading", "from sqlalchemy.orm import selectinload, joinedload\nauthors = session.scalars(select(Author).options(selectinload(Author.books))).all()\nprint(sum(len(a.books) for a in authors))"),
    ("pprint", "import pprint\ndata = {a.name: [b.title for b in a.books] for a in session.scalars(select(Author).limit(2))}\nprint(pprint.pformat(data, width=60))"),
    ("html table", "import html\nrows = ''.join(f'<tr><td>{html.escape(b.title)}</td></tr>' for b in session.scalars(select(Book).limit(3)))\nprint(f'<table>{rows}</table>')"),
    ("base64 and hashlib", "import base64, hashlib\nt = session.get(Book, 1).title.encode()\nprint(base64.b64encode(t).decode(), hashlib.sha256(t).hexdigest()[:12], hashlib.md5(t).hexdigest()[:6])"),
    ("unicodedata", "import unicodedata\nname = session.get(Author, 4).name\nascii_name = unicodedata.normalize('NFKD', name).encode('ascii', 'ignore').decode()\nprint(ascii_name)"),
    ("copy", "import copy\nsettings = {'a': [1, 2], 'b': {'c': 3}}\nclone = copy.deepcopy(settings)\nclone['a'].append(9)\nprint(settings['a'], clone['a'], copy.copy([1, 2]))"),
    ("uuid and random", "import uuid, random\nrng = random.Random(42)\nprint(len(str(uuid.uuid4())), rng.sample(range(10), 3))"),
    ("calendar", "import calendar\nprint(calendar.month_name[3], calendar.isleap(2028))"),
    ("named tuple", "from typing import NamedTuple\nclass Line(NamedTuple):\n    title: str\n    price: float\nlines = [Line(b.title, float(b.price)) for b in session.scalars(select(Book).limit(2))]\nprint(lines[0].title, lines[0]._asdict())"),
    ("min max sorted with lambdas", "books = session.scalars(select(Book)).all()\nprint(min(books, key=lambda b: b.price).title, max(books, key=lambda b: (b.stock, b.title)).title)"),
    ("rows as dicts", "rows = session.execute(select(Author.name, Author.country).limit(2)).all()\nprint([dict(r._mapping) for r in rows], [r._asdict() for r in rows], rows[0]._fields)"),
    ("async tool", "values = [await fetch(i) for i in range(3)]\nprint(values, lookup('x'))"),
    ("string.Template", "from string import Template\nprint(Template('$title costs $$${price}').substitute(title='Emma', price='7.99'))"),
    ("fractions and numbers", "from fractions import Fraction\nimport numbers\nprint(Fraction(3, 4) + Fraction(1, 4), isinstance(1.5, numbers.Number))"),
    ("heapq and bisect", "import heapq, bisect\nprices = sorted(float(p) for p in session.scalars(select(Book.price)))\nprint(heapq.nlargest(2, prices), bisect.bisect_left(prices, 9.0))"),
    ("properties and classmethods", "class Basket:\n    rate = 0.2\n    def __init__(self):\n        self.items = []\n    @property\n    def total(self):\n        return sum(self.items)\n    @classmethod\n    def of(cls, *items):\n        b = cls()\n        b.items.extend(items)\n        return b\n    @staticmethod\n    def vat(x):\n        return round(x * Basket.rate, 2)\nb = Basket.of(1, 2)\nprint(b.total, Basket.vat(10))"),
    ("custom exception", "class OutOfStock(Exception):\n    def __init__(self, title):\n        super().__init__(f'{title} is out of stock')\n        self.title = title\ntry:\n    raise OutOfStock('Mort')\nexcept OutOfStock as err:\n    print(err, err.title)"),
    ("table printing", "rows = session.execute(select(Book.title, Book.stock).order_by(Book.stock.desc()).limit(3)).all()\nfor i, (title, stock) in enumerate(rows, 1):\n    print(str(i).rjust(2), title.ljust(30), str(stock).rjust(4))"),
    ("case-insensitive search", "print(session.scalars(select(Book.title).where(func.lower(Book.title).like('%war%'))).all(), session.scalars(select(Author.name).where(Author.name.ilike('%le guin%'))).all())"),
    ("update via ORM objects", "for b in session.scalars(select(Book).where(Book.stock == 0)):\n    b.stock += 1\nsession.flush()\nprint(session.scalar(select(func.count()).where(Book.stock == 0)))"),
    ("typing annotations", "from typing import Optional\ndef cheapest(limit: int = 3) -> list[str]:\n    result: list[str] = []\n    for b in session.scalars(select(Book).order_by(Book.price).limit(limit)):\n        result.append(b.title)\n    return result\nx: Optional[int] = None\nprint(cheapest(), x)"),
    ("enum defined by the model", "from enum import Enum\nclass Size(Enum):\n    SMALL = 1\n    LARGE = 2\nprint([s.name for s in Size], Size(2), type(Size.SMALL).__name__)"),
    ("dict and set comprehensions", "titles = {b.id: b.title for b in session.scalars(select(Book))}\ncountries = {a.country for a in session.scalars(select(Author))}\nprint(len(titles), sorted(countries))"),
    ("last expression shown", "session.scalar(select(func.count(Book.id)))"),
]


@for_each_payload(SNIPPETS, ["both", "runtime-only"])
def test_ordinary_code_runs(harness: Harness, layers: str, name: str, code: str) -> None:
    result = harness.run(code, layers)
    result.assert_ran()
    assert not result.leaks()


def test_the_corpus_is_big_enough() -> None:
    assert len(SNIPPETS) >= 60
