"""The worker-side runtime of the browser app.

- ``transport.py``: provider requests through the page's fetch shim (no key here);
- ``files.py``: committed snapshots of the database file, checks of imported files;
- ``runtime.py``: the command driver that answers the page's messages;
- ``recovery.py``: what a reload or a lost worker leaves behind, told to the model;
- ``glue.py``: the only module of py-agent that imports ``js``/``pyodide``.

Everything but ``glue.start`` runs on CPython too, where it is unit-tested.
"""

from __future__ import annotations

from typing import Any

from .files import check_database, snapshot_bytes, table_counts
from .runtime import DEFAULT_CONFIG, Runtime, provider_from_config
from .transport import BrowserTransport, ShimRefusedError, fetch_error


def start(*args: Any, **kwargs: Any) -> Any:
    """Called by ``worker.js`` once the wheels are installed (see :func:`glue.start`)."""
    from .glue import start as _start

    return _start(*args, **kwargs)


__all__ = [
    "DEFAULT_CONFIG",
    "BrowserTransport",
    "Runtime",
    "ShimRefusedError",
    "check_database",
    "fetch_error",
    "provider_from_config",
    "snapshot_bytes",
    "start",
    "table_counts",
]
