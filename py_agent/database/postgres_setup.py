"""Preparing a PostgreSQL database for py-agent once, and checking the role it connects as.

What py-agent needs from the role it connects as (least privilege)
-----------------------------------------------------------------
- LOGIN, and TEMPORARY on the database (each py-agent connection keeps its change
  capture in a temporary table);
- SELECT, INSERT, UPDATE, DELETE on the app's tables and USAGE on their sequences
  (SELECT only, for tables the agent should only read);
- USAGE on the schema ``py_agent`` and SELECT/INSERT/UPDATE(/DELETE) on its tables
  (history, conversations): ``setup`` grants these.

And nothing else: no superuser, CREATEROLE, CREATEDB, REPLICATION or BYPASSRLS; it owns
no table (an owner may ALTER or DROP it, and may disable its triggers); no CREATE on the
database or any schema; membership in no other role (in particular not
``pg_read_server_files``, ``pg_write_server_files``, ``pg_execute_server_program`` or
``pg_signal_backend``); and the database should not offer it ``dblink``, ``postgres_fdw``,
``file_fdw``, ``adminpack`` or untrusted languages. :func:`check_role` lists what is more than that;
``PostgresDatabase`` warns about it, and ``strict`` mode (the server) refuses to start.

What an owner (the admin) runs once
-----------------------------------
``setup(admin_url, role="app")`` (or ``python -m py_agent.database.postgres_setup --url
ADMIN_URL --role app``), as the owner of the app's tables or a superuser, after every
migration that adds tables:

- creates the schema ``py_agent`` with the history and conversation tables;
- creates the trigger function ``py_agent.capture()`` and puts the capture triggers on
  every table of the app's schemas (default: ``public``);
- grants the role what is listed above (``grant_tables=False`` leaves the app's own tables'
  privileges to you).

Connecting as the tables' owner (a notebook on your own database) also works: py-agent
then installs the triggers itself the first time, and warns that the role has more rights
than it needs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigurationError
from . import postgres_history
from .postgres_capture import TRIGGER, TRUNCATE_TRIGGER

FUNCTION = "py_agent.capture"

_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    -- Only sessions of py-agent have the capture table; everyone else pays one lookup.
    IF to_regclass('pg_temp.py_agent_capture') IS NULL THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO pg_temp.py_agent_capture (tbl, op, new) VALUES (TG_RELID, 'I', to_jsonb(NEW));
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO pg_temp.py_agent_capture (tbl, op, old, new) VALUES (TG_RELID, 'U', to_jsonb(OLD), to_jsonb(NEW));
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO pg_temp.py_agent_capture (tbl, op, old) VALUES (TG_RELID, 'D', to_jsonb(OLD));
    ELSE
        INSERT INTO pg_temp.py_agent_capture (tbl, op) VALUES (TG_RELID, 'T');
    END IF;
    RETURN NULL;
END
$$
"""


class LeastPrivilegeError(ConfigurationError):
    """The database role has more rights than py-agent needs (strict mode)."""

    kind = "database"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def install(
    pg: Any, *, role: str | None = None, store_role: str | None = None, schemas: Sequence[str] = ("public",), grant_tables: bool = True
) -> list[str]:
    """Install py-agent's schema, capture function and triggers through psycopg connection ``pg``.

    ``role`` gets what model code's connection needs; ``store_role`` (default: ``role``) the
    conversations table, which holds everyone's conversations (a server's own role, ideally).
    Commits. Returns the tables that got the triggers. Runs under an advisory lock, so
    several processes starting at once do not trip over each other.
    """
    pg.rollback()
    tables: list[str] = []
    try:
        pg.execute("SELECT pg_advisory_xact_lock(hashtext('py_agent_setup'))")
        for statement in postgres_history.DDL:
            pg.execute(statement)
        from ..server.store import POSTGRES_DDL as conversations_ddl

        for statement in conversations_ddl:
            pg.execute(statement)
        pg.execute(_FUNCTION_SQL)
        rows = pg.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(%s) AND NOT c.relispartition ORDER BY 1, 2",
            (list(schemas),),
        ).fetchall()
        for schema, table in rows:
            target = f"{quote_ident(schema)}.{quote_ident(table)}"
            pg.execute(
                f"CREATE OR REPLACE TRIGGER {TRIGGER} AFTER INSERT OR UPDATE OR DELETE ON {target} "
                f"FOR EACH ROW EXECUTE FUNCTION {FUNCTION}()"
            )
            pg.execute(
                f"CREATE OR REPLACE TRIGGER {TRUNCATE_TRIGGER} AFTER TRUNCATE ON {target} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
            )
            tables.append(table if schema == "public" else f"{schema}.{table}")
        if role:
            who = quote_ident(role)
            for grant in postgres_history.GRANTS:
                pg.execute(grant.format(role=who))
            pg.execute(f"GRANT EXECUTE ON FUNCTION {FUNCTION}() TO {who}")
            pg.execute(f"GRANT TEMPORARY ON DATABASE {quote_ident(current_database(pg))} TO {who}")
            if grant_tables:
                for schema in schemas:
                    s = quote_ident(schema)
                    pg.execute(f"GRANT USAGE ON SCHEMA {s} TO {who}")
                    pg.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {who}")
                    pg.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {s} TO {who}")
        if store_role or role:
            from ..server.store import POSTGRES_GRANTS

            for grant in POSTGRES_GRANTS:
                pg.execute(grant.format(role=quote_ident(store_role or role or "")))
        pg.commit()
    except BaseException:
        pg.rollback()
        raise
    return tables


def current_database(pg: Any) -> str:
    return str(pg.execute("SELECT current_database()").fetchone()[0])


def setup(
    url: str, *, role: str | None = None, store_role: str | None = None, schemas: Sequence[str] = ("public",), grant_tables: bool = True
) -> list[str]:
    """Prepare the database at ``url`` (an owner's or superuser's URL) for py-agent.

    ``role`` is the role py-agent will connect as; it gets exactly what it needs (see the
    module docstring). Safe to run again (after migrations). Returns the tables covered.
    """
    import psycopg

    with psycopg.connect(_libpq_url(url)) as pg:
        return install(pg, role=role, store_role=store_role, schemas=schemas, grant_tables=grant_tables)


def _libpq_url(url: str) -> str:
    """A libpq URL from a SQLAlchemy one (``postgresql+psycopg://`` -> ``postgresql://``)."""
    scheme, sep, rest = url.partition("://")
    return ("postgresql" + sep + rest) if scheme.startswith("postgresql") else url


# -- the role check ---------------------------------------------------------------------------------

_ROLE = """
SELECT r.rolname::text, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls, r.rolreplication,
       has_database_privilege(current_database(), 'CREATE'),
       has_database_privilege(current_database(), 'TEMPORARY'),
       coalesce((SELECT array_agg(b.rolname::text ORDER BY b.rolname) FROM pg_auth_members m
                 JOIN pg_roles b ON b.oid = m.roleid WHERE m.member = r.oid), '{}'),
       coalesce((SELECT array_agg(n.nspname::text ORDER BY n.nspname) FROM pg_namespace n
                 WHERE has_schema_privilege(r.oid, n.oid, 'CREATE') AND n.nspname NOT LIKE 'pg\\_%'
                   AND n.nspname <> 'information_schema'), '{}'),
       coalesce((SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relowner = r.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
                   AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'), '{}'),
       current_setting('track_counts'),
       coalesce((SELECT array_agg(extname::text ORDER BY extname) FROM pg_extension
                 WHERE extname IN ('dblink', 'postgres_fdw', 'file_fdw', 'adminpack', 'plpython3u', 'plperlu')), '{}')
FROM pg_roles r WHERE r.rolname = current_user
"""


@dataclass(frozen=True)
class RoleReport:
    """What the connected role may do beyond what py-agent needs (``problems``), and what it lacks."""

    role: str
    problems: list[str] = field(default_factory=list)  # more rights than needed
    missing: list[str] = field(default_factory=list)  # needed and not there

    @property
    def least_privilege(self) -> bool:
        return not self.problems

    def message(self) -> str:
        lines = []
        if self.missing:
            lines.append(f"the role {self.role!r} lacks what py-agent needs: " + "; ".join(self.missing))
        if self.problems:
            lines.append(f"the role {self.role!r} has more rights than py-agent needs: " + "; ".join(self.problems))
        return ". ".join(lines)


def check_role(pg: Any) -> RoleReport:
    """Compare the connected role's rights with what py-agent needs (read-only, any time)."""
    (name, superuser, createrole, createdb, bypassrls, replication, create_db, temporary,
     members, schemas, owned, track_counts, extensions) = pg.execute(_ROLE).fetchone()
    problems: list[str] = []
    if superuser:
        problems.append("it is a superuser (it can do anything, py-agent's checks aside)")
    for flag, what in ((createrole, "CREATEROLE"), (createdb, "CREATEDB"), (bypassrls, "BYPASSRLS"), (replication, "REPLICATION")):
        if flag:
            problems.append(f"it has {what}")
    if create_db and not superuser:
        problems.append("it may CREATE schemas in the database")
    if schemas and not superuser:
        problems.append("it may CREATE objects in the schema(s) " + ", ".join(schemas))
    if owned:
        shown = ", ".join(owned[:8]) + (" ..." if len(owned) > 8 else "")
        problems.append(f"it owns {len(owned)} table(s) or view(s) ({shown}): an owner can alter, drop or disable triggers")
    if members:
        problems.append("it is a member of " + ", ".join(members))
    if extensions:
        problems.append(
            "the database has the extension(s) " + ", ".join(extensions) + ", which reach other databases, files or "
            "programs (py-agent refuses their functions by name; revoke EXECUTE on them from the role to be sure)"
        )
    missing: list[str] = []
    if not temporary:
        missing.append("TEMPORARY on the database (GRANT TEMPORARY ON DATABASE ... TO the role)")
    if track_counts != "on":
        missing.append("track_counts is off, so py-agent cannot cross-check its change capture (set track_counts = on)")
    if problems:
        problems.append("see py_agent.database.postgres_setup for the least-privilege role py-agent needs")
    return RoleReport(name, problems, missing)


def require_least_privilege(pg: Any) -> RoleReport:
    """:func:`check_role`, raising :class:`LeastPrivilegeError` when the role has too much or too little."""
    report = check_role(pg)
    if report.problems or report.missing:
        raise LeastPrivilegeError(
            report.message(),
            hint="connect as a role that owns nothing and has only SELECT/INSERT/UPDATE/DELETE on the app's tables; "
            "create it and prepare the database with `python -m py_agent.database.postgres_setup --url ADMIN_URL --role ROLE`",
        )
    return report


# -- command line -------------------------------------------------------------------------------------

def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m py_agent.database.postgres_setup",
        description="Prepare a PostgreSQL database for py-agent (run once as the tables' owner), or check a role.",
    )
    parser.add_argument("--url", required=True, help="the database URL: an owner's for setup, the app role's for --check")
    parser.add_argument("--role", help="the role py-agent connects as; it gets exactly what it needs")
    parser.add_argument("--store-role", help="the server's role for the conversations table (default: --role)")
    parser.add_argument("--schema", action="append", dest="schemas", help="schema(s) of the app's tables (default: public)")
    parser.add_argument("--no-grant", action="store_true", help="do not grant the role rights on the app's tables")
    parser.add_argument("--check", action="store_true", help="only check the role of --url against what py-agent needs")
    args = parser.parse_args(list(argv) if argv is not None else None)
    import psycopg

    try:
        with psycopg.connect(_libpq_url(args.url)) as pg:
            if args.check:
                report = check_role(pg)
                print(report.message() or f"the role {report.role!r} has what py-agent needs and nothing more")
                return 0 if report.least_privilege and not report.missing else 1
            tables = install(pg, role=args.role, store_role=args.store_role, schemas=args.schemas or ["public"], grant_tables=not args.no_grant)
    except psycopg.Error as exc:
        print(f"error: {exc}".strip(), file=sys.stderr)
        return 1
    print(f"py-agent is set up: change capture on {len(tables)} table(s)" + (f"; role {args.role!r} granted what it needs" if args.role else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
