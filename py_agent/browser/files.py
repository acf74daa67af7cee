"""The worker's database file: committed snapshots and checks of files to import."""

from __future__ import annotations

import sqlite3
from contextlib import closing

DB_PATH = "/data/app.sqlite"
SQLITE_MAGIC = b"SQLite format 3\x00"

def snapshot_bytes(path: str) -> bytes:
    """The committed contents of the SQLite file at ``path``.

    Read through a separate connection rather than as raw file bytes, so an
    open transaction of the agent's connection can never leak half a step.
    """
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return conn.serialize()


def check_database(data: bytes) -> list[str]:
    """Problems that make ``data`` unfit to import (an empty list when it is fine)."""
    if not data.startswith(SQLITE_MAGIC):
        return ["it is not an SQLite database (the file does not start with 'SQLite format 3')"]
    try:
        with closing(sqlite3.connect(":memory:")) as conn:
            conn.deserialize(data)
            rows = [str(row[0]) for row in conn.execute("PRAGMA integrity_check(3)")]
    except sqlite3.DatabaseError as exc:
        return [f"SQLite cannot read it: {exc}"]
    if rows == ["ok"]:
        return []
    # Name the first real problem, cut short: a wrecked file can report thousands.
    lines = [line for row in rows for line in row.splitlines() if line and not line.startswith("***")]
    return [f"its integrity check failed ({_shorten(lines[0] if lines else 'no details', 120)})"]


def _shorten(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def table_counts(path: str) -> dict[str, int]:
    """Rows per table in the committed database file (the app's tables: not SQLite's
    own, nor py-agent's history tables ``py_agent_*``)."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
                " AND name NOT LIKE 'py\\_agent\\_%' ESCAPE '\\' ORDER BY name"
            )
        ]
        return {name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0] for name in names}


