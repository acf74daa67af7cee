"""The workspace: the one way the loop reaches the namespace, the database and the executor.

The loop asks a :class:`Workspace` to run a step's code, and then to commit or roll
back what it changed; the history (undo, restore) and imports go through it too. It
knows nothing of models, messages or events. :class:`LocalWorkspace` does all of this
in this process; a workspace that runs model code in a separate process implements
the same small interface.

A step, seen from here::

    run = await workspace.run(code, step=n)      # begins, runs, finishes (sealed) or rolls back
    if run.open:                                 # it ran and its changes wait for a decision
        committed = workspace.commit(request=..., turn=...)   # or workspace.rollback()
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import os
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, MetaData
from sqlalchemy.orm import Session

from .database.changes import ChangeSet
from .database.history import HistoryPoint
from .database.importing import (
    ImportRefused,
    ImportReport,
    check_import,
    open_file,
    read_rows,
)
from .database.step import Committed, Database, ForeignKeyViolation, Reverted
from .display import Displays, Shown
from .gates import step_time
from .sandbox.executor import DEFAULT_MAX_OUTPUT, Executor, Outcome
from .sandbox.limits import DEFAULT_MEMORY_MB, MemoryCap


@dataclass(frozen=True)
class StepRun:
    """What running a step's code did.

    ``open`` is True when the code ran without error and the step's transaction waits
    for ``commit`` or ``rollback`` (``changes`` is then sealed: exactly what a commit
    will save). Otherwise the step was already rolled back and ``changes`` is what it
    had done by then.
    """

    outcome: Outcome
    changes: ChangeSet
    open: bool
    displays: tuple[Shown, ...] = ()  # what show()/chart() showed, in order (display events)


class Workspace(Protocol):
    """What the loop needs from wherever model code runs."""

    @property
    def session(self) -> Session | None:
        """The live session (None when the code runs in another process)."""

    @property
    def pending(self) -> bool:
        """A step ran and waits for ``commit`` or ``rollback``."""

    def configure(
        self,
        *,
        names: Mapping[str, Any],
        timeout: float | None,
        max_output: int,
        memory_limit: float | None,
        on_output: Callable[[str], None] | None = None,
    ) -> None:
        """Set the names model code sees (builtins, classes, tools, helpers), the limits, and
        where printed output goes while a step runs."""

    def ensure_schema(self, metadata: MetaData) -> bool:
        """Create the mapped tables if the database is empty; True if it did."""

    async def run(self, code: str, *, step: int, tree: ast.Module | None = None) -> StepRun:
        """Run ``code`` as one step in its own transaction."""

    def commit(self, *, request: str = "", turn: Any = None) -> Committed:
        """Commit the open step exactly as sealed; a history point records it."""

    def rollback(self) -> None:
        """Roll the open step back."""

    def end_turn(self) -> None:
        """The turn is over: the next commit starts a new history point."""

    def history(self) -> list[HistoryPoint]: ...

    def undo(self, point: int | None = None) -> Reverted: ...

    def restore(self, point: int) -> Reverted: ...

    def check_import(self, data: bytes | str | os.PathLike[str], metadata: MetaData) -> ImportReport: ...

    def stage_import(self, data: bytes | str | os.PathLike[str], metadata: MetaData) -> tuple[ImportReport, ChangeSet]:
        """Replace the mapped tables' rows with the file's, as an open step (raises ImportRefused)."""

    def commit_import(self, *, request: str = "") -> Committed: ...

    def close(self) -> None: ...


class LocalWorkspace:
    """Model code, its namespace and its database, all in this process.

    The database layer is picked by dialect (PostgreSQL gets
    :class:`~py_agent.database.postgres.PostgresDatabase`, with its guards and capture;
    everything else :class:`~py_agent.database.step.Database`), or given ready-made as
    ``database`` (any object with that interface, e.g. a PostgresDatabase with options).
    """

    def __init__(
        self,
        bind: Engine | Connection | None = None,
        *,
        database: Any = None,
        namespace: MutableMapping[str, Any] | None = None,
        allow_schema_changes: bool = False,
        history: bool = True,
    ) -> None:
        if database is not None:
            self.db = database
        elif bind is None:
            raise TypeError("LocalWorkspace needs an engine or connection (bind), or a database layer (database=)")
        elif bind.dialect.name == "postgresql":
            from .database.postgres import PostgresDatabase  # needs psycopg: imported only for PostgreSQL

            self.db = PostgresDatabase(bind, allow_schema_changes=allow_schema_changes, history=history)
        else:
            self.db = Database(bind, allow_schema_changes=allow_schema_changes, history=history)
        self.namespace: MutableMapping[str, Any] = namespace if namespace is not None else {}
        self.timeout: float | None = 30.0
        self.memory_limit: float | None = DEFAULT_MEMORY_MB
        self.executor = Executor(self.namespace)
        self.displays = Displays()  # show() and chart(), and what they showed in the current step

    @property
    def session(self) -> Session:
        return self.db.session

    @property
    def pending(self) -> bool:
        return self.db.in_step

    def configure(
        self,
        *,
        names: Mapping[str, Any],
        timeout: float | None = 30.0,
        max_output: int = DEFAULT_MAX_OUTPUT,
        memory_limit: float | None = DEFAULT_MEMORY_MB,
        on_output: Callable[[str], None] | None = None,
    ) -> None:
        ns = self.namespace
        ns.update(names)
        ns.setdefault("__name__", "agent")
        ns["session"] = self.db.session
        for name, function in self.displays.functions().items():
            if name not in names:  # an app's own tool of the same name wins
                ns[name] = function
        self.timeout, self.memory_limit = timeout, memory_limit
        options: dict[str, Any] = {"max_output": max_output, "timeout": timeout}
        if on_output is not None and "on_output" in inspect.signature(Executor).parameters:
            options["on_output"] = on_output  # output as it is printed, where the executor offers it
        if "on_value" in inspect.signature(Executor).parameters:
            options["on_value"] = self.displays.show_last  # a last expression that is a query result: a table
        self.executor = Executor(ns, **options)

    def ensure_schema(self, metadata: MetaData) -> bool:
        """Create the mapped tables in an empty database; an existing one is never altered."""
        return self.db.create_tables(metadata)

    async def run(self, code: str, *, step: int, tree: ast.Module | None = None) -> StepRun:
        db = self.db
        db.begin_step()
        self.displays.begin_step()
        db.deadline = time.monotonic() + self.timeout if self.timeout else None
        cap = MemoryCap(self.memory_limit)
        failed: list[str] = []  # the saving error's message

        def finish() -> None:
            # The flush, the session's commit listeners and the fold of the captured rows run
            # inside the step's limits (they may run model code); a failure becomes the error.
            try:
                db.finish_step()
            except Exception as exc:  # noqa: BLE001 - reported as the step's error below
                failed.append(_saving_error(exc))  # str() here: its parameters may repr model objects

        try:
            with cap, step_time(self.timeout):  # model functions the code calls see the step's time
                outcome = await self.executor.run(code, filename=f"<step {step}>", tree=tree, finish=finish)
            if failed:
                outcome = dataclasses.replace(outcome, error=failed[0])
            elif outcome.error is None:
                return StepRun(outcome, db.finish_step(), True, self.displays.take())
            elif _last_line(outcome.error).startswith("MemoryError") and self.memory_limit:
                outcome = dataclasses.replace(outcome, error=f"{outcome.error.rstrip()}: {cap.message()}")
        except BaseException:
            db.deadline = None
            db.rollback_step()
            raise
        db.deadline = None
        changes = self._seen_so_far()
        db.rollback_step()
        return StepRun(outcome, changes, False, self.displays.take())

    def _seen_so_far(self) -> ChangeSet:
        """What a failed step had changed (for the person to see what was rolled back)."""
        db = self.db
        try:
            with db.guard.as_internal():
                return db.capture.collect(schema=db.guard.schema, untracked=db.guard.untracked, preview_limit=db.preview_limit, journal_limit=0)
        except Exception:  # noqa: BLE001 - only informative; the rollback follows regardless
            return ChangeSet()

    def commit(self, *, request: str = "", turn: Any = None) -> Committed:
        return self.db.commit_step(kind="turn", request=request, turn=turn)

    def rollback(self) -> None:
        self.db.rollback_step()

    def end_turn(self) -> None:
        self.db.close_turn()

    # -- history ----------------------------------------------------------------------------------
    def history(self) -> list[HistoryPoint]:
        return self.db.points()

    def undo(self, point: int | None = None) -> Reverted:
        return self.db.undo(point)

    def restore(self, point: int) -> Reverted:
        return self.db.restore(point)

    # -- import -------------------------------------------------------------------------------------
    def check_import(self, data: bytes | str | os.PathLike[str], metadata: MetaData) -> ImportReport:
        source = open_file(data)
        try:
            with self.db.guard.as_internal():
                return check_import(source, metadata, current=self.db.raw)
        finally:
            source.close()

    def stage_import(self, data: bytes | str | os.PathLike[str], metadata: MetaData) -> tuple[ImportReport, ChangeSet]:
        source = open_file(data)
        try:
            with self.db.guard.as_internal():
                report = check_import(source, metadata, current=self.db.raw)
            if not report.ok:
                raise ImportRefused("the file was not imported: " + "; ".join(report.problems), report)
            rows = read_rows(source, metadata)
        finally:
            source.close()
        try:
            changes = self.db.stage_rows(rows)
        except ForeignKeyViolation as exc:
            raise ImportRefused(f"the file was not imported: its rows break references.\n{exc}", report) from None
        return report, changes

    def commit_import(self, *, request: str = "") -> Committed:
        return self.db.commit_step(kind="import", request=request or "import a database file")

    def close(self) -> None:
        self.db.close()


def _saving_error(exc: Exception) -> str:
    if isinstance(exc, ForeignKeyViolation):
        return str(exc)
    return f"{type(exc).__name__} when saving: {_first_line(exc)}"  # constraint errors surface at flush


def _first_line(exc: BaseException) -> str:
    try:
        text = str(exc).strip()
    except Exception:  # noqa: BLE001 - a model object's __repr__ in the parameters failed
        return type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""
