"""Test kit for py-agent users and for py-agent's own tests.

- ``postgres.py``: a throwaway PostgreSQL cluster (``PostgresCluster``).
"""

from __future__ import annotations

from .postgres import PostgresCluster, PostgresUnavailable, find_pg_bin

__all__ = ["PostgresCluster", "PostgresUnavailable", "find_pg_bin"]
