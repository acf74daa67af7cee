"""py-agent: a language-model agent that changes and questions data by writing Python.

A developer hands over a SQLAlchemy declarative schema; the model writes Python
against it; py-agent checks that code, runs it in a transaction and feeds the
result back until the request is done. The same package runs on CPython and in
the browser (Pyodide).

    from py_agent import State, UserMessage, run
    state = State(engine=engine)
    state.messages.append(UserMessage("Add Tolkien and two of his books"))
    for event in run(state=state, base=Base, model="openai:gpt-4.1-mini"):
        print(event)
"""

from .errors import ConfigurationError, PyAgentError
from .events import Event, Signal, event_from_dict
from .loop import Agent, arun, resume, run
from .messages import AssistantMessage, ResultMessage, UserMessage
from .providers import Completion, CompletionRequest, FunctionProvider, Provider, ScriptedProvider, TextDelta, Usage
from .state import PendingStep, State
from .tools import Tool, tool
from .sandbox.validator import Policy, ValidationError, Violation, check, validate
from .app import App, AppError, load_app
from .llm_func import LLMFuncError, llm_func
from .providers.models import context_window
from .database import HistoryPoint, ImportRefused, UndoError, sqlite_engine

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "App",
    "AppError",
    "AssistantMessage",
    "Completion",
    "CompletionRequest",
    "ConfigurationError",
    "Event",
    "LLMFuncError",
    "FunctionProvider",
    "HistoryPoint",
    "ImportRefused",
    "PendingStep",
    "Policy",
    "Provider",
    "PyAgentError",
    "ResultMessage",
    "ScriptedProvider",
    "Signal",
    "State",
    "TextDelta",
    "Tool",
    "Usage",
    "UndoError",
    "UserMessage",
    "ValidationError",
    "Violation",
    "arun",
    "check",
    "context_window",
    "event_from_dict",
    "llm_func",
    "load_app",
    "resume",
    "run",
    "sqlite_engine",
    "tool",
    "validate",
]
