"""The database side of a step: one connection, each step one transaction.

- ``step.py``: the agent's connection and session, step transactions, SQLite guards and
  per-table change counts.
"""

from __future__ import annotations

from .step import ChangeTable, Database, classify, memory_engine

__all__ = ["ChangeTable", "Database", "classify", "memory_engine"]
