"""The SQLite authorizer on the agent's connection: what SQL may do, decided by action code.

SQLite asks the authorizer about every table, column, pragma and transaction a
statement touches while it is prepared (trigger programs included), so the decision
never depends on how the SQL is spelled. The rules:

- ATTACH, DETACH, ``load_extension`` and ``PRAGMA writable_schema``: always refused.
- COMMIT and ROLLBACK during a step: only when the loop itself ends it (``controlled``).
  BEGIN and savepoints stay allowed: they cannot end the step's transaction.
- Schema changes (CREATE/DROP/ALTER of tables, indexes, views, triggers, virtual
  tables; REINDEX, ANALYZE; pragmas that change the file): refused in a step unless
  the policy allows them (``allow_schema_changes``); allowed ones are listed in
  ``schema`` so the step needs approval like any write.
- Pragmas that change how the connection enforces things (``foreign_keys``,
  ``recursive_triggers``, ``ignore_check_constraints``...) are refused; reading
  pragmas is allowed.
- py-agent's own tables (history, change capture) and triggers are off limits to
  every statement of a step but py-agent's own (``internal``) and its capture
  triggers; between steps the host may read them (never write).
- While ``sealed`` (a step's changes were computed for approval) every write is
  refused, whoever asks, until the loop has committed or rolled back.

When a statement is refused, ``refusal`` says why in words a model can act on.
"""

from __future__ import annotations

import sqlite3

OWN_PREFIX = "py_agent_"

_OK = sqlite3.SQLITE_OK
_DENY = sqlite3.SQLITE_DENY

_INSERT, _UPDATE, _DELETE = sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE
_READ = sqlite3.SQLITE_READ
_PRAGMA = sqlite3.SQLITE_PRAGMA
_TRANSACTION = sqlite3.SQLITE_TRANSACTION
_FUNCTION = sqlite3.SQLITE_FUNCTION

# Schema changes: action code -> words. The object name is the first argument.
_SCHEMA_ACTIONS = {
    sqlite3.SQLITE_CREATE_INDEX: "CREATE INDEX",
    sqlite3.SQLITE_CREATE_TABLE: "CREATE TABLE",
    sqlite3.SQLITE_CREATE_TEMP_INDEX: "CREATE TEMP INDEX",
    sqlite3.SQLITE_CREATE_TEMP_TABLE: "CREATE TEMP TABLE",
    sqlite3.SQLITE_CREATE_TEMP_TRIGGER: "CREATE TEMP TRIGGER",
    sqlite3.SQLITE_CREATE_TEMP_VIEW: "CREATE TEMP VIEW",
    sqlite3.SQLITE_CREATE_TRIGGER: "CREATE TRIGGER",
    sqlite3.SQLITE_CREATE_VIEW: "CREATE VIEW",
    sqlite3.SQLITE_DROP_INDEX: "DROP INDEX",
    sqlite3.SQLITE_DROP_TABLE: "DROP TABLE",
    sqlite3.SQLITE_DROP_TEMP_INDEX: "DROP TEMP INDEX",
    sqlite3.SQLITE_DROP_TEMP_TABLE: "DROP TEMP TABLE",
    sqlite3.SQLITE_DROP_TEMP_TRIGGER: "DROP TEMP TRIGGER",
    sqlite3.SQLITE_DROP_TEMP_VIEW: "DROP TEMP VIEW",
    sqlite3.SQLITE_DROP_TRIGGER: "DROP TRIGGER",
    sqlite3.SQLITE_DROP_VIEW: "DROP VIEW",
    sqlite3.SQLITE_ALTER_TABLE: "ALTER TABLE",
    sqlite3.SQLITE_REINDEX: "REINDEX",
    sqlite3.SQLITE_ANALYZE: "ANALYZE",
    sqlite3.SQLITE_CREATE_VTABLE: "CREATE VIRTUAL TABLE",
    sqlite3.SQLITE_DROP_VTABLE: "DROP VIRTUAL TABLE",
}
_ALWAYS_REFUSED = {sqlite3.SQLITE_ATTACH: "ATTACH", sqlite3.SQLITE_DETACH: "DETACH"}

# Pragmas that only report (any argument is a table or index name).
_READING_PRAGMAS = frozenset(
    ["table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo", "foreign_key_list", "foreign_key_check", "integrity_check", "quick_check", "database_list", "collation_list", "function_list", "module_list", "pragma_list", "compile_options", "data_version", "page_count", "freelist_count"]
)
# Pragmas that may be read (no argument) but not set from model code.
_SETTING_PRAGMAS = frozenset(
    ["foreign_keys", "recursive_triggers", "defer_foreign_keys", "ignore_check_constraints", "user_version", "application_id", "schema_version", "page_size", "encoding", "journal_mode", "auto_vacuum", "cache_size", "busy_timeout", "synchronous", "temp_store", "max_page_count", "locking_mode", "secure_delete", "query_only", "trusted_schema", "cell_size_check", "automatic_index", "legacy_alter_table", "reverse_unordered_selects", "case_sensitive_like", "soft_heap_limit", "hard_heap_limit"]
)
# Settings that change the file's schema header: allowed (and listed) with schema changes on.
_SCHEMA_PRAGMAS = frozenset({"user_version", "application_id"})


class _Switch:
    """Turns one of the guard's flags on while open, then puts back what it was (so they nest).

    A class rather than a generator-based context manager: a step opens several.
    """

    __slots__ = ("_guard", "_flag", "_previous")

    def __init__(self, guard: Guard, flag: str) -> None:
        self._guard = guard
        self._flag = flag
        self._previous = False

    def __enter__(self) -> None:
        self._previous = getattr(self._guard, self._flag)
        setattr(self._guard, self._flag, True)

    def __exit__(self, *exc: object) -> None:
        setattr(self._guard, self._flag, self._previous)


def _harmless(action: int, arg1: str | None, arg2: str | None) -> bool:
    """Actions whose statements do nothing when replayed: reads, BEGIN, savepoints, functions."""
    if action in (sqlite3.SQLITE_SAVEPOINT, _FUNCTION, sqlite3.SQLITE_RECURSIVE):
        return True
    if action == _TRANSACTION:
        return (arg1 or "").upper() == "BEGIN"
    if action == _PRAGMA:
        name = (arg1 or "").lower()
        return name in _READING_PRAGMAS or arg2 is None or name == "defer_foreign_keys"
    return False


class Guard:
    """The authorizer callback and the switches the database layer flips around it."""

    def __init__(self, *, allow_schema_changes: bool = False) -> None:
        self.allow_schema_changes = allow_schema_changes
        self.internal = False  # py-agent's own SQL: anything goes
        self.controlled = False  # the loop ends a transaction: COMMIT/ROLLBACK allowed
        self.sealed = False  # the step's changes were shown: no more writes
        self.in_step = False
        self.schema: list[str] = []  # schema changes allowed in this step
        # Foreign-key checks are deferred to the end of a step (for messages that name the
        # rows), but switching that on makes SQLite prepare every statement again, so it is
        # done only when a step first writes: that write is refused once with
        # ``wants_deferral`` set, and the database layer defers and runs it again.
        self.defer_writes = False
        self.deferred = False
        self.wants_deferral = False
        self.tracked: frozenset[str] = frozenset()  # tables (and views) whose rows are captured
        self.untracked: list[str] = []  # tables this step's statements write that are not
        self.refusal = ""  # why the last statement was refused
        # SQLite consults the authorizer when it prepares a statement, and sqlite3 keeps
        # prepared statements for reuse. A kept statement that can write was authorized
        # under the rules of its time; ``dirty`` says one may exist, so the database layer
        # makes SQLite prepare everything again (``set_authorizer``) before rules tighten.
        self.dirty = True

    # -- switches ---------------------------------------------------------------------------
    def as_internal(self) -> _Switch:
        """While open: py-agent's own SQL (anything goes)."""
        return _Switch(self, "internal")

    def as_controlled(self) -> _Switch:
        """While open: the loop ends a transaction (COMMIT/ROLLBACK allowed)."""
        return _Switch(self, "controlled")

    def begin(self) -> None:
        self.in_step, self.sealed, self.schema, self.untracked, self.refusal = True, False, [], [], ""
        self.deferred = self.wants_deferral = False

    def end(self) -> None:
        self.in_step, self.sealed = False, False

    # -- the callback -----------------------------------------------------------------------
    def __call__(self, action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None) -> int:
        if action == _READ or action == sqlite3.SQLITE_SELECT:
            if self.internal:
                return _OK
            # Model code runs only in steps; between them the host may read the history.
            if self.in_step and arg1 and arg1.startswith(OWN_PREFIX) and not (trigger or "").startswith(OWN_PREFIX):
                return self._deny(f"the table {arg1} belongs to py-agent (its history); query your own tables")
            return _OK
        if not (self.controlled and action == _TRANSACTION) and not _harmless(action, arg1, arg2):
            # A statement that can change something is being prepared: SQLite keeps prepared
            # statements, and a kept one is not asked about again; see ``dirty``.
            self.dirty = True
        if self.internal:
            return _OK
        if action in (_INSERT, _UPDATE, _DELETE):
            return self._write(action, arg1 or "", trigger)
        if action == _TRANSACTION:
            # Between steps the host may end its own transactions; in a step only the loop may.
            if (arg1 or "").upper() == "BEGIN" or self.controlled or not self.in_step:
                return _OK
            return self._deny(
                f"{(arg1 or '').upper()} is done by py-agent, not by your code: the step is committed "
                "or rolled back as a whole when it ends (session.commit() is fine, it only releases a savepoint)"
            )
        if action == sqlite3.SQLITE_SAVEPOINT:
            return _OK
        if action == _FUNCTION:
            name = (arg2 or "").lower()
            if name == "load_extension":
                return self._deny("load_extension() is not allowed")
            if name.startswith(OWN_PREFIX) and not (trigger or "").startswith(OWN_PREFIX):
                return self._deny(f"{name}() belongs to py-agent")
            return _OK
        if action == _PRAGMA:
            return self._pragma((arg1 or "").lower(), arg2)
        if action in _ALWAYS_REFUSED:
            return self._deny(f"{_ALWAYS_REFUSED[action]} is not allowed: work in the one database you were given")
        described = _SCHEMA_ACTIONS.get(action)
        if described is not None:
            if action == sqlite3.SQLITE_ALTER_TABLE:  # (database, table)
                arg1, arg2 = arg2, None
            return self._schema_change(action, described, arg1 or "", arg2)
        return _OK

    def _write(self, action: int, table: str, trigger: str | None) -> int:
        own_trigger = (trigger or "").startswith(OWN_PREFIX)
        if table.startswith(OWN_PREFIX) and not own_trigger:
            return self._deny(f"the table {table} belongs to py-agent (its history); it cannot be changed by code")
        if self.sealed and not own_trigger:
            return self._deny(
                "the step's changes were already shown for approval, so no more writes are accepted "
                "until they are committed or rolled back (code that runs at commit time cannot add any)"
            )
        if self.in_step and self.defer_writes and not self.deferred and not own_trigger:
            self.wants_deferral = True
            return self._deny("foreign-key checks are deferred before the first write of a step (py-agent runs the statement again)")
        if (
            self.in_step
            and not own_trigger
            and table not in self.tracked
            and not table.startswith("sqlite_")  # the schema table, AUTOINCREMENT's counters
            and table not in self.untracked
        ):
            self.untracked.append(table)
        return _OK

    def _pragma(self, name: str, argument: str | None) -> int:
        if name == "writable_schema":
            return self._deny("PRAGMA writable_schema is not allowed")
        if name in _READING_PRAGMAS:
            return _OK
        if name in _SETTING_PRAGMAS:
            if argument is None:
                return _OK
            if name in _SCHEMA_PRAGMAS and self.in_step:
                return self._schema_change(_PRAGMA, f"PRAGMA {name} =", argument, None)
            return self._deny(f"PRAGMA {name} cannot be set from a step: py-agent relies on the connection's settings")
        return self._deny(f"PRAGMA {name} is not allowed in a step; the reading pragmas (table_info, foreign_key_list, ...) are")

    def _schema_change(self, action: int, described: str, name: str, other: str | None) -> int:
        if name.startswith(OWN_PREFIX) or (other or "").startswith(OWN_PREFIX):
            return self._deny(f"{name or other} belongs to py-agent and cannot be changed")
        if self.sealed:
            return self._deny("the step's changes were already shown for approval, so no more changes are accepted")
        if not self.in_step:
            return _OK  # the host's own schema work between steps
        if not self.allow_schema_changes:
            return self._deny(
                f"{described} {name} was refused: this agent may change rows but not the schema "
                "(tables, columns, indexes, views, triggers). Work with the tables as they are, "
                "or ask the person to change the schema"
            )
        entry = f"{described} {name}".strip()
        if entry not in self.schema:
            self.schema.append(entry)
        return _OK

    def _deny(self, reason: str) -> int:
        self.refusal = reason
        return _DENY
