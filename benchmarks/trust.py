"""Trust benchmark: what the row-level preview and an undo cost, and a read-only step's overhead.

Prints figures (medians) against targets; never fails on speed. Each figure is the
process's CPU time (``time.process_time``: what the work costs, little disturbed by other
programs on the machine) and, in brackets, wall-clock time (which adds waiting for the
disk: a file database's COMMIT syncs it; the browser's in-memory file does not). Run on CPython:
``python benchmarks/trust.py``; inside Pyodide under Node (after ``python build.py build``):
``node --experimental-wasm-stack-switching benchmarks/core_pyodide.mjs --script benchmarks/trust.py``.

The database is the demo bookshop grown to about 10 MB (extra books with long
descriptions in their titles), in a file, as the browser worker keeps it. The step
changes 1 000 rows (``UPDATE books ... WHERE id <= 1000``) through the agent's
connection. Measured:

- capture: the UPDATE with py-agent's capture triggers, minus the same UPDATE without
  them (what copying the rows costs while the step runs);
- preview: ``finish_step`` - close the session, seal, fold the captured rows into counts,
  the capped preview and the journal, check references;
- commit: ``commit_step`` with the history point and its journal written;
- undo: ``undo()`` of that point - conflict check, apply, verify, record the undo point;
- read-only step: begin + finish + commit around one query, minus the bare query.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from py_agent.database import Database, sqlite_engine
from py_agent.demo import Base, Book, seed

TARGET_MB = 10
ROWS_CHANGED = 1_000


def build_database(path: str) -> None:
    engine = sqlite_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        seed(session)
        session.commit()
    with engine.begin() as conn:
        author = conn.exec_driver_sql("SELECT min(id) FROM authors").scalar()
        filler = "a long catalogue description " * 4
        batch = [(f"Book {i} - {filler}", author, "FICTION", 9.5, i % 7, "book") for i in range(5_000)]
        while os.path.getsize(path) < TARGET_MB * 1024 * 1024:
            conn.exec_driver_sql(
                "INSERT INTO books (title, author_id, genre, price, stock, kind) VALUES (?, ?, ?, ?, ?, ?)", batch
            )
    engine.dispose()


def ms(seconds: float) -> float:
    return seconds * 1000


def cpu_time() -> float:
    """CPU seconds of this process. Inside Pyodide under Node, process_time() is wall time,
    so Node's own account (process.cpuUsage) is asked instead."""
    if sys.platform == "emscripten":
        try:
            import js  # only in this benchmark script: the package never imports it here

            usage = js.process.cpuUsage()
            return (usage.user + usage.system) / 1e6
        except Exception:  # noqa: BLE001, S110 - in a browser there is no process object
            pass
    return time.process_time()


class Clock:
    """CPU and wall time of a block."""

    def __enter__(self) -> Self:
        self.cpu, self.wall = cpu_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu, self.wall = cpu_time() - self.cpu, time.perf_counter() - self.wall


def measure(path: str, repeats: int) -> dict[str, list[tuple[float, float]]]:
    engine = sqlite_engine(f"sqlite:///{path}")
    db = Database(engine)
    update = text(f"UPDATE books SET price = price + 1, stock = stock + 1 WHERE id <= {ROWS_CHANGED}")
    names = ("bare write", "capture", "preview", "commit", "undo", "read-only step")
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in names}
    for i in range(repeats + 1):
        # The same UPDATE without capture (a plain connection) for the baseline.
        plain = engine.raw_connection()
        try:
            plain.dbapi_connection.execute("BEGIN")
            with Clock() as bare:
                plain.dbapi_connection.execute(str(update))
            plain.dbapi_connection.execute("ROLLBACK")
        finally:
            plain.close()

        db.begin_step()
        with Clock() as captured:
            db.session.execute(update)
        with Clock() as preview:
            changes = db.finish_step()
        assert changes.tables["books"]["updated"] == ROWS_CHANGED, changes.tables
        with Clock() as commit:
            db.commit_step(request="raise prices")
        with Clock() as undo:
            db.undo()

        with Clock() as step:
            db.begin_step()
            db.session.scalars(select(Book.title).where(Book.id < 20)).all()
            db.finish_step()
            db.commit_step()
        with Clock() as bare_read:
            db.session.scalars(select(Book.title).where(Book.id < 20)).all()
            db.session.rollback()
        if i == 0:
            continue  # warm-up
        times["bare write"].append((bare.cpu, bare.wall))
        times["capture"].append((captured.cpu - bare.cpu, captured.wall - bare.wall))
        times["preview"].append((preview.cpu, preview.wall))
        times["commit"].append((commit.cpu, commit.wall))
        times["undo"].append((undo.cpu, undo.wall))
        times["read-only step"].append((step.cpu - bare_read.cpu, step.wall - bare_read.wall))
    db.close()
    engine.dispose()
    return times


def main() -> None:
    repeats = int(os.environ.get("TRUST_BENCH_REPEATS", "7"))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "shop.sqlite")
        t = time.perf_counter()
        build_database(path)
        size = os.path.getsize(path) / 1024 / 1024
        built = time.perf_counter() - t
        times = measure(path, repeats)
    where = "Pyodide" if sys.platform == "emscripten" else "CPython"
    print(f"py-agent trust benchmark, {where} {sys.version.split()[0]} (median of {repeats}; database {size:.1f} MB, built in {built:.1f} s)")
    print("  figures: CPU ms  [wall ms]")
    labels = {
        "bare write": f"the UPDATE of {ROWS_CHANGED:,} rows, no capture",
        "capture": "  + capture triggers during the write",
        "preview": "preview (seal, fold, counts, rows, refs)",
        "commit": "commit with history journal",
        "undo": "undo of that point",
        "read-only step": "read-only step, database overhead",
    }
    targets = {"preview": 50.0, "undo": 50.0}
    for name, label in labels.items():
        cpu = ms(statistics.median(c for c, _ in times[name]))
        wall = ms(statistics.median(w for _, w in times[name]))
        target = targets.get(name)
        verdict = f"   target < {target:g} ms   {'OK' if cpu < target else 'OVER'}" if target else ""
        print(f"  {label:44} {cpu:8.2f}  [{wall:8.2f}]{verdict}")


if __name__ == "__main__":
    main()
