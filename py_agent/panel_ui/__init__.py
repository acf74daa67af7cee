"""The Panel app, in pieces (CPython only: the core never imports this package).

- ``render``: events as markdown, pure functions (no Panel import);
- ``icons``: inline SVG icons, so the page loads no icon font from a CDN;
- ``blocks``: safe markdown panes, data tables, charts, buttons;
- ``turn``: :class:`TurnView`, one assistant message built from a turn's events;
- ``stopping``: :class:`StoppableWorkspace`, in-process steps off the event loop, stoppable;
- ``conversations``: :class:`LiveConversation` and the registry a reload comes back to;
- ``app``: :class:`AgentChat` (one browser session) and :func:`create_app`.

``py_agent/panel_app.py`` is the entry point (``panel serve py_agent/panel_app.py``).
"""

from __future__ import annotations

from .app import (
    ASSISTANT,
    DEMO_MODEL_ID,
    EXTENSIONS,
    KEY_MODELS,
    TABLE_ROWS,
    AgentChat,
    create_app,
    default_model_id,
    from_environment,
    main,
    make_provider,
    shared_server,
    table_counts,
    table_rows,
)
from .blocks import LABEL, labelled
from .conversations import LIVE, LiveConversation, Registry, Segment
from .render import RENDERERS, changes_table, fence, render_event
from .stopping import StoppableWorkspace, StepStopped
from .turn import TurnView

__all__ = [
    "ASSISTANT", "DEMO_MODEL_ID", "EXTENSIONS", "KEY_MODELS", "LABEL", "LIVE", "RENDERERS", "TABLE_ROWS", "AgentChat",
    "LiveConversation", "Registry", "Segment", "StepStopped", "StoppableWorkspace", "TurnView", "changes_table",
    "create_app", "default_model_id", "fence", "from_environment", "labelled", "main", "make_provider", "render_event",
    "shared_server", "table_counts", "table_rows",
]
