"""Small helpers shared by the tests (importable as ``helpers``: pytest puts tests/ on sys.path)."""

from __future__ import annotations

from typing import Any


def of_type(events: list[Any], name: str) -> list[Any]:
    """The events whose ``type`` is ``name``."""
    return [e for e in events if e.type == name]
