"""Importing a database file: check it against the mapped schema, then read its rows.

``check_import`` compares the file with the app's mapped tables (tables, columns,
type affinities) and counts rows, without changing anything. A file can be imported
when every mapped table is in it with every column that has to have a value; extra
tables and columns are ignored (and listed), differing column types are reported.
The import itself (``Database.stage_rows``) replaces the rows of the mapped tables in
one step that waits for confirmation, and becomes a history point that can be undone.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.dialects import sqlite as sqlite_dialect

from ..errors import PyAgentError
from .capture import quote
from .guard import OWN_PREFIX

SQLITE_MAGIC = b"SQLite format 3\x00"


class ImportRefused(PyAgentError):
    """The file cannot be imported; ``report`` says why (nothing was changed)."""

    kind = "import"

    def __init__(self, message: str, report: ImportReport, *, hint: str = "") -> None:
        super().__init__(message, hint=hint or "choose a file exported from this app; the current database is unchanged")
        self.report = report


@dataclass
class TableReport:
    name: str
    found: bool
    rows_in_file: int = 0
    rows_now: int | None = None
    missing_columns: list[str] = field(default_factory=list)  # mapped, not in the file
    required_missing: list[str] = field(default_factory=list)  # ... and must have a value
    extra_columns: list[str] = field(default_factory=list)  # in the file, not mapped
    type_mismatches: list[dict[str, str]] = field(default_factory=list)  # {column, expected, found}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "found": self.found,
            "rows_in_file": self.rows_in_file,
            "rows_now": self.rows_now,
            "missing_columns": self.missing_columns,
            "required_missing": self.required_missing,
            "extra_columns": self.extra_columns,
            "type_mismatches": self.type_mismatches,
        }


@dataclass
class ImportReport:
    """What a file holds compared with the mapped schema (the ``detail`` of an import approval)."""

    ok: bool
    problems: list[str] = field(default_factory=list)  # why it cannot be imported
    warnings: list[str] = field(default_factory=list)  # what will be ignored or differs
    tables: list[TableReport] = field(default_factory=list)
    extra_tables: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": self.problems,
            "warnings": self.warnings,
            "tables": [t.to_dict() for t in self.tables],
            "extra_tables": self.extra_tables,
        }

    def text(self) -> str:
        lines = [("The file can be imported." if self.ok else "The file cannot be imported:")]
        lines += [f"- {p}" for p in self.problems]
        lines += [f"- note: {w}" for w in self.warnings]
        return "\n".join(lines)


def open_file(data: bytes | str | os.PathLike[str]) -> sqlite3.Connection:
    """A read-only connection to the file (bytes are loaded into memory). Raises ImportRefused."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        if not raw.startswith(SQLITE_MAGIC):
            raise ImportRefused("the file is not an SQLite database (it does not start with 'SQLite format 3')", ImportReport(False))
        conn = sqlite3.connect(":memory:")
        try:
            conn.deserialize(raw)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise ImportRefused(f"SQLite cannot read the file: {exc}", ImportReport(False)) from None
    else:
        path = os.fspath(data)
        with open(path, "rb") as f:
            if not f.read(16).startswith(SQLITE_MAGIC):
                raise ImportRefused("the file is not an SQLite database (it does not start with 'SQLite format 3')", ImportReport(False))
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check(3)")]
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ImportRefused(f"SQLite cannot read the file: {exc}", ImportReport(False)) from None
    if rows != ["ok"]:
        conn.close()
        raise ImportRefused(f"the file is damaged (its integrity check failed: {rows[0][:120]})", ImportReport(False))
    return conn


def affinity(declared: str) -> str:
    """SQLite's column affinity for a declared type (the rules of section 3.1 of its docs)."""
    t = (declared or "").upper()
    if "INT" in t:
        return "INTEGER"
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return "TEXT"
    if "BLOB" in t or not t:
        return "BLOB"
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return "REAL"
    return "NUMERIC"


def _mapped_type(column: Any) -> str:
    try:
        return str(column.type.compile(dialect=sqlite_dialect.dialect()))
    except Exception:  # noqa: BLE001 - a custom type without a SQLite rendering
        return ""


def check_import(source: sqlite3.Connection, metadata: MetaData, *, current: sqlite3.Connection | None = None) -> ImportReport:
    """Compare the file open on ``source`` with ``metadata``; ``current`` gives today's row counts."""
    report = ImportReport(True)
    names = {r[0] for r in source.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    mapped = {t.name for t in metadata.sorted_tables}
    report.extra_tables = sorted(n for n in names - mapped if not n.startswith(("sqlite_", OWN_PREFIX)))
    for table in metadata.sorted_tables:
        entry = TableReport(table.name, table.name in names)
        report.tables.append(entry)
        if current is not None:
            try:
                entry.rows_now = current.execute(f"SELECT count(*) FROM main.{quote(table.name)}").fetchone()[0]
            except sqlite3.DatabaseError:
                entry.rows_now = None
        if not entry.found:
            continue
        info = {r[1]: r[2] for r in source.execute(f"PRAGMA table_info({quote(table.name)})")}
        entry.rows_in_file = source.execute(f"SELECT count(*) FROM {quote(table.name)}").fetchone()[0]
        entry.extra_columns = sorted(c for c in info if c not in table.columns)
        for column in table.columns:
            if column.name not in info:
                entry.missing_columns.append(column.name)
                has_default = column.server_default is not None or column.default is not None
                if not column.nullable and not has_default and not (column.primary_key and column.autoincrement in (True, "auto")):
                    entry.required_missing.append(column.name)
                continue
            expected = _mapped_type(column)
            if expected and affinity(expected) != affinity(info[column.name]):
                entry.type_mismatches.append({"column": column.name, "expected": expected, "found": info[column.name] or "(none)"})
    found = [t for t in report.tables if t.found]
    if not found:
        report.ok = False
        report.problems.append(
            "none of the app's tables are in the file (" + ", ".join(t.name for t in report.tables) + ")"
            + (f"; it has {', '.join(report.extra_tables)}" if report.extra_tables else "")
        )
        return report
    for entry in report.tables:
        if not entry.found:
            report.ok = False
            report.problems.append(f"the table {entry.name} is not in the file")
        elif entry.required_missing:
            report.ok = False
            report.problems.append(f"the table {entry.name} lacks the column(s) {', '.join(entry.required_missing)}, which must have a value")
        if entry.found and len(entry.missing_columns) > len(entry.required_missing):
            rest = [c for c in entry.missing_columns if c not in entry.required_missing]
            report.warnings.append(f"{entry.name} has no column(s) {', '.join(rest)}: they get their default values")
        if entry.extra_columns:
            report.warnings.append(f"{entry.name}: the column(s) {', '.join(entry.extra_columns)} are not part of the app and will not be imported")
        for mismatch in entry.type_mismatches:
            report.warnings.append(
                f"{entry.name}.{mismatch['column']} is {mismatch['found']} in the file, {mismatch['expected']} in the app: values are imported as they are stored"
            )
    if report.extra_tables:
        report.warnings.append(f"the table(s) {', '.join(report.extra_tables)} are not part of the app and will not be imported")
    return report


def read_rows(source: sqlite3.Connection, metadata: MetaData) -> dict[str, tuple[list[str], list[Sequence[Any]]]]:
    """The file's rows of every mapped table, in dependency order (parents first)."""
    out: dict[str, tuple[list[str], list[Sequence[Any]]]] = {}
    for table in metadata.sorted_tables:
        present = {r[1] for r in source.execute(f"PRAGMA table_info({quote(table.name)})")}
        columns = [c.name for c in table.columns if c.name in present]
        rows = source.execute(f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(table.name)}").fetchall()
        out[table.name] = (columns, rows)
    return out


def inspect_file(data: bytes | str | os.PathLike[str], metadata: MetaData, *, current: sqlite3.Connection | None = None) -> ImportReport:
    """Open, check and close: the report alone."""
    with closing(open_file(data)) as source:
        return check_import(source, metadata, current=current)
