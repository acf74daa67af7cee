"""The database side of a step on PostgreSQL: the same guarantees as on SQLite.

:class:`PostgresDatabase` has :class:`~py_agent.database.step.Database`'s interface (the
workspace cannot tell them apart). One connection for the agent's life, the model's
``session`` bound to it with ``join_transaction_mode="create_savepoint"``, each step one
transaction that only py-agent ends. What differs is how the guarantees are obtained:

**What a statement may do** is decided by PostgreSQL's own parser before it is sent
(``postgres_guard.py``): COMMIT/ROLLBACK, SET/RESET (roles, settings), DDL unless
allowed, COPY, DO, other databases, server files... are refused with a message the
model can act on.

**How each statement runs**: inside a savepoint of its own with ``SET LOCAL
statement_timeout`` (the rest of the step's time, a little less, so PostgreSQL stops a
runaway query, ``pg_sleep`` included, before the step's own timer fires) and, for a
statement the parser calls a read, ``SET LOCAL transaction_read_only = on``: whatever
a read calls (a function that writes, ``nextval``, large objects) is refused by the
server itself. Only statements that are writes by the parse tree can write. A failed
statement is rolled back alone (the step goes on, as on SQLite).

**After each statement** the libpq status (free: no round trip) must still show the
step's transaction open and the same session user; at the end of the step the role,
``search_path`` and the other settings a step could use to widen its rights are compared
with how py-agent set them. Anything off rolls the step back.

**What was written** is captured row by row by audit triggers into a temporary table of
the session, cross-checked with PostgreSQL's per-transaction row counters
(``postgres_capture.py``); the step is then sealed: writes are refused, deferred
constraints were checked (``SET CONSTRAINTS ALL IMMEDIATE``), and right before COMMIT the
counters must not have moved.

**History and undo** live in the schema ``py_agent`` (``postgres_history.py``).

What the database role needs, and the one-time set-up: ``postgres_setup.py``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from ..errors import ConfigurationError, PyAgentError
from . import postgres_history as ph
from .changes import PREVIEW_LIMIT, ChangeSet, forget_inserted_objects
from .history import JOURNAL_LIMIT, HistoryPoint
from .postgres_capture import PostgresCapture
from .postgres_guard import READ, SAVEPOINT, PostgresGuard, StatementRefused
from .postgres_setup import LeastPrivilegeError, RoleReport, check_role, install
from .step import CommitRefused, Committed, Reverted, UndoError, _attempt

_STATEMENT_SAVEPOINT = "py_agent_statement"
# Settings a step must leave as py-agent found them (what it could use to widen its rights
# or to slip past the capture); compared at the end of every step.
_IDENTITY = (
    "SELECT current_user::text, session_user::text, current_setting('search_path'), current_setting('role'), "
    "current_setting('session_replication_role'), current_setting('default_transaction_read_only'), "
    "current_setting('row_security'), pg_backend_pid()"
)
_IDLE, _ACTIVE, _INTRANS, _INERROR = 0, 1, 2, 3  # psycopg.pq.TransactionStatus


class PostgresDatabase:
    """The agent's PostgreSQL connection, session, step transactions, capture and history."""

    def __init__(
        self,
        bind: Engine | Connection,
        *,
        allow_schema_changes: bool = False,
        history: bool = True,
        preview_limit: int = PREVIEW_LIMIT,
        journal_limit: int = JOURNAL_LIMIT,
        conversation: str | None = None,
        strict: bool = False,
    ) -> None:
        self.connection = bind.connect() if isinstance(bind, Engine) else bind
        self._owns_connection = isinstance(bind, Engine)
        self.engine = self.connection.engine
        self.session = Session(bind=self.connection, join_transaction_mode="create_savepoint")
        self.deadline: float | None = None
        self.preview_limit = preview_limit
        self.journal_limit = journal_limit
        self._conversation = conversation
        self.guard = PostgresGuard(allow_schema_changes=allow_schema_changes)
        self.raw = None  # no SQLite connection (imports check it)
        self.notices: list[str] = []  # said once, at start (the role has more rights than needed...)
        self._tx: Any = None
        self._finished: ChangeSet | None = None
        self._fingerprint: tuple[int, ...] = ()
        self._wrapped = False  # the statement running now is in its own savepoint
        self._broken = ""  # why the open step must be rolled back
        self.history: ph.PostgresHistory | None = None
        if self.connection.in_transaction():
            self.connection.commit()
        self.pg = self._driver()
        self.capture = PostgresCapture(self.pg, self.guard)
        self.role: RoleReport = check_role(self.pg)
        self.pg.rollback()
        if strict and (self.role.problems or self.role.missing):
            raise LeastPrivilegeError(
                self.role.message(),
                hint="connect as a least-privilege role (see py_agent.database.postgres_setup), or pass strict=False",
            )
        if self.role.missing:
            raise ConfigurationError(self.role.message(), hint="see py_agent.database.postgres_setup for what the role needs")
        self._statement_timeout_ms = self._read_timeout()
        self._install_capture_if_needed()
        self._identity = self._read_identity()
        event.listen(self.connection, "before_cursor_execute", self._before, retval=True)
        event.listen(self.connection, "after_cursor_execute", self._after)
        event.listen(self.engine, "handle_error", self._on_error)  # (SQLAlchemy allows it only engine-wide)
        self.set_policy(allow_schema_changes=allow_schema_changes, history=history)

    # -- setup -------------------------------------------------------------------------------------
    def _driver(self) -> Any:
        pg = self.connection.connection.driver_connection
        if pg is None or not hasattr(pg, "pgconn"):
            raise ConfigurationError(
                "py-agent needs the psycopg (version 3) driver for PostgreSQL",
                hint='use a postgresql+psycopg:// URL (pip install "psycopg[binary]")',
            )
        return pg

    def _read_timeout(self) -> int:
        with self.guard.as_internal():
            value = self.pg.execute("SELECT setting::int FROM pg_settings WHERE name = 'statement_timeout'").fetchone()[0]
            self.pg.rollback()
        return int(value)

    def _read_identity(self) -> tuple[Any, ...]:
        with self.guard.as_internal():
            identity = tuple(self.pg.execute(_IDENTITY).fetchone())
            if self._tx is None:
                self.pg.rollback()
        return identity

    def _install_capture_if_needed(self) -> None:
        """Install the capture when tables lack it and this role may (it owns them); else say how."""
        self.capture.prepare()
        if not self.capture.missing:
            return
        try:
            install(self.pg)
        except Exception as exc:  # noqa: BLE001 - reported with the way out below
            self.pg.rollback()
            if not self.capture.installed:
                raise ConfigurationError(
                    f"py-agent's change capture is not installed in this database (tables: {', '.join(self.capture.missing[:6])}), "
                    f"and this role cannot install it ({type(exc).__name__}: {str(exc).strip().splitlines()[0]})",
                    hint="run once, as the tables' owner: python -m py_agent.database.postgres_setup --url ADMIN_URL --role ROLE",
                ) from None
            self.notices.append(f"tables without py-agent's change capture (writes to them are shown only as counts): {', '.join(self.capture.missing)}")
        else:
            self.notices.append("py-agent installed its change capture (schema py_agent, triggers py_agent_capture) as this role owns the tables")
            if self.role.problems:
                warnings.warn(f"py-agent: {self.role.message()}", stacklevel=3)
        self.capture.refresh()
        self.capture.prepare()

    def set_policy(self, *, allow_schema_changes: bool, history: bool) -> None:
        """Whether steps may change the schema, and whether commits keep history."""
        self.guard.allow_schema_changes = allow_schema_changes
        if history and self.history is None:
            self.history = ph.PostgresHistory(self.pg, self.guard, journal_limit=self.journal_limit, conversation=self._conversation)
        elif not history:
            self.history = None

    @property
    def conversation(self) -> str | None:
        """Whose history points these are, on a database shared by many conversations (None: everyone's)."""
        return self._conversation

    @conversation.setter
    def conversation(self, value: str | None) -> None:
        self._conversation = value
        if self.history is not None:
            self.history.conversation = value

    @property
    def is_sqlite(self) -> bool:
        return False

    # -- every statement ------------------------------------------------------------------------------
    def _checking(self) -> bool:
        return not self.guard.internal and (self.guard.in_step or self.guard.sealed)

    def _before(self, conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> tuple[str, Any]:
        self._wrapped = False
        if not self._checking():
            return statement, parameters
        try:
            verdict = self.guard.check(statement)
        except StatementRefused as refused:
            raise sa_exc.DatabaseError(statement, parameters, refused) from None
        if verdict.kind == SAVEPOINT:
            return statement, parameters
        setup = f"SAVEPOINT {_STATEMENT_SAVEPOINT}"
        timeout = self._timeout_ms()
        if timeout is not None:
            setup += f"; SET LOCAL statement_timeout = {timeout}"
        if verdict.kind == READ:
            setup += "; SET LOCAL transaction_read_only = on"
        with self.guard.as_internal():
            self.pg.execute(setup)
        self._wrapped = True
        return statement, parameters

    def _timeout_ms(self) -> int | None:
        """The statement timeout for now: what is left of the step, a little less (None: no limit)."""
        if self.deadline is None:
            return self._statement_timeout_ms or None
        left = self.deadline - time.monotonic()
        # PostgreSQL must stop the query before the step's timer interrupts the driver's wait.
        left -= min(0.25, 0.1 * max(left, 0))
        ms = max(1, int(left * 1000))
        if left <= 0:
            ms = 1
        return min(ms, self._statement_timeout_ms) if self._statement_timeout_ms else ms

    def _after(self, conn: Connection, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if self._wrapped:
            self._wrapped = False
            with self.guard.as_internal():
                self.pg.execute(f"RELEASE SAVEPOINT {_STATEMENT_SAVEPOINT}")
        if self._checking():
            self._check_session(statement)

    def _check_session(self, statement: str) -> None:
        """What libpq already knows after every statement: the step's transaction and user are intact."""
        info = self.pg.info
        problem = ""
        if info.transaction_status not in (_INTRANS, _INERROR):
            problem = "the step's transaction ended outside py-agent"
        elif info.parameter_status("session_authorization") != self._identity[1]:
            problem = "the session's user changed"
        elif info.parameter_status("is_superuser") not in (None, b"off", "off") and not self.role.problems:
            problem = "the session became a superuser"
        if problem and not self._broken:
            self._broken = problem
            raise sa_exc.DatabaseError(statement, None, StatementRefused(f"not authorized: {problem}; the step will be rolled back"))

    def _on_error(self, context: Any) -> BaseException | None:
        if context.connection is not self.connection or not self._wrapped:
            return None
        self._wrapped = False
        # The failed statement alone is undone; the step's transaction stays usable.
        try:
            with self.guard.as_internal():
                self.pg.execute(f"ROLLBACK TO SAVEPOINT {_STATEMENT_SAVEPOINT}; RELEASE SAVEPOINT {_STATEMENT_SAVEPOINT}")
        except Exception:  # noqa: BLE001 - the connection itself failed; the step's rollback deals with it
            pass
        original = context.original_exception
        sqlstate = getattr(original, "sqlstate", None)
        if sqlstate == "57014" and self.deadline is not None:  # query_canceled by statement_timeout
            reason = StatementRefused("the statement ran until the step's time limit and was stopped; query less at a time")
            return sa_exc.OperationalError(context.statement, context.parameters, reason)
        if sqlstate == "25006":  # read_only_sql_transaction
            reason = StatementRefused(
                f"{str(original).strip()}: this statement is a read (SELECT), and reads cannot change anything; "
                "write with INSERT, UPDATE or DELETE (or the ORM) instead"
            )
            return sa_exc.DatabaseError(context.statement, context.parameters, reason)
        return None

    # -- the step ---------------------------------------------------------------------------------------
    @property
    def in_step(self) -> bool:
        return self._tx is not None

    @property
    def sealed(self) -> bool:
        return self._finished is not None

    def begin_step(self) -> None:
        if self._tx is not None:
            raise RuntimeError("a step is already open")
        self._repair_connection()
        self._settle_host()
        self.capture.prepare()
        self.guard.begin()
        self._finished, self._broken = None, ""
        with self.guard.as_controlled():
            self._tx = self.connection.begin()
        self.capture.start()

    def _settle_host(self) -> None:
        """Commit what the host did with the session or connection between steps."""
        if self.session.in_transaction():
            self.session.flush()
        if self.connection.in_transaction() or self.pg.info.transaction_status != _IDLE:
            self._end_transaction(commit=True)

    def _end_transaction(self, *, commit: bool) -> list[str]:
        """End the transaction at the driver, then let SQLAlchemy catch up, with writes refused."""
        warnings_: list[str] = []
        previous, self.guard.sealed = self.guard.sealed, True
        try:
            with self.guard.as_controlled():
                if not commit and self.session.in_transaction():
                    _attempt("", self.session.rollback)
                if self.pg.info.transaction_status != _IDLE:
                    with self.guard.as_internal():
                        (self.pg.commit if commit else self.pg.rollback)()
                if commit and self.session.in_transaction():
                    warnings_ += _attempt("code that ran as the session ended", self.session.commit)
                if self.connection.in_transaction():
                    warnings_ += _attempt("code that ran as the transaction ended", self.connection.commit if commit else self.connection.rollback)
                if self.connection.get_transaction() is not None:
                    # A listener failed the commit: SQLAlchemy keeps the transaction until a rollback.
                    _attempt("", self.connection.rollback)
                if not commit and self.session.in_transaction():
                    # The session's own rollback failed (a time limit hit it half way): start afresh.
                    _attempt("", self.session.close)
                if self.pg.info.transaction_status != _IDLE:
                    with self.guard.as_internal():
                        self.pg.rollback()  # a listener began one; writes were refused in it
        finally:
            self.guard.sealed = previous
        return warnings_

    def _broken_connection(self) -> bool:
        """Whether the driver's connection is unusable (a wait for the server was interrupted)."""
        return bool(self.pg.closed or self.connection.invalidated or self.pg.info.transaction_status not in (_IDLE, _INTRANS, _INERROR))

    def _repair_connection(self) -> None:
        """Replace an unusable connection: the server rolled its transaction back when it broke."""
        if not self._broken_connection():
            return
        _attempt("", self.session.close)  # its transaction went with the connection; objects are detached
        if not self.connection.invalidated:
            self.connection.invalidate()
        _attempt("", self.connection.rollback)
        self.pg = self._driver()
        self.capture.pg = self.pg
        self.capture.refresh()
        if self.history is not None:
            self.history.pg = self.pg
        self._identity = self._read_identity()

    def create_tables(self, metadata: Any) -> bool:
        """Create ``metadata``'s tables if the database has none at all (then capture them too)."""
        if self._tx is not None:
            return False
        self._settle_host()
        names = sa_inspect(self.connection).get_table_names()
        if not names:
            metadata.create_all(self.connection)
        self._end_transaction(commit=True)
        if not names:
            self._install_capture_if_needed()
        return not names

    def flush(self) -> None:
        self.session.flush()

    def finish_step(self) -> ChangeSet:
        """End the model's part of the step: flush, check, seal, and return what it changed."""
        if self._finished is not None:
            return self._finished
        if self._tx is None:
            raise RuntimeError("no step is open")
        for _ in range(3):
            self.session.commit()
            if not self.session.in_transaction():
                break
        else:
            raise RuntimeError("code registered to run when the session commits keeps writing; the step was rolled back")
        self._require_intact()
        with self.guard.as_internal():
            # Deferred constraints and constraint triggers run now, inside the step and captured.
            self.pg.execute("SET CONSTRAINTS ALL IMMEDIATE")
        identity = self._read_identity()
        if identity != self._identity:
            changed = [what for what, a, b in zip(("user", "session user", "search_path", "role", "session_replication_role",
                                                   "default_transaction_read_only", "row_security", "connection"), identity, self._identity) if a != b]
            raise PyAgentError(f"the step changed the session's {', '.join(changed)}; it was rolled back", hint="do not change the session's settings")
        self.guard.sealed = True
        changes = self.capture.collect(
            schema=self.guard.schema, untracked=self.guard.untracked, preview_limit=self.preview_limit, journal_limit=self.journal_limit
        )
        self._finished = changes
        self._fingerprint = self.capture.last_counters  # as read by collect(): nothing wrote since
        return changes

    def _require_intact(self) -> None:
        # (A step that sent no SQL has no transaction at the server yet: that is fine. One that
        # did is checked after every statement, see _check_session.)
        if self._broken:
            raise PyAgentError(f"{self._broken}; the step was rolled back", hint="nothing was committed")

    def changes(self) -> ChangeSet:
        return self.finish_step()

    def commit_step(self, *, kind: str = "turn", request: str = "", turn: Any = None, reverts: Sequence[int] = ()) -> Committed:
        """Commit the step exactly as sealed, recording a history point if it changed rows."""
        if self._tx is None:
            raise RuntimeError("no step is open")
        changes = self.finish_step()
        warnings_: list[str] = []
        if self.session.in_transaction():
            warnings_ += _attempt("the session's own transaction could not be closed", self.session.rollback)
        try:
            self._require_intact()
            moved = self.capture.fingerprint() != self._fingerprint
        except Exception as exc:  # noqa: BLE001 - the transaction is not as it was sealed
            self.rollback_step()
            raise CommitRefused(f"the changes were not saved: {exc}", hint="nothing was committed; run the step again") from None
        if moved:
            self.rollback_step()
            raise CommitRefused(
                "the changes were not saved: something changed the database after they were shown for approval",
                hint="nothing was committed; run the step again",
            )
        point = None
        try:
            with self.guard.as_internal():
                # The last statement's time limit must not cut py-agent's own writes short.
                self.pg.execute("SET LOCAL statement_timeout TO DEFAULT")
            if self.history is not None and (changes or kind != "turn") and self.history.exists():
                point = self.history.record(changes, kind=kind, request=request, turn=turn, reverts=reverts)
            with self.guard.as_controlled(), self.guard.as_internal():
                self.pg.commit()  # the final COMMIT: nothing but py-agent's own statements ran since the check
        except Exception as exc:
            self.rollback_step()
            raise CommitRefused(f"the changes were not saved: {type(exc).__name__}: {exc}", hint="nothing was committed") from exc
        self._tx = None
        warnings_ += self._end_transaction(commit=True)
        self._end()
        return Committed(changes, point, warnings_)

    def rollback_step(self) -> None:
        if self._tx is None:
            return
        finished = self._finished
        self.guard.sealed = True
        self._tx = None
        if self._broken_connection():
            self.guard.sealed = False
            self._repair_connection()
        else:
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
        self._broken = ""
        self.capture.finish()

    # -- history ------------------------------------------------------------------------------------------
    def points(self) -> list[HistoryPoint]:
        return self.history.points() if self.history is not None else []

    def close_turn(self) -> None:
        if self.history is not None:
            self.history.close_turn()

    def undo(self, point_id: int | None = None) -> Reverted:
        history = self._require_history("undo")
        candidates = [p for p in history.points() if p.kind in ("turn", "import", "restore") and not p.undone]
        if not candidates:
            raise UndoError("there is nothing to undo", hint="only committed turns, imports and restores can be undone")
        target = candidates[-1]
        if point_id is not None and point_id != target.id:
            raise UndoError(
                f"point {point_id} is not the last one that can be undone (that is point {target.id})",
                hint=f"undo point {target.id} first, or use restore({point_id - 1 if point_id > 1 else 0}) to go back further",
            )
        if not target.undoable:
            raise UndoError(f"point {target.id} cannot be undone: {target.note or 'it has no journal'}", hint="nothing was changed")
        request = f"undo: {target.request}" if target.request else f"undo point {target.id}"
        marks = list(target.reverts) if target.kind == "restore" else None
        result = self._revert([target.id], kind="undo", request=request)
        if marks:
            history.set_undone(marks, False)
        history.set_undone([target.id], True)
        self._commit_marks()
        return result

    def restore(self, point_id: int) -> Reverted:
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
        result = self._revert([p.id for p in later], kind="restore", request=f"restore to point {point_id}", marks=effective)
        history.set_undone(effective, True)
        self._commit_marks()
        return result

    def _commit_marks(self) -> None:
        with self.guard.as_internal():
            self.pg.commit()

    def _require_history(self, what: str) -> ph.PostgresHistory:
        if self.history is None or not self.history.exists():
            why = "history is switched off for this agent" if self.history is None else "py-agent's history tables are missing (run postgres_setup)"
            raise UndoError(f"cannot {what}: {why}", hint="nothing was changed")
        if self._tx is not None:
            raise UndoError(f"cannot {what} while a step is open or waiting for approval", hint="approve or decline the step first")
        return self.history

    def _revert(self, point_ids: list[int], *, kind: str, request: str, marks: Sequence[int] | None = None) -> Reverted:
        assert self.history is not None
        shapes = self.history.shapes(point_ids)
        the_plan = ph.plan(self.history.journal(point_ids), shapes)
        self.begin_step()
        try:
            with self.guard.as_internal():
                problems = ph.check_tables(self.pg, the_plan)
                if problems:
                    raise UndoError(f"cannot {kind}: " + "; ".join(problems), hint="nothing was changed")
                found = ph.conflicts(self.pg, the_plan)
                if found:
                    raise UndoError(
                        f"cannot {kind}: these rows changed since then: " + "; ".join(found),
                        hint="nothing was changed; change those rows back first, or ask the agent to fix them",
                    )
                try:
                    ph.apply(self.pg, the_plan)
                except Exception as exc:  # noqa: BLE001 - a constraint of the table, say
                    raise UndoError(f"cannot {kind}: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}", hint="nothing was changed") from None
                left = ph.conflicts(self.pg, the_plan, expect_target=True)
                if left:
                    raise UndoError(f"cannot {kind}: the rows did not come back as they were: " + "; ".join(left), hint="nothing was changed")
            self.guard.sealed = True
            changes = self.capture.collect(schema=[], untracked=[], preview_limit=self.preview_limit, journal_limit=self.journal_limit)
            outside = ph.outside_plan(changes, the_plan)
            if outside or changes.untracked:
                raise UndoError(
                    f"cannot {kind}: it would change rows outside what it reverts: " + "; ".join(outside or changes.untracked),
                    hint="nothing was changed",
                )
            self._finished = changes
            self._fingerprint = self.capture.fingerprint()
        except BaseException:
            self.rollback_step()
            raise
        reverted = tuple(marks if marks is not None else point_ids)
        committed = self.commit_step(kind=kind, request=request, reverts=reverted)
        self.session.expire_all()
        assert committed.point is not None
        return Reverted(committed.point, committed.changes, reverted)

    # -- import ---------------------------------------------------------------------------------------------
    def stage_rows(self, rows: dict[str, Any]) -> ChangeSet:
        raise PyAgentError(
            "importing a database file needs a SQLite database",
            hint="load the rows into PostgreSQL with your own tools (pg_restore, COPY), or ask the agent to insert them",
        )

    def close(self) -> None:
        self.rollback_step()
        self.session.close()
        for target, name, fn in (
            (self.connection, "before_cursor_execute", self._before),
            (self.connection, "after_cursor_execute", self._after),
            (self.engine, "handle_error", self._on_error),
        ):
            if event.contains(target, name, fn):
                event.remove(target, name, fn)
        try:
            if not self.pg.closed and self.pg.info.transaction_status == _IDLE:
                with self.guard.as_internal():
                    # The connection may go back to the engine's pool: leave nothing of py-agent on it.
                    self.pg.execute("DROP TABLE IF EXISTS pg_temp.py_agent_capture")
                    self.pg.commit()
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        if self._owns_connection:
            self.connection.close()


def local_workspace(bind: Engine | Connection, **options: Any) -> Any:
    """A :class:`~py_agent.workspace.LocalWorkspace` whose database is a :class:`PostgresDatabase`.

    ``options``: ``namespace`` for the workspace; ``allow_schema_changes``, ``history``,
    ``conversation``, ``strict`` for the database.
    """
    from ..workspace import LocalWorkspace

    namespace = options.pop("namespace", None)
    return LocalWorkspace(database=PostgresDatabase(bind, **options), namespace=namespace)
