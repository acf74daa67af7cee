"""Small helpers shared by the tests (importable as ``helpers``: pytest puts tests/ on sys.path)."""

from __future__ import annotations

from typing import Any


def of_type(events: list[Any], name: str) -> list[Any]:
    """The events whose ``type`` is ``name``."""
    return [e for e in events if e.type == name]


# --- PostgreSQL (conftest.py's postgres_demo fixtures) ---------------------------------

APP_ROLE = "py_agent_app"


class PostgresDemo:
    def __init__(self, cluster, name: str) -> None:
        from sqlalchemy import create_engine

        self.cluster, self.name = cluster, name
        self.admin_url = cluster.url(name)
        self.url = cluster.url(name, user=APP_ROLE)
        self.engine = create_engine(self.url)
        self._engines = [self.engine]

    def admin_engine(self):
        from sqlalchemy import create_engine

        engine = create_engine(self.admin_url)
        self._engines.append(engine)
        return engine

    def drop(self) -> None:
        for engine in self._engines:
            engine.dispose()
        self.cluster.psql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
