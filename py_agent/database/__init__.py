"""The database side of a step: transactions, change capture, previews, history and undo.

- ``step.py``: the agent's connection and session; a step's transaction from begin to a
  sealed commit; undo/restore; staging an import.
- ``guard.py``: the SQLite authorizer (what SQL may do, by action code).
- ``capture.py``: every row a step changes (TEMP triggers on SQLite), behind a small
  ``Capture`` interface another database can implement.
- ``changes.py``: a step's ChangeSet: exact counts, a capped row preview, the journal.
- ``integrity.py``: foreign keys checked on the rows a step changed.
- ``history.py`` / ``undo.py``: history points kept in the database; reverting them.
- ``importing.py``: checking a database file against the mapped schema.
- ``engines.py``: SQLite engines with foreign keys on and the SAVEPOINT recipe.
"""

from __future__ import annotations

from .changes import ChangeSet, RowChange
from .engines import (
    enforce_foreign_keys,
    memory_engine,
    sqlite_engine,
    use_savepoint_recipe,
)
from .history import HistoryPoint
from .importing import ImportRefused, ImportReport, inspect_file
from .step import ChangeTable, CommitRefused, Committed, Database, Reverted, UndoError

__all__ = [
    "ChangeSet",
    "ChangeTable",
    "CommitRefused",
    "Committed",
    "Database",
    "HistoryPoint",
    "ImportRefused",
    "ImportReport",
    "Reverted",
    "RowChange",
    "UndoError",
    "enforce_foreign_keys",
    "inspect_file",
    "memory_engine",
    "sqlite_engine",
    "use_savepoint_recipe",
]
