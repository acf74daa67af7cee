"""What SQL a step may run on PostgreSQL, decided by PostgreSQL's own parser.

SQLite asks py-agent about every action a statement takes (the authorizer); PostgreSQL
does not. So every statement the step's connection is about to send is parsed with
libpg_query, the parser of the PostgreSQL server itself (the ``pglast`` wheel), and
classified by the parse tree, never by its text:

- **read** (SELECT/VALUES/TABLE without locking clauses or data-modifying WITH, SHOW,
  EXPLAIN without ANALYZE): runs in a read-only subtransaction, so whatever it calls
  (a function that writes, ``nextval``, large objects) is refused by the server itself;
- **write** (INSERT, UPDATE, DELETE, MERGE, SELECT ... FOR UPDATE, a data-modifying WITH,
  EXPLAIN ANALYZE of those): runs read-write; the audit triggers capture every row;
- **savepoint** (SAVEPOINT, RELEASE, ROLLBACK TO): runs as is; it cannot end the step;
- **schema** (CREATE/ALTER/DROP/COMMENT of tables, views, indexes, ...): refused unless
  the policy allows schema changes; then listed like a write;
- everything else is **refused**: COMMIT/ROLLBACK/BEGIN/PREPARE TRANSACTION, SET/RESET
  (``SET ROLE``, ``SET session_authorization``, ``RESET ALL``...), GRANT and roles, COPY,
  DO, CALL, LOAD, CREATE EXTENSION/SERVER/USER MAPPING, LISTEN/NOTIFY, LOCK, cursors,
  PREPARE/EXECUTE, DISCARD, VACUUM ...

Whatever the statement kind, it is refused if it names py-agent's own relations
(schema ``py_agent``, tables ``py_agent_*``) or calls a function that changes settings,
signals other sessions, reads server files or reaches other databases
(:data:`BLOCKED_FUNCTIONS`). That list is a convenience with clear messages: the
database role's own rights (see ``postgres_setup``), the read-only subtransactions and
the checks after each statement (``postgres.py``) hold without it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

OWN_SCHEMA = "py_agent"
OWN_PREFIX = "py_agent_"

READ, WRITE, SAVEPOINT, SCHEMA, REFUSED = "read", "write", "savepoint", "schema", "refused"

# Functions model code may not call in any statement (matched on the last part of the name).
BLOCKED_FUNCTIONS: dict[str, str] = {}
for _names, _why in (
    ("set_config", "changes the session's settings"),
    ("pg_terminate_backend pg_cancel_backend pg_reload_conf pg_rotate_logfile pg_rotate_logfile_old "
     "pg_promote pg_switch_wal pg_create_restore_point pg_log_backend_memory_contexts "
     "pg_logical_emit_message pg_replication_origin_create pg_drop_replication_slot "
     "pg_create_physical_replication_slot pg_create_logical_replication_slot pg_import_system_collations",
     "acts on the server or on other sessions"),
    ("pg_read_file pg_read_binary_file pg_ls_dir pg_stat_file pg_ls_logdir pg_ls_waldir pg_ls_tmpdir "
     "pg_ls_archive_statusdir pg_ls_logicalsnapdir pg_ls_logicalmapdir pg_ls_replslotdir pg_file_write "
     "pg_file_rename pg_file_unlink pg_logdir_ls pg_file_sync",
     "reads or writes the server's files"),
    ("lo_import lo_export lo_create lo_creat lo_unlink lo_open lo_close lo_put lo_get lo_from_bytea "
     "lo_truncate lo_truncate64 lo_lseek lo_lseek64 lo_tell lo_tell64 loread lowrite",
     "uses large objects, which live outside the tables (and outside the change capture)"),
    ("dblink dblink_exec dblink_connect dblink_connect_u dblink_open dblink_fetch dblink_send_query "
     "dblink_get_result dblink_disconnect postgres_fdw_disconnect postgres_fdw_disconnect_all",
     "reaches another database"),
    ("pg_advisory_lock pg_advisory_lock_shared pg_try_advisory_lock pg_try_advisory_lock_shared "
     "pg_advisory_unlock pg_advisory_unlock_shared pg_advisory_unlock_all",
     "takes a session lock that outlives the step (pg_advisory_xact_lock is fine)"),
    ("pg_notify", "sends notifications to other sessions"),
    ("setval", "moves a sequence, which no rollback undoes"),
    ("query_to_xml query_to_xmlschema query_to_xml_and_xmlschema cursor_to_xml cursor_to_xmlschema ts_stat",
     "runs SQL given as a string, which py-agent cannot check"),
    ("pg_stat_get_activity pg_stat_get_backend_activity", "shows other sessions' queries"),
):
    for _name in _names.split():
        BLOCKED_FUNCTIONS[_name] = _why

# Relations model code may not read (other conversations' queries are in them).
BLOCKED_RELATIONS = frozenset({"pg_stat_activity"})

# Statement kinds that change the schema (refused by default, listed when allowed).
SCHEMA_STATEMENTS: dict[str, str] = {
    "CreateStmt": "CREATE TABLE",
    "CreateTableAsStmt": "CREATE TABLE AS",
    "ViewStmt": "CREATE VIEW",
    "IndexStmt": "CREATE INDEX",
    "AlterTableStmt": "ALTER TABLE",
    "RenameStmt": "ALTER ... RENAME",
    "DropStmt": "DROP",
    "CommentStmt": "COMMENT ON",
    "CreateSeqStmt": "CREATE SEQUENCE",
    "AlterSeqStmt": "ALTER SEQUENCE",
    "CreateEnumStmt": "CREATE TYPE",
    "AlterEnumStmt": "ALTER TYPE",
    "CompositeTypeStmt": "CREATE TYPE",
    "CreateDomainStmt": "CREATE DOMAIN",
    "RefreshMatViewStmt": "REFRESH MATERIALIZED VIEW",
}

_TRANSACTION_WORDS = {
    "TRANS_STMT_BEGIN": "BEGIN",
    "TRANS_STMT_START": "START TRANSACTION",
    "TRANS_STMT_COMMIT": "COMMIT",
    "TRANS_STMT_ROLLBACK": "ROLLBACK",
    "TRANS_STMT_PREPARE": "PREPARE TRANSACTION",
    "TRANS_STMT_COMMIT_PREPARED": "COMMIT PREPARED",
    "TRANS_STMT_ROLLBACK_PREPARED": "ROLLBACK PREPARED",
}
_SAVEPOINT_KINDS = frozenset({"TRANS_STMT_SAVEPOINT", "TRANS_STMT_RELEASE", "TRANS_STMT_ROLLBACK_TO"})

_WORDS = {
    "VariableSetStmt": "SET/RESET",
    "CopyStmt": "COPY",
    "DoStmt": "DO",
    "CallStmt": "CALL",
    "LoadStmt": "LOAD",
    "CreateExtensionStmt": "CREATE EXTENSION",
    "CreateFdwStmt": "CREATE FOREIGN DATA WRAPPER",
    "CreateForeignServerStmt": "CREATE SERVER",
    "CreateUserMappingStmt": "CREATE USER MAPPING",
    "ImportForeignSchemaStmt": "IMPORT FOREIGN SCHEMA",
    "CreateForeignTableStmt": "CREATE FOREIGN TABLE",
    "GrantStmt": "GRANT/REVOKE",
    "GrantRoleStmt": "GRANT/REVOKE role",
    "CreateRoleStmt": "CREATE ROLE",
    "AlterRoleStmt": "ALTER ROLE",
    "AlterRoleSetStmt": "ALTER ROLE ... SET",
    "DropRoleStmt": "DROP ROLE",
    "AlterDatabaseSetStmt": "ALTER DATABASE ... SET",
    "AlterSystemStmt": "ALTER SYSTEM",
    "CreatedbStmt": "CREATE DATABASE",
    "DropdbStmt": "DROP DATABASE",
    "ListenStmt": "LISTEN",
    "UnlistenStmt": "UNLISTEN",
    "NotifyStmt": "NOTIFY",
    "LockStmt": "LOCK",
    "DeclareCursorStmt": "DECLARE CURSOR",
    "FetchStmt": "FETCH/MOVE",
    "ClosePortalStmt": "CLOSE",
    "PrepareStmt": "PREPARE",
    "ExecuteStmt": "EXECUTE",
    "DeallocateStmt": "DEALLOCATE",
    "DiscardStmt": "DISCARD",
    "VacuumStmt": "VACUUM/ANALYZE",
    "ClusterStmt": "CLUSTER",
    "ReindexStmt": "REINDEX",
    "CheckPointStmt": "CHECKPOINT",
    "TruncateStmt": "TRUNCATE",
    "ConstraintsSetStmt": "SET CONSTRAINTS",
    "CreateFunctionStmt": "CREATE FUNCTION",
    "CreateTrigStmt": "CREATE TRIGGER",
    "CreateSchemaStmt": "CREATE SCHEMA",
    "ReassignOwnedStmt": "REASSIGN OWNED",
    "DropOwnedStmt": "DROP OWNED",
    "AlterOwnerStmt": "ALTER ... OWNER",
    "CreatePublicationStmt": "CREATE PUBLICATION",
    "CreateSubscriptionStmt": "CREATE SUBSCRIPTION",
    "SecLabelStmt": "SECURITY LABEL",
    "AlterDefaultPrivilegesStmt": "ALTER DEFAULT PRIVILEGES",
    "CreatePolicyStmt": "CREATE POLICY",
    "CreateEventTrigStmt": "CREATE EVENT TRIGGER",
    "RuleStmt": "CREATE RULE",
}
_WHY = {
    "VariableSetStmt": "it changes the session's settings or role (py-agent sets what a step needs)",
    "TruncateStmt": "TRUNCATE removes rows without row-by-row capture; use DELETE FROM ... instead",
    "CopyStmt": "COPY reads or writes files and programs on the server; query with SELECT instead",
    "LockStmt": "a table lock would block other people's work while the step waits for approval",
}
_DATA_MODIFYING = ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt")
_PLACEHOLDER = re.compile(r"%%|%\(\w+\)s|%s")


@dataclass(frozen=True)
class Verdict:
    """What a statement is: ``kind`` (read/write/savepoint/schema/refused), and why when refused."""

    kind: str
    reason: str = ""
    schema: tuple[str, ...] = ()  # schema changes it makes ("CREATE TABLE notes")


class StatementRefused(Exception):
    """Model code sent a statement py-agent does not run in a step; the message says why."""


def _postgres_text(statement: str) -> str:
    """The statement with the driver's placeholders (``%(name)s``, ``%s``) as ``$n``."""
    counter = iter(range(1, 1_000_000))

    def swap(match: re.Match[str]) -> str:
        return "%" if match.group(0) == "%%" else f"${next(counter)}"

    return _PLACEHOLDER.sub(swap, statement)


@functools.lru_cache(maxsize=2048)
def classify(statement: str, *, allow_schema_changes: bool = False) -> Verdict:
    """Classify one string of SQL (possibly several statements) as the server would parse it."""
    from pglast.parser import ParseError, parse_sql_json

    try:
        tree = json.loads(parse_sql_json(_postgres_text(statement)))
    except ParseError as exc:
        return Verdict(REFUSED, f"PostgreSQL cannot parse this statement ({exc}); fix the SQL")
    kinds: list[Verdict] = []
    for raw in tree.get("stmts", []):
        node = raw.get("stmt") or {}
        verdict = _statement(node, allow_schema_changes)
        if verdict.kind == REFUSED:
            return verdict
        problem = _names_problem(node)
        if problem:
            return Verdict(REFUSED, problem)
        kinds.append(verdict)
    if not kinds:
        return Verdict(READ)
    if len(kinds) > 1 and any(v.kind == SAVEPOINT for v in kinds):
        return Verdict(REFUSED, "send SAVEPOINT, RELEASE and ROLLBACK TO as statements of their own")
    schema = tuple(s for v in kinds for s in v.schema)
    for kind in (SCHEMA, WRITE, SAVEPOINT):
        if any(v.kind == kind for v in kinds):
            return Verdict(kind, schema=schema)
    return Verdict(READ)


def _statement(node: dict[str, Any], allow_schema_changes: bool) -> Verdict:
    (name, body), = node.items() if len(node) == 1 else (("", {}),)
    if name == "SelectStmt":
        if body.get("intoClause"):
            return _schema_change("SELECT INTO", allow_schema_changes)
        if body.get("lockingClause") or _contains(body, _DATA_MODIFYING):
            return Verdict(WRITE)
        return Verdict(READ)
    if name in _DATA_MODIFYING:
        return Verdict(WRITE)
    if name == "VariableShowStmt":
        return Verdict(READ)
    if name == "ExplainStmt":
        analyze = any(o.get("DefElem", {}).get("defname") == "analyze" for o in body.get("options", []))
        inner = _statement(body.get("query") or {}, allow_schema_changes)
        if inner.kind == REFUSED or inner.kind == SCHEMA:
            return inner
        return inner if analyze else Verdict(READ)
    if name == "TransactionStmt":
        kind = body.get("kind", "")
        if kind in _SAVEPOINT_KINDS:
            return Verdict(SAVEPOINT)
        word = _TRANSACTION_WORDS.get(kind, "this transaction command")
        return Verdict(
            REFUSED,
            f"{word} is done by py-agent, not by your code: the step is committed or rolled back as a "
            "whole when it ends (session.commit() is fine, it only releases a savepoint)",
        )
    if name == "DropStmt":
        what = str(body.get("removeType", "")).removeprefix("OBJECT_").replace("_", " ")
        first = (body.get("objects") or [{}])[0]
        parts = [p.get("String", {}).get("sval", "") for p in first.get("List", {}).get("items", [])] if isinstance(first, dict) else []
        return _schema_change(f"DROP {what}".strip(), allow_schema_changes, None, ".".join(p for p in parts if p))
    if name in SCHEMA_STATEMENTS:
        return _schema_change(SCHEMA_STATEMENTS[name], allow_schema_changes, body, str(body.get("idxname") or ""))
    word = _WORDS.get(name, name.removesuffix("Stmt") or "this statement")
    if name == "VariableSetStmt":
        setting = body.get("name") or ("ALL" if body.get("kind") == "VAR_RESET_ALL" else "")
        word = f"SET {setting}" if body.get("kind") != "VAR_RESET_ALL" else "RESET ALL"
        if setting == "session_authorization":
            word = "SET SESSION AUTHORIZATION"
    why = _WHY.get(name, "it is not data access: a step may read and change rows (and nothing else)")
    return Verdict(REFUSED, f"{word} is not allowed in a step: {why}")


def _schema_change(word: str, allowed: bool, body: dict[str, Any] | None = None, target: str = "") -> Verdict:
    target = target or _first_name(body or {})
    described = f"{word} {target}".strip()
    if not allowed:
        return Verdict(
            REFUSED,
            f"{described} was refused: this agent may change rows but not the schema (tables, columns, "
            "indexes, views, triggers). Work with the tables as they are, or ask the person to change the schema",
        )
    return Verdict(SCHEMA, schema=(described,))


def _first_name(body: dict[str, Any]) -> str:
    for item in _walk(body):
        if isinstance(item, dict) and "relname" in item:
            return str(item["relname"])
    return ""


def _contains(tree: Any, names: tuple[str, ...]) -> bool:
    return any(isinstance(item, dict) and any(n in item for n in names) for item in _walk(tree))


def _walk(tree: Any) -> Iterator[Any]:
    stack = [tree]
    while stack:
        item = stack.pop()
        yield item
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _names_problem(node: dict[str, Any]) -> str:
    """Why the statement may not run because of a relation or function it names ('' if none)."""
    for item in _walk(node):
        if not isinstance(item, dict):
            continue
        if "relname" in item:
            schema, relation = (item.get("schemaname") or "").lower(), str(item["relname"]).lower()
            if schema == OWN_SCHEMA or relation.startswith(OWN_PREFIX) or relation == OWN_SCHEMA:
                return f"{relation} belongs to py-agent (its history and change capture); query your own tables"
            if relation in BLOCKED_RELATIONS:
                return f"{relation} shows other sessions' queries; it is not available to a step"
        call = item.get("FuncCall")
        if isinstance(call, dict):
            parts = [p.get("String", {}).get("sval", "") for p in call.get("funcname", [])]
            schema, function = (parts[0].lower() if len(parts) > 1 else ""), (parts[-1].lower() if parts else "")
            if schema == OWN_SCHEMA or function.startswith(OWN_PREFIX):
                return f"{function}() belongs to py-agent"
            if function in BLOCKED_FUNCTIONS:
                return f"{function}() is not allowed in a step: it {BLOCKED_FUNCTIONS[function]}"
        schema_name = item.get("schemaname") if "relname" not in item else None
        if isinstance(schema_name, str) and schema_name.lower() == OWN_SCHEMA:
            return "the schema py_agent belongs to py-agent"
    return ""


@dataclass
class PostgresGuard:
    """The switches the database layer flips around model code (the counterpart of SQLite's Guard)."""

    allow_schema_changes: bool = False
    internal: bool = False  # py-agent's own SQL: not checked
    controlled: bool = False  # py-agent ends a transaction
    sealed: bool = False  # the step's changes were shown: no more writes
    in_step: bool = False
    schema: list[str] = field(default_factory=list)  # schema changes allowed in this step
    untracked: list[str] = field(default_factory=list)  # tables written without row capture
    refusal: str = ""  # why the last statement was refused

    @contextlib.contextmanager
    def as_internal(self) -> Iterator[None]:
        previous, self.internal = self.internal, True
        try:
            yield
        finally:
            self.internal = previous

    @contextlib.contextmanager
    def as_controlled(self) -> Iterator[None]:
        previous, self.controlled = self.controlled, True
        try:
            yield
        finally:
            self.controlled = previous

    def begin(self) -> None:
        self.in_step, self.sealed, self.schema, self.untracked, self.refusal = True, False, [], [], ""

    def end(self) -> None:
        self.in_step, self.sealed = False, False

    def check(self, statement: str) -> Verdict:
        """The verdict on a statement model code (or anything but py-agent) sends now.

        Raises :class:`StatementRefused` with the reason when it may not run.
        """
        verdict = classify(statement, allow_schema_changes=self.allow_schema_changes and not self.sealed)
        if verdict.kind == REFUSED:
            self._refuse(verdict.reason)
        if self.sealed and verdict.kind in (WRITE, SCHEMA):
            self._refuse(
                "the step's changes were already shown for approval, so no more writes are accepted "
                "until they are committed or rolled back (code that runs at commit time cannot add any)"
            )
        for entry in verdict.schema:
            if entry not in self.schema:
                self.schema.append(entry)
        return verdict

    def _refuse(self, reason: str) -> None:
        self.refusal = reason
        raise StatementRefused(f"not authorized: {reason}")
