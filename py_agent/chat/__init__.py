"""The agent in a terminal (``py-agent chat``): the session loop, its event renderer, its log.

- ``session.py``: :class:`ChatSession`, reading requests and commands, asking approvals;
- ``render.py``: :class:`Renderer`, writing events to a terminal as they stream;
- ``log.py``: :class:`ConversationLog`, the local SQLite file that lets ``-c`` continue.
"""

from __future__ import annotations

from .log import Conversation, ConversationLog, data_dir
from .render import Renderer
from .session import ChatSession, default_model, resolve_model

__all__ = ["ChatSession", "Conversation", "ConversationLog", "Renderer", "data_dir", "default_model", "resolve_model"]
