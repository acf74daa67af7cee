"""SQLite engines configured the way py-agent needs them (and SQLAlchemy's docs recommend).

- Foreign keys are enforced: SQLite checks them only on connections that ask
  (``PRAGMA foreign_keys=ON``), so every connection of these engines asks.
- pysqlite's own transaction handling is switched off and SQLAlchemy emits BEGIN
  itself: the documented recipe that makes SAVEPOINT and transactional DDL work.
- ``sqlite://`` (in memory) uses one shared connection (``StaticPool``), usable from
  any thread, so every session of the engine sees the same database.

``enforce_foreign_keys`` and ``use_savepoint_recipe`` also serve engines created
elsewhere (the browser worker's, an app's).
"""

from __future__ import annotations

import sqlite3
import weakref
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import StaticPool

_MEMORY_URLS = {"sqlite://", "sqlite:///:memory:", "sqlite+pysqlite://", "sqlite+pysqlite:///:memory:"}


def _foreign_keys_on(dbapi_connection: Any, record: Any) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        # Outside any transaction (a new connection): the PRAGMA is a no-op inside one.
        dbapi_connection.execute("PRAGMA foreign_keys=ON")


def _no_pysqlite_transactions(dbapi_connection: Any, record: Any) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.isolation_level = None


def _emit_begin(connection: Connection) -> None:
    raw = connection.connection.dbapi_connection
    if isinstance(raw, sqlite3.Connection) and not raw.in_transaction:
        connection.exec_driver_sql("BEGIN")


# What each engine was given, remembered on the engine's own weak entry. Not `event.contains`:
# SQLAlchemy's registry is keyed by id(), so a new engine at the address of a collected one can
# look as if it had the hook already.
_GIVEN: "weakref.WeakKeyDictionary[Engine, set[str]]" = weakref.WeakKeyDictionary()


def first_time(engine: Engine, what: str) -> bool:
    """True the first time ``what`` is asked for ``engine``."""
    given = _GIVEN.setdefault(engine, set())
    if what in given:
        return False
    given.add(what)
    return True


def enforce_foreign_keys(engine: Engine) -> Engine:
    """Turn on foreign-key enforcement for every new SQLite connection of ``engine``."""
    if engine.dialect.name == "sqlite" and first_time(engine, "foreign keys"):
        event.listen(engine, "connect", _foreign_keys_on)
    return engine


def use_savepoint_recipe(engine: Engine) -> Engine:
    """SQLAlchemy's pysqlite recipe: pysqlite stays out of transactions, SQLAlchemy emits BEGIN."""
    if engine.dialect.name == "sqlite" and first_time(engine, "savepoint recipe"):
        event.listen(engine, "connect", _no_pysqlite_transactions)
        event.listen(engine, "begin", _emit_begin)
    return engine


def sqlite_engine(url: str = "sqlite://", **options: Any) -> Engine:
    """A SQLite engine with foreign keys enforced and the SAVEPOINT recipe applied.

    ``url`` is a ``sqlite://`` or ``sqlite+pysqlite://`` URL; in memory (the default)
    the one connection is shared by every session and thread.
    """
    if url in _MEMORY_URLS:
        options.setdefault("poolclass", StaticPool)
        options.setdefault("connect_args", {"check_same_thread": False})
    engine = create_engine(url, **options)
    return use_savepoint_recipe(enforce_foreign_keys(engine))


def memory_engine() -> Engine:
    """An in-memory SQLite engine whose one connection is shared (``StaticPool``)."""
    return sqlite_engine("sqlite://")
