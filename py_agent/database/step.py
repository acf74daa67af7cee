"""The database side of a step: one connection, each step one transaction.

py-agent holds a single connection for the agent's life and binds the model's
``session`` to it with ``join_transaction_mode="create_savepoint"``. Each step
opens the outer transaction itself; the model's ``session.commit()`` only
releases a savepoint, so nothing the model writes is committed until the loop
decides (approval). On SQLite the connection also gets:

- an authorizer that refuses ATTACH, DETACH, ``load_extension``,
  ``PRAGMA writable_schema`` and any COMMIT/ROLLBACK the loop did not
  issue itself (so raw SQL cannot commit behind an approval);
- a progress handler, so a runaway query stops at the step's deadline (and,
  in the browser, when the interrupt flag is raised);
- a per-table count of inserted / updated / deleted rows, read from SQLite's
  ``total_changes`` around each statement (exact even with RETURNING).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

ChangeTable = dict[str, dict[str, int]]

_NAME = r'("[^"]+"|`[^`]+`|\[[^\]]+\]|[\w.]+)'
_DML = [
    ("inserted", re.compile(r"^\s*(?:INSERT|REPLACE)(?:\s+OR\s+\w+)?\s+INTO\s+" + _NAME, re.I)),
    ("updated", re.compile(r"^\s*UPDATE(?:\s+OR\s+\w+)?\s+" + _NAME, re.I)),
    ("deleted", re.compile(r"^\s*DELETE\s+FROM\s+" + _NAME, re.I)),
]

# sqlite3 authorizer action codes (stable across SQLite versions).
_SQLITE_PRAGMA = 19
_SQLITE_TRANSACTION = 22
_SQLITE_ATTACH = 24
_SQLITE_DETACH = 25
_SQLITE_FUNCTION = 31


def classify(statement: str) -> tuple[str, str] | None:
    """``(operation, table)`` for an INSERT/UPDATE/DELETE statement, else None."""
    for operation, pattern in _DML:
        match = pattern.match(statement)
        if match:
            name = match.group(1).strip('"`[]')
            return operation, name.split(".")[-1]
    return None


def memory_engine() -> Engine:
    """An in-memory SQLite engine whose one connection is shared (``StaticPool``)."""
    return create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})


class Database:
    """The agent's connection, session and step transactions."""

    def __init__(self, bind: Engine | Connection) -> None:
        self.connection = bind.connect() if isinstance(bind, Engine) else bind
        self._owns_connection = isinstance(bind, Engine)
        self.session = Session(bind=self.connection, join_transaction_mode="create_savepoint")
        self.deadline: float | None = None
        self._control = False  # True while the loop itself begins or ends a transaction
        self._tx: Any = None
        self._counts: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._open: tuple[str, str, int] | None = None
        self._dbapi = self._sqlite_connection()
        if self._dbapi is not None:
            self._guard_sqlite(self._dbapi)
        event.listen(self.connection, "before_cursor_execute", self._before_statement)
        event.listen(self.connection, "after_cursor_execute", self._after_statement)

    # -- SQLite guards -------------------------------------------------------------------
    def _sqlite_connection(self) -> sqlite3.Connection | None:
        raw = self.connection.connection.dbapi_connection
        return raw if isinstance(raw, sqlite3.Connection) else None

    def _guard_sqlite(self, raw: sqlite3.Connection) -> None:
        if self.connection.in_transaction():
            self.connection.commit()
        # pysqlite's own transaction handling breaks SAVEPOINT; take control of BEGIN
        # (the documented SQLAlchemy recipe), scoped to this one connection.
        raw.isolation_level = None
        event.listen(self.connection, "begin", self._emit_begin)
        raw.set_authorizer(self._authorize)
        raw.set_progress_handler(self._progress, 5000)

    def _emit_begin(self, connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")

    def _authorize(self, action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None) -> int:
        if action in (_SQLITE_ATTACH, _SQLITE_DETACH):
            return sqlite3.SQLITE_DENY
        if action == _SQLITE_FUNCTION and (arg2 or "").lower() == "load_extension":
            return sqlite3.SQLITE_DENY
        if action == _SQLITE_PRAGMA and (arg1 or "").lower() == "writable_schema":
            return sqlite3.SQLITE_DENY
        if action == _SQLITE_TRANSACTION and (arg1 or "").upper() != "BEGIN" and not self._control:
            # BEGIN is harmless (it cannot end anything); COMMIT/ROLLBACK only from the loop.
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    def _progress(self) -> int:
        # Returning non-zero makes SQLite stop the statement with "interrupted".
        # Being Python, this also gives the browser's interrupt flag a chance to fire.
        return 1 if self.deadline is not None and time.monotonic() > self.deadline else 0

    # -- change counting -------------------------------------------------------------------
    def _before_statement(self, conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        self._settle()
        kind = classify(statement)
        if kind is not None:
            before = self._dbapi.total_changes if self._dbapi is not None else 0
            self._open = (kind[0], kind[1], before)

    def _after_statement(self, conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        if self._dbapi is None and self._open is not None:
            # Other databases: trust the driver's rowcount.
            operation, table, _ = self._open
            self._counts[table][operation] += max(cursor.rowcount, 0)
            self._open = None

    def _settle(self) -> None:
        if self._open is not None and self._dbapi is not None:
            operation, table, before = self._open
            self._counts[table][operation] += self._dbapi.total_changes - before
        self._open = None

    def changes(self) -> ChangeTable:
        """Rows inserted / updated / deleted per table since the step began."""
        self._settle()
        return {
            table: {op: counts.get(op, 0) for op in ("inserted", "updated", "deleted")}
            for table, counts in sorted(self._counts.items())
            if any(counts.values())
        }

    # -- step transactions -----------------------------------------------------------------
    @property
    def in_step(self) -> bool:
        return self._tx is not None

    def begin_step(self) -> None:
        if self._tx is not None:
            raise RuntimeError("a step is already open")
        if self.connection.in_transaction():  # e.g. a read between steps autobegan one
            with self._controlled():
                if self.session.in_transaction():
                    self.session.commit()  # the host's own use of the session between steps
                self.connection.commit()
        self._counts.clear()
        self._open = None
        with self._controlled():
            self._tx = self.connection.begin_nested() if self.connection.in_transaction() else self.connection.begin()

    def flush(self) -> None:
        """Send pending ORM changes so they are counted (and constraint errors surface now)."""
        self.session.flush()

    def commit_step(self) -> None:
        self._end_step(commit=True)

    def rollback_step(self) -> None:
        self._end_step(commit=False)

    def _end_step(self, *, commit: bool) -> None:
        if self._tx is None:
            return
        tx, self._tx = self._tx, None
        with self._controlled():
            try:
                if commit:
                    self.session.commit()  # releases the model's savepoint, expires objects
                    tx.commit()
                else:
                    self.session.rollback()
                    tx.rollback()
            except BaseException:
                if tx.is_active:
                    tx.rollback()
                raise

    @contextlib.contextmanager
    def _controlled(self) -> Iterator[None]:
        """While open, the authorizer lets the loop's own COMMIT/ROLLBACK through."""
        self._control = True
        try:
            yield
        finally:
            self._control = False

    def close(self) -> None:
        self.rollback_step()
        self.session.close()
        if self._owns_connection:
            self.connection.close()
