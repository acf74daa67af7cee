"""Language-model providers behind one small protocol."""

from .base import ChatMessage, Completion, CompletionRequest, Provider, TextDelta, Usage, complete
from .models import ModelFacts, context_window, model_facts, set_model_facts
from .registry import register, resolve
from .scripted import FunctionProvider, ScriptedProvider

__all__ = [
    "ChatMessage",
    "Completion",
    "CompletionRequest",
    "FunctionProvider",
    "ModelFacts",
    "Provider",
    "ScriptedProvider",
    "TextDelta",
    "Usage",
    "complete",
    "context_window",
    "model_facts",
    "register",
    "resolve",
    "set_model_facts",
]
