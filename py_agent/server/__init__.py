"""Serving many people at once: conversations kept in the database, one session each.

- ``store.py``: :class:`ConversationStore`, conversations (``State.to_dict()``) saved in a
  py-agent-owned table, so any server process can resume any conversation;
- ``sessions.py``: :class:`Conversation`, one person's conversation (its state, its own
  workspace, in this process or a separate worker) and how it is saved and resumed.
"""

from __future__ import annotations

from .sessions import Conversation, Server
from .store import ConversationConflict, ConversationNotFound, ConversationStore, StoredConversation

__all__ = ["Conversation", "ConversationConflict", "ConversationNotFound", "ConversationStore", "Server", "StoredConversation"]
