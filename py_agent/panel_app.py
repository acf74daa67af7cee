"""The Panel UI: a chat over the agent loop, for CPython (``panel serve``).

Run it with ``panel serve py_agent/panel_app.py`` (the page is ``/panel_app``) or
``python -m py_agent.panel_app [port]``. It opens on the demo bookshop with the recorded
demo model, so it works without an API key; the sidebar takes a model id, a base URL
and a key, and shows the history (undo, restore) and the tables with their row counts.

Each browser session's conversation is in the page address (``?conversation=ID``): a
reload comes back to it, its database and a turn still running. Stop interrupts the
running step. Many people at once: give it a server (``create_app(app=..., url=...)``,
or the environment variables PY_AGENT_APP and PY_AGENT_DB for ``panel serve``) and every
conversation is also stored in the database (resumed in any server process), with its
code in its own worker process. See :mod:`py_agent.panel_ui` (the pieces) and
:mod:`py_agent.server`.

Only this module and :mod:`py_agent.panel_ui` import Panel: the core stays free of it
(Panel does not run in the browser build).
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:
    # `panel serve py_agent/panel_app.py` runs this file as a script: make the package
    # importable from a plain checkout too (an installed py-agent needs nothing).
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import panel as pn

from py_agent.panel_ui import (  # noqa: E402 - re-exported: the app's public names
    ASSISTANT,
    DEMO_MODEL_ID,
    EXTENSIONS,
    KEY_MODELS,
    LABEL,
    RENDERERS,
    TABLE_ROWS,
    AgentChat,
    TurnView,
    changes_table,
    create_app,
    default_model_id,
    fence,
    from_environment,
    labelled,
    main,
    make_provider,
    render_event,
    shared_server,
    table_counts,
    table_rows,
)

__all__ = [
    "ASSISTANT", "DEMO_MODEL_ID", "EXTENSIONS", "KEY_MODELS", "LABEL", "RENDERERS", "TABLE_ROWS", "AgentChat", "TurnView",
    "changes_table", "create_app", "default_model_id", "fence", "from_environment", "labelled", "main", "make_provider",
    "render_event", "shared_server", "table_counts", "table_rows",
]

if __name__.startswith("bokeh"):  # `panel serve py_agent/panel_app.py`
    pn.extension(*EXTENSIONS)
    create_app(**from_environment()).servable(title="py-agent")

if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5006)
