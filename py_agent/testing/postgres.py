"""A throwaway PostgreSQL cluster for tests: ``initdb`` in a temporary directory, removed afterwards.

    with PostgresCluster() as cluster:
        engine = create_engine(cluster.url("mydb"))

The cluster listens on loopback (a free TCP port) and on a unix socket in its own directory,
trusts local connections, and is deleted with its data when stopped. ``initdb`` refuses to run
as root, so as root the server runs as the ``postgres`` system user (which the Debian package
creates). Needs PostgreSQL's server binaries (``apt-get install postgresql``); psycopg 3 is the
driver (``pip install "psycopg[binary]"``).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server binaries (or the user to run them as) are missing."""


def find_pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None."""
    candidates = [os.environ.get("PG_BIN", "")]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).resolve().parent))
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        if folder and (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresCluster:
    """A private PostgreSQL server for the length of a test session."""

    def __init__(self, *, bin_dir: Path | None = None, superuser: str = "postgres") -> None:
        found = bin_dir or find_pg_bin()
        if found is None:
            raise PostgresUnavailable(
                "PostgreSQL's server binaries were not found: install them with "
                "`apt-get install postgresql` (or set PG_BIN to the folder holding initdb)"
            )
        self.bin = found
        self.superuser = superuser
        self.port = 0
        self.root: Path | None = None
        self._as_root = os.geteuid() == 0

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> "PostgresCluster":
        self.root = Path(tempfile.mkdtemp(prefix="py-agent-pg-"))
        self.port = _free_port()
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
        data = self.root / "data"
        self._run(
            [self.bin / "initdb", "-D", data, "-U", self.superuser, "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-sync"]
        )
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._run([self.bin / "pg_ctl", "-D", data, "-o", options, "-l", self.root / "server.log", "-w", "-t", "60", "start"])
        return self

    def stop(self) -> None:
        if self.root is None:
            return
        try:
            self._run([self.bin / "pg_ctl", "-D", self.root / "data", "-m", "immediate", "-w", "stop"], check=False)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> "PostgresCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- use ------------------------------------------------------------------------------------
    def url(self, database: str = "postgres", *, user: str | None = None, password: str | None = None) -> str:
        """A SQLAlchemy URL (psycopg 3) for ``database`` on this cluster, over loopback TCP."""
        who = user or self.superuser
        if password:
            who += f":{password}"
        return f"postgresql+psycopg://{who}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` as the superuser with psql; returns its output (for set-up only)."""
        result = self._run(
            [self.bin / "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(self.root), "-p", str(self.port),
             "-U", self.superuser, "-d", database, "-At", "-c", sql]
        )
        return result.stdout

    def create_database(self, name: str) -> str:
        """Create an empty database; returns its URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log(self) -> str:
        path = (self.root or Path("/nonexistent")) / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _run(self, cmd: list[object], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        args = [str(c) for c in cmd]
        if self._as_root:
            args = ["runuser", "-u", "postgres", "--", *args]
        result = subprocess.run(args, capture_output=True, text=True, cwd=str(self.root or "/"), timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
        return result


def wait_for(url: str, timeout: float = 30.0) -> None:
    """Wait until a SQLAlchemy URL accepts connections."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        engine.dispose()
