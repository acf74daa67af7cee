"""The database side of a step: one connection, each step one transaction.

py-agent holds a single connection for the agent's life and binds the model's
``session`` to it with ``join_transaction_mode="create_savepoint"``. Each step opens
the outer transaction itself; the model's ``session.commit()`` only releases a
savepoint, so nothing the model writes is committed until the loop decides.

A step goes: ``begin_step`` -> model code -> ``finish_step`` (flush, close the
session's savepoint, *seal*, collect the :class:`ChangeSet`, check references) ->
``commit_step`` or ``rollback_step``. Sealing is what makes the approval mean
something: from the moment the changes are computed, the authorizer refuses every
write, and ``commit_step`` compares SQLite's change counters with the ones taken at
sealing time right before the final COMMIT. Whatever code runs in between
(SQLAlchemy listeners on the session, engine or classes, the host) cannot add, change
or hide a row: the rows committed are the rows shown.

On SQLite the connection also gets:

- foreign keys enforced (``PRAGMA foreign_keys=ON``), checked at the end of each step
  with messages that name the rows (``integrity.py``);
- ``recursive_triggers=ON``, so REPLACE's implicit deletes reach the capture;
- the authorizer (``guard.py``) and the change capture (``capture.py``);
- a progress handler, so a runaway query stops at the step's deadline (and, in the
  browser, when the interrupt flag is raised);
- history points with a journal, and undo/restore (``history.py``, ``undo.py``).

Other databases get the transaction handling and per-table counts from the driver's
row counts (no row preview, no history): see :class:`_CountingCapture`.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from ..errors import PyAgentError
from . import integrity, undo
from .capture import SqliteCapture
from .changes import PREVIEW_LIMIT, ChangeSet, RowChange, build_changeset, forget_inserted_objects
from .engines import first_time
from .guard import Guard
from .history import JOURNAL_LIMIT, History, HistoryPoint

ChangeTable = dict[str, dict[str, int]]

# The Database that owns each sqlite3 connection (by id): the newest one.
_OWNERS: weakref.WeakValueDictionary[int, Database] = weakref.WeakValueDictionary()
# The Database of each SQLAlchemy connection (by id), for the engine-wide hooks below:
# module functions, so an engine outliving many conversations keeps none of them alive.
_BY_CONNECTION: weakref.WeakValueDictionary[int, Database] = weakref.WeakValueDictionary()


def _on_begin(connection: Connection) -> None:
    db = _BY_CONNECTION.get(id(connection))
    if db is not None and db.connection is connection:
        db._emit_begin(connection)


def _deferring(statement: str, context: Any) -> Database | None:
    """The Database whose step is about to write for the first time, if this statement is its."""
    if statement.startswith("SELECT"):
        # Most statements of a step, and a SELECT never writes a row in SQLite (DML cannot
        # appear inside a query). Nothing is skipped that matters: the authorizer still
        # decides; were a SELECT ever to write, its first write would be refused (an error),
        # not let through without the deferral.
        return None
    connection = getattr(context, "root_connection", None)
    db = _BY_CONNECTION.get(id(connection))
    if db is None or db.connection is not connection or not db.guard.in_step or db.guard.deferred:
        return None
    return db


def _on_execute(cursor: Any, statement: str, parameters: Any, context: Any) -> bool | None:
    db = _deferring(statement, context)
    return None if db is None else db._execute_deferring(lambda: cursor.execute(statement, parameters))


def _on_executemany(cursor: Any, statement: str, parameters: Any, context: Any) -> bool | None:
    db = _deferring(statement, context)
    return None if db is None else db._execute_deferring(lambda: cursor.executemany(statement, parameters))


def _on_execute_no_params(cursor: Any, statement: str, context: Any) -> bool | None:
    db = _deferring(statement, context)
    return None if db is None else db._execute_deferring(lambda: cursor.execute(statement))


def _on_error(context: Any) -> BaseException | None:
    db = _BY_CONNECTION.get(id(context.connection))
    if db is not None and db.connection is context.connection:
        return db._explain_refusal(context)
    return None


class CommitRefused(PyAgentError):
    """The changes to commit were not the ones shown: nothing was committed."""

    kind = "commit"


class UndoError(PyAgentError):
    """An undo or restore could not be done; the database is unchanged."""

    kind = "undo"


class ForeignKeyViolation(Exception):
    """The step left references to rows that do not exist (the message names them)."""


@dataclass(frozen=True)
class Committed:
    """What ``commit_step`` committed, the history point it recorded, and any warnings."""

    changes: ChangeSet
    point: HistoryPoint | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Reverted:
    """What an undo or restore changed, and the point recording it."""

    point: HistoryPoint
    changes: ChangeSet
    reverted: tuple[int, ...]


class Database:
    """The agent's connection, session, step transactions, change capture and history."""

    def __init__(
        self,
        bind: Engine | Connection,
        *,
        allow_schema_changes: bool = False,
        history: bool = True,
        preview_limit: int = PREVIEW_LIMIT,
        journal_limit: int = JOURNAL_LIMIT,
    ) -> None:
        self.connection = bind.connect() if isinstance(bind, Engine) else bind
        self._owns_connection = isinstance(bind, Engine)
        self.engine = self.connection.engine
        self.session = Session(bind=self.connection, join_transaction_mode="create_savepoint")
        self.deadline: float | None = None
        self.preview_limit = preview_limit
        self.journal_limit = journal_limit
        self.guard = Guard(allow_schema_changes=allow_schema_changes)
        self._tx: Any = None
        self._superseded = False
        self._finished: ChangeSet | None = None  # the sealed changes of the open step
        self._fingerprint: tuple[int, ...] = ()
        self._fk_cache: tuple[object, list[integrity.ForeignKey]] | None = None
        self.raw = self._sqlite_connection()
        self.capture: SqliteCapture | _CountingCapture
        self.history: History | None = None
        if self.raw is not None:
            self._setup_sqlite(self.raw, history=history)
        else:
            self.capture = _CountingCapture(self.connection)

    # -- setup -------------------------------------------------------------------------------------
    def _sqlite_connection(self) -> sqlite3.Connection | None:
        raw = self.connection.connection.dbapi_connection
        return raw if isinstance(raw, sqlite3.Connection) else None

    def _setup_sqlite(self, raw: sqlite3.Connection, *, history: bool) -> None:
        # One Database per sqlite3 connection: an in-memory engine shares one connection
        # among all its sessions, so a second State on it takes over (the first is retired).
        previous = _OWNERS.get(id(raw))
        if previous is not None and previous is not self:
            previous._superseded = True
        _OWNERS[id(raw)] = self
        raw.set_authorizer(None)
        if self.connection.in_transaction():
            self.connection.commit()
        if raw.in_transaction:
            raw.commit()
        # pysqlite's own transaction handling breaks SAVEPOINT: SQLAlchemy emits BEGIN
        # (the documented recipe). Listening on the engine, after any recipe the host
        # installed, lets both coexist: BEGIN is emitted only if nobody did yet.
        raw.isolation_level = None
        _BY_CONNECTION[id(self.connection)] = self
        hooks = (
            ("begin", _on_begin),
            ("handle_error", _on_error),
            ("do_execute", _on_execute),
            ("do_executemany", _on_executemany),
            ("do_execute_no_params", _on_execute_no_params),
        )
        if first_time(self.engine, "step hooks"):  # once per engine (see engines.first_time)
            for name, hook in hooks:
                event.listen(self.engine, name, hook)
        self.guard.defer_writes = True
        raw.execute("PRAGMA foreign_keys=ON")
        raw.execute("PRAGMA recursive_triggers=ON")
        raw.set_authorizer(self.guard)
        raw.set_progress_handler(self._progress, 5000)
        if self._owns_connection:  # a host's own Connection keeps SQLAlchemy's way
            _direct_savepoints(self.connection, raw)
        self.capture = SqliteCapture(raw, self.guard)
        self.history = None
        self._schema_seen = 0
        self.set_policy(allow_schema_changes=self.guard.allow_schema_changes, history=history)

    def set_policy(self, *, allow_schema_changes: bool, history: bool) -> None:
        """Whether steps may change the schema, and whether commits keep history."""
        self.guard.allow_schema_changes = allow_schema_changes
        if self.raw is None:
            return
        if history and self.history is None:
            self.history = History(self.raw, self.guard, journal_limit=self.journal_limit)
        elif not history:
            self.history = None
        # Only with schema changes allowed can a step create a table whose rows need capturing.
        listening = event.contains(self.connection, "after_cursor_execute", self._after_statement)
        if allow_schema_changes and not listening:
            event.listen(self.connection, "after_cursor_execute", self._after_statement)
        elif not allow_schema_changes and listening:
            event.remove(self.connection, "after_cursor_execute", self._after_statement)

    def _after_statement(self, *args: Any) -> None:
        if self.guard.in_step and len(self.guard.schema) != self._schema_seen:
            self._schema_seen = len(self.guard.schema)
            self.capture.refresh()

    def _emit_begin(self, connection: Connection) -> None:
        if self.raw is not None and not self.raw.in_transaction:
            # Straight to sqlite3: SQLAlchemy's statement machinery for one BEGIN per step
            # cost more than the rest of begin_step. The authorizer still sees it.
            self.raw.execute("BEGIN")

    def _execute_deferring(self, run: Any) -> bool:
        """Run a statement of the step; if it is the step's first write, defer foreign-key
        checks first (the authorizer refused it once for that) and run it again."""
        self.guard.wants_deferral = False
        try:
            run()
        except sqlite3.DatabaseError:
            if not self.guard.wants_deferral or self.raw is None:
                raise
            self.guard.wants_deferral = False
            with self.guard.as_internal():
                self.raw.execute("PRAGMA defer_foreign_keys=ON")  # resets itself at COMMIT/ROLLBACK
            self.guard.deferred = True
            run()
        return True

    def _explain_refusal(self, context: Any) -> BaseException | None:
        """Replace SQLite's bare "not authorized" with the reason the authorizer gave."""
        if not self.guard.refusal:
            return None
        original = context.original_exception
        text = str(original)
        if not isinstance(original, sqlite3.DatabaseError) or ("not authorized" not in text and "prohibited" not in text):
            return None
        reason = sqlite3.DatabaseError(f"not authorized: {self.guard.refusal}")
        return sa_exc.DatabaseError(context.statement, context.parameters, reason)

    def _progress(self) -> int:
        # Returning non-zero makes SQLite stop the statement with "interrupted".
        # Being Python, this also gives the browser's interrupt flag a chance to fire.
        return 1 if self.deadline is not None and time.monotonic() > self.deadline else 0

    def _recheck_statements(self) -> None:
        """Make SQLite re-run the authorizer for every statement it has prepared.

        The authorizer is consulted when a statement is prepared, and sqlite3 keeps
        prepared statements for reuse; setting it again expires them all. Only needed
        when a kept statement might write (``Guard.dirty``): a run of read-only steps
        keeps its prepared statements.
        """
        if self.raw is not None and self.guard.dirty:
            self.guard.dirty = False
            self.raw.set_authorizer(self.guard)

    @property
    def is_sqlite(self) -> bool:
        return self.raw is not None

    # -- the step ---------------------------------------------------------------------------------
    @property
    def in_step(self) -> bool:
        return self._tx is not None

    @property
    def sealed(self) -> bool:
        return self._finished is not None

    def begin_step(self) -> None:
        if self._tx is not None:
            raise RuntimeError("a step is already open")
        if self._superseded:
            raise PyAgentError(
                "this conversation's database connection is now used by a newer conversation (State)",
                hint="continue with the newer State, or give each State its own engine",
            )
        self._settle_host()
        self.capture.prepare()
        self.guard.begin()
        self._schema_seen = 0
        self._finished = None
        with self.guard.as_controlled():
            self._tx = self.connection.begin()
        self.capture.start()
        self._recheck_statements()

    def _settle_host(self) -> None:
        """Commit what the host did with the session or connection between steps.

        The host's own pending ORM changes are flushed first (they are the host's writes);
        then the transaction is committed as py-agent does it, with writes refused, so
        code that runs at commit time (listeners) cannot slip rows in outside a step.
        """
        if self.session.in_transaction():
            self.session.flush()
        if self.connection.in_transaction() or (self.raw is not None and self.raw.in_transaction):
            self._end_transaction(commit=True)

    def _end_transaction(self, *, commit: bool) -> list[str]:
        """End the connection's transaction at the DBAPI level, then let SQLAlchemy catch up.

        Writes are refused throughout: between the final COMMIT/ROLLBACK and SQLAlchemy's
        bookkeeping, listeners run, and nothing they do may change the database.
        """
        warnings: list[str] = []
        previous, self.guard.sealed = self.guard.sealed, True
        self._recheck_statements()
        try:
            with self.guard.as_controlled():
                if not commit and self.session.in_transaction():
                    # First, so SQLAlchemy restores the session's objects from its savepoint.
                    _attempt("", self.session.rollback)
                if self.raw is not None and self.raw.in_transaction:
                    (self.raw.commit if commit else self.raw.rollback)()
                if commit and self.session.in_transaction():
                    warnings += _attempt("code that ran as the session ended", self.session.commit)
                if self.session.in_transaction():  # its commit failed: it must be rolled back
                    _attempt("", self.session.rollback)
                if self.connection.in_transaction():
                    warnings += _attempt("code that ran as the transaction ended", self.connection.commit if commit else self.connection.rollback)
                if self.connection.get_transaction() is not None:  # a failed commit leaves it, inactive, to be rolled back
                    _attempt("", self.connection.rollback)
                if self.raw is not None and self.raw.in_transaction:
                    self.raw.rollback()  # a listener began one; nothing can have been written in it
        finally:
            self.guard.sealed = previous
        return warnings

    def create_tables(self, metadata: Any) -> bool:
        """Create ``metadata``'s tables if the database has no tables at all; True if it did.

        An existing database is never altered.
        """
        if self._tx is not None:
            return False
        self._settle_host()
        with self.guard.as_controlled():
            names = sa_inspect(self.connection).get_table_names()
            if not names:
                metadata.create_all(self.connection)
        self._end_transaction(commit=True)
        return not names

    def flush(self) -> None:
        """Send pending ORM changes (constraint errors surface now)."""
        self.session.flush()

    def finish_step(self) -> ChangeSet:
        """End the model's part of the step: flush, seal, and return what it changed.

        Raises whatever the flush raises (constraint errors) and
        :class:`ForeignKeyViolation`; the step is then still open, for the caller to
        roll back.
        """
        if self._finished is not None:
            return self._finished
        if self._tx is None:
            raise RuntimeError("no step is open")
        # Code registered to run at flush or commit runs now, inside the step: whatever
        # it writes is captured and shown like the rest. Code that runs after the commit
        # (after_commit) may open the session again: commit that too, a few times at most.
        for _ in range(3):
            self.session.commit()
            if not self.session.in_transaction():
                break
        else:
            raise RuntimeError("code registered to run when the session commits keeps writing; the step was rolled back")
        self.guard.sealed = True
        self._recheck_statements()
        changes = self.capture.collect(
            schema=self.guard.schema, untracked=self.guard.untracked, preview_limit=self.preview_limit, journal_limit=self.journal_limit
        )
        self._finished = changes  # set before the check: a rollback must know what was inserted
        if self.raw is not None and changes.journal:
            with self.guard.as_internal():
                self._check_references(changes.journal, changes)
        self._fingerprint = self.capture.fingerprint()
        return changes

    def _check_references(self, journal: Sequence[RowChange], changes: ChangeSet) -> None:
        assert self.raw is not None
        keys = self._foreign_keys()
        if not keys:
            return
        problems = integrity.broken_references(self.raw, journal, self.capture.shapes, keys)  # type: ignore[union-attr]
        if problems:
            raise ForeignKeyViolation(integrity.violation_message(problems))

    def _foreign_keys(self) -> list[integrity.ForeignKey]:
        """The schema's foreign keys, read again only when the capture saw the schema change."""
        assert self.raw is not None
        shapes = self.capture.shapes
        if self._fk_cache is None or self._fk_cache[0] is not shapes:
            with self.guard.as_internal():
                self._fk_cache = (shapes, integrity.foreign_keys(self.raw, shapes))
        return self._fk_cache[1]

    def changes(self) -> ChangeSet:
        """The open step's changes (finishing it if needed)."""
        return self.finish_step()

    def commit_step(
        self,
        *,
        kind: str = "turn",
        request: str = "",
        turn: Any = None,
        reverts: Sequence[int] = (),
        undone: dict[int, bool] | None = None,
    ) -> Committed:
        """Commit the step exactly as sealed, recording a history point if it changed rows.

        Raises :class:`CommitRefused` (after rolling back) if anything changed since the
        changes were sealed, or if the COMMIT itself fails.
        """
        if self._tx is None:
            raise RuntimeError("no step is open")
        changes = self.finish_step()
        warnings: list[str] = []
        if self.session.in_transaction():
            # The host used the session while the step waited: reads only (writes are refused).
            warnings += _attempt("the session's own transaction could not be closed", self.session.rollback)
        if self.capture.fingerprint() != self._fingerprint:
            self.rollback_step()
            raise CommitRefused(
                "the changes were not saved: something changed the database after they were shown for approval",
                hint="nothing was committed; run the step again",
            )
        point = None
        try:
            if self.history is not None and (changes or kind != "turn"):
                point = self.history.record(changes, kind=kind, request=request, turn=turn, reverts=reverts)
                for flag in (False, True):  # in the same transaction as the rows they describe
                    self.history.set_undone([i for i, f in (undone or {}).items() if f is flag], flag)
            self._recheck_statements()
            if self.raw is not None:
                with self.guard.as_controlled():
                    self.raw.commit()  # the final COMMIT: nothing of anyone else's ran since the check
        except Exception as exc:
            self.rollback_step()
            raise CommitRefused(f"the changes were not saved: {type(exc).__name__}: {exc}", hint="nothing was committed") from exc
        self._tx = None
        # SQLAlchemy learns the transaction ended; its listeners run while writes are still refused.
        warnings += self._end_transaction(commit=True)
        self._end()
        return Committed(changes, point, warnings)

    def rollback_step(self) -> None:
        if self._tx is None:
            return
        finished = self._finished
        self.guard.sealed = True
        self._recheck_statements()
        self._tx = None
        self._end_transaction(commit=False)
        if finished is not None:
            forget_inserted_objects(self.session, finished)
        if self.history is not None:
            self.history.forget_cache()
        if self.guard.schema:
            self.capture.refresh_later()
        self._end()

    def _end(self) -> None:
        self.guard.end()
        self._finished = None
        self.capture.finish()

    # -- history -------------------------------------------------------------------------------------
    def points(self) -> list[HistoryPoint]:
        return self.history.points() if self.history is not None else []

    def close_turn(self) -> None:
        if self.history is not None:
            self.history.close_turn()

    def undo(self, point_id: int | None = None) -> Reverted:
        """Revert the last committed point not yet undone (or ``point_id``, if it is that one)."""
        history = self._require_history("undo")
        points = history.points()
        candidates = [p for p in points if p.kind in ("turn", "import", "restore") and not p.undone]
        if not candidates:
            raise UndoError("there is nothing to undo", hint="only committed turns, imports and restores can be undone")
        target = candidates[-1]
        if point_id is not None and point_id != target.id:
            raise UndoError(
                f"point {point_id} is not the last one that can be undone (that is point {target.id})",
                hint=f"undo point {target.id} first, or use restore({point_id - 1 if point_id > 1 else 0}) to go back further",
            )
        if not target.undoable:
            raise UndoError(f"point {target.id} cannot be undone: {target.note or 'it has no journal'}", hint="restore an earlier point is not possible past it either")
        request = f"undo: {target.request}" if target.request else f"undo point {target.id}"
        marks = {i: False for i in target.reverts} if target.kind == "restore" else {}  # undoing a restore brings those back
        marks[target.id] = True
        return self._revert([target.id], kind="undo", request=request, undone=marks)

    def restore(self, point_id: int) -> Reverted:
        """Bring the database back to how it was right after ``point_id`` (0: before the first point)."""
        history = self._require_history("restore")
        points = history.points()
        if point_id != 0 and not any(p.id == point_id for p in points):
            raise UndoError(f"there is no history point {point_id}", hint="state.history lists the points")
        later = [p for p in points if p.id > point_id]
        if not later:
            raise UndoError(f"the database is already at point {point_id}", hint="nothing to restore")
        blocked = [p for p in later if not p.undoable]
        if blocked:
            raise UndoError(
                f"point {blocked[-1].id} cannot be undone ({blocked[-1].note or 'it has no journal'}), so the database cannot go back past it",
                hint=f"restore a point at or after {blocked[-1].id}",
            )
        effective = [p.id for p in later if p.kind in ("turn", "import", "restore") and not p.undone]
        return self._revert(
            [p.id for p in later], kind="restore", request=f"restore to point {point_id}", marks=effective, undone={i: True for i in effective}
        )

    def _require_history(self, what: str) -> History:
        if self.history is None:
            why = "history is switched off for this agent" if self.raw is not None else "history needs a SQLite database"
            raise UndoError(f"cannot {what}: {why}", hint="nothing was changed")
        if self._tx is not None:
            raise UndoError(f"cannot {what} while a step is open or waiting for approval", hint="approve or decline the step first")
        return self.history

    def _revert(
        self, point_ids: list[int], *, kind: str, request: str, marks: Sequence[int] | None = None, undone: dict[int, bool] | None = None
    ) -> Reverted:
        assert self.raw is not None and self.history is not None
        shapes = self.history.shapes(point_ids)
        the_plan = undo.plan(self.history.journal(point_ids), shapes)
        self._settle_host()
        enforce = integrity.enforced(self.raw)
        with self.guard.as_internal():
            # No foreign-key actions during the revert: a cascade must not touch rows outside
            # the plan. References are checked afterwards instead.
            self.raw.execute("PRAGMA foreign_keys=OFF")
        try:
            self.begin_step()
            try:
                with self.guard.as_internal():
                    problems = undo.check_tables(self.raw, the_plan)
                    if problems:
                        raise UndoError(f"cannot {kind}: " + "; ".join(problems), hint="nothing was changed")
                    conflicts = undo.conflicts(self.raw, the_plan)
                    if conflicts:
                        raise UndoError(
                            f"cannot {kind}: these rows changed since then: " + "; ".join(conflicts),
                            hint="nothing was changed; change those rows back first, or ask the agent to fix them",
                        )
                    undo.apply(self.raw, the_plan)
                self.guard.sealed = True
                if self.capture.exactly(len(the_plan)):
                    # One row event per planned row and nothing else: the plan is what happened.
                    changes = build_changeset(
                        undo.as_changes(the_plan), self.capture.shapes, preview_limit=self.preview_limit, journal_limit=self.journal_limit
                    )
                    left = []
                else:  # the app's triggers did more: read what really happened
                    changes = self.capture.collect(schema=[], untracked=[], preview_limit=self.preview_limit, journal_limit=self.journal_limit)
                    with self.guard.as_internal():
                        # Every row must be back as it was (a trigger could have changed it again).
                        left = undo.reached(the_plan, changes.journal) if changes.journal is not None else undo.conflicts(self.raw, the_plan, expect_target=True)
                if left:
                    raise UndoError(f"cannot {kind}: the rows did not come back as they were: " + "; ".join(left[:5]), hint="nothing was changed")
                if enforce and changes.journal:
                    with self.guard.as_internal():
                        keys = self._foreign_keys()
                        broken = integrity.broken_references(self.raw, changes.journal, self.capture.shapes, keys)  # type: ignore[union-attr]
                    if broken:
                        raise UndoError(f"cannot {kind}: it would break references: " + "; ".join(broken), hint="nothing was changed")
                self._finished = changes
                self._fingerprint = self.capture.fingerprint()
            except BaseException:
                self.rollback_step()
                raise
            reverted = tuple(marks if marks is not None else point_ids)
            committed = self.commit_step(kind=kind, request=request, reverts=reverted, undone=undone)
        finally:
            if enforce:
                with self.guard.as_internal():
                    self.raw.execute("PRAGMA foreign_keys=ON")
            self._recheck_statements()
        self.session.expire_all()
        assert committed.point is not None
        return Reverted(committed.point, committed.changes, reverted)

    # -- import ---------------------------------------------------------------------------------------
    def stage_rows(self, rows: dict[str, tuple[list[str], list[Sequence[Any]]]]) -> ChangeSet:
        """Replace all rows of the given tables, as a step left open (sealed) for approval.

        ``rows`` is ``{table: (columns, [values...])}``. Unchanged rows do not show in the
        changes: a row deleted and inserted with the same values nets out.
        """
        if self.raw is None:
            raise PyAgentError("importing needs a SQLite database", hint="import into SQLite, or load the rows yourself")
        self.begin_step()
        try:
            with self.guard.as_internal():
                self.raw.execute("PRAGMA defer_foreign_keys=ON")  # rows arrive in any order
                self.guard.deferred = True
                # Every delete before any insert: a cascade from a later table must not
                # remove rows just inserted into an earlier one.
                for table in rows:
                    self.raw.execute(f"DELETE FROM main.{_quote(table)}")
                for table, (columns, values) in rows.items():
                    if values:
                        cols = ", ".join(_quote(c) for c in columns)
                        marks = ", ".join("?" * len(columns))
                        self.raw.executemany(f"INSERT INTO main.{_quote(table)} ({cols}) VALUES ({marks})", values)
            return self.finish_step()
        except BaseException:
            self.rollback_step()
            raise

    def close(self) -> None:
        self.rollback_step()
        self.session.close()
        if _BY_CONNECTION.get(id(self.connection)) is self:
            del _BY_CONNECTION[id(self.connection)]
        if self._owns_connection:
            self.connection.close()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _direct_savepoints(connection: Connection, raw: sqlite3.Connection) -> None:
    """Send the connection's SAVEPOINT, RELEASE and ROLLBACK TO straight to sqlite3.

    The session opens a savepoint in every step that uses it and releases it at the end.
    SQLAlchemy builds, compiles (never cached for these) and runs each through its whole
    statement machinery: that was half the database work of a read-only step. The same SQL
    is sent directly instead, on this one connection (the Database's own, which it closes);
    nothing is skipped that a check
    relies on: the authorizer sees every statement as before, the connection's savepoint
    events still fire, and SQLAlchemy keeps its own bookkeeping (it calls these methods).
    Only if this SQLAlchemy has the methods (they are internal, stable since 1.4).
    """
    if not all(hasattr(connection, n) for n in ("_savepoint_impl", "_release_savepoint_impl", "_rollback_to_savepoint_impl")):
        return
    numbers = itertools.count(1)

    def savepoint(name: str | None = None) -> str:
        connection.dispatch.savepoint(connection, name)
        if name is None:
            name = f"sa_savepoint_{next(numbers)}"
        raw.execute(f"SAVEPOINT {_quote(name)}")
        return name

    def rollback_to_savepoint(name: str) -> None:
        connection.dispatch.rollback_savepoint(connection, name, None)
        if not (connection.closed or connection.invalidated):  # as SQLAlchemy's own
            raw.execute(f"ROLLBACK TO SAVEPOINT {_quote(name)}")

    def release_savepoint(name: str) -> None:
        connection.dispatch.release_savepoint(connection, name, None)
        raw.execute(f"RELEASE SAVEPOINT {_quote(name)}")

    connection._savepoint_impl = savepoint  # type: ignore[method-assign]
    connection._rollback_to_savepoint_impl = rollback_to_savepoint  # type: ignore[method-assign]
    connection._release_savepoint_impl = release_savepoint  # type: ignore[method-assign]


def _attempt(what: str, action: Any) -> list[str]:
    """Run ``action``; a failure becomes a warning (the database state is settled regardless)."""
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - listeners may raise anything; the outcome is checked separately
        return [f"{what}: {type(exc).__name__}: {exc}"] if what else []
    return []


class _CountingCapture:
    """Change counting for databases other than SQLite: per-table counts from row counts.

    ORM and Core statements name their table; a textual statement that returns no rows
    but reports changed rows counts as a write to an unknown table. There is no row
    preview and no history (a PostgreSQL capture can plug in here: see ``capture.Capture``).
    """

    def __init__(self, connection: Connection) -> None:
        self.shapes: dict[str, Any] = {}
        self._counts: dict[str, dict[str, int]] = {}
        self._unknown = 0
        event.listen(connection, "after_cursor_execute", self._after)

    def _after(self, conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        rowcount = getattr(cursor, "rowcount", -1) or 0
        if rowcount <= 0 or context is None:
            return
        op = "inserted" if context.isinsert else "updated" if context.isupdate else "deleted" if context.isdelete else None
        table = getattr(getattr(getattr(context.compiled, "statement", None), "table", None), "name", None) if op else None
        if op and table:
            counts = self._counts.setdefault(table, {"inserted": 0, "updated": 0, "deleted": 0})
            counts[op] += rowcount
        elif cursor.description is None:
            self._unknown += rowcount

    def prepare(self) -> None:
        pass

    def start(self) -> None:
        self._counts, self._unknown = {}, 0

    def refresh(self) -> None:
        pass

    def refresh_later(self) -> None:
        pass

    def wrote(self) -> bool:
        return bool(self._counts or self._unknown)

    def collect(self, *, schema: list[str], untracked: list[str], preview_limit: int, journal_limit: int) -> ChangeSet:
        return ChangeSet(
            tables=dict(sorted(self._counts.items())),
            schema=list(schema),
            untracked=["a table named in a textual statement"] if self._unknown else [],
            journal=None,
            note="row-level history needs SQLite",
        )

    def fingerprint(self) -> tuple[int, ...]:
        return (sum(sum(c.values()) for c in self._counts.values()), self._unknown)

    def finish(self) -> None:
        pass

