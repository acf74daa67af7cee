"""Language-model providers behind one small protocol."""

from .base import ChatMessage, Completion, CompletionRequest, Provider, TextDelta, Usage, complete
from .registry import register, resolve
from .scripted import FunctionProvider, ScriptedProvider

__all__ = [
    "ChatMessage",
    "Completion",
    "CompletionRequest",
    "FunctionProvider",
    "Provider",
    "ScriptedProvider",
    "TextDelta",
    "Usage",
    "complete",
    "register",
    "resolve",
]
