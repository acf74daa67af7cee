"""What show() and chart() cost: time to turn 10 000 rows into a display, its JSON size, and
the size of the summary the model reads (issue 9.1: "a 10 000-row result costs the model a
few hundred tokens").

    python benchmarks/display.py
    node --experimental-wasm-stack-switching benchmarks/core_pyodide.mjs --script benchmarks/display.py

Times are CPU time (``time.process_time``), the best of 5, so other work on the machine
counts less; the query's own fetch is measured apart and included in the show() figures.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import sys
import time
from decimal import Decimal

from sqlalchemy import Numeric, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from py_agent.display import Displays

ROWS = 10_000
REPEAT = 5


class Base(DeclarativeBase):
    pass


class Book(Base):
    __tablename__ = "books"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(80))
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    published: Mapped[dt.date]


def best(make, run) -> float:
    """Best CPU time of ``run(make())`` in ms (``make`` is not timed)."""
    times = []
    for _ in range(REPEAT):
        data = make()
        start = time.process_time()
        run(data)
        times.append(time.process_time() - start)
    return min(times) * 1000


def quietly(function):
    def run(data):
        with contextlib.redirect_stdout(io.StringIO()):
            function(data)

    return run


def main() -> None:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add_all(
            Book(id=i, title=f"book number {i}", price=Decimal(i) / 100, published=dt.date(2000, 1, 1) + dt.timedelta(days=i % 5000))
            for i in range(ROWS)
        )
        session.commit()
        columns = select(Book.id, Book.title, Book.price, Book.published)
        print(f"py-agent display benchmark ({sys.platform}, Python {sys.version.split()[0]}), {ROWS:,} rows × 4 columns, best of {REPEAT}, CPU ms")
        fetch = best(lambda: None, lambda _: session.execute(columns).all())
        print(f"  fetch only (session.execute(...).all())      {fetch:7.1f}")
        show = lambda data: Displays().show(data)
        print(f"  show(session.execute(select(columns)))       {best(lambda: session.execute(columns), quietly(show)):7.1f}")
        session.expire_all()
        objects = session.scalars(select(Book)).all()
        print(f"  show(list of ORM objects, loaded)            {best(lambda: objects, quietly(show)):7.1f}")
        dicts = [{"id": b.id, "title": b.title, "price": b.price, "published": b.published} for b in objects]
        print(f"  show(list of dicts)                          {best(lambda: dicts, quietly(show)):7.1f}")
        line = lambda data: Displays().chart(data, x="published", y="price", kind="line")
        print(f"  chart(..., kind='line') (5,000 points kept)  {best(lambda: session.execute(columns), quietly(line)):7.1f}")

        displays = Displays()
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            displays.show(session.execute(columns), title="All books")
        [shown] = displays.take()
        summary = out.getvalue()
        payload = json.dumps({"type": "display", "step": 1, **shown.event_fields()}, allow_nan=False)
        print(f"  display event JSON                           {len(payload) / 1e6:7.2f} MB")
        print(f"  summary the model reads                      {len(summary):7d} characters (~{len(summary) // 4} tokens)")


if __name__ == "__main__":
    main()
