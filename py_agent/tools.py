"""Tools: Python functions the model may call from its code.

The prompt lists each tool by name and the first line of its docstring; the
model calls ``disclose("name")`` to see the full signature and docstring when it
needs them (llmalchemy's "revealed on demand"), which keeps the prompt short.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, overload

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Tool:
    name: str
    function: Callable[..., Any]
    description: str

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.function)

    @property
    def summary(self) -> str:
        """The first line of the description."""
        return self.description.strip().splitlines()[0] if self.description.strip() else ""

    def signature(self) -> str:
        try:
            # eval_str turns `from __future__ import annotations` strings back into types
            sig = str(inspect.signature(self.function, eval_str=True))
        except (NameError, SyntaxError):
            sig = str(inspect.signature(self.function))
        except (TypeError, ValueError):  # some builtins have no signature
            sig = "(...)"
        return f"{'async ' if self.is_async else ''}def {self.name}{sig}"

    def disclosure(self) -> str:
        doc = inspect.cleandoc(self.description) if self.description else "(no description)"
        call = f"await {self.name}(...)" if self.is_async else f"{self.name}(...)"
        return f"{self.signature()}\n\n{doc}\n\nCall it as: {call}"


@overload
def tool(function: F, /) -> F: ...
@overload
def tool(*, name: str | None = None, description: str | None = None) -> Callable[[F], F]: ...


def tool(function: Any = None, /, *, name: str | None = None, description: str | None = None) -> Any:
    """Mark a sync or async function as a tool. Usable bare (``@tool``) or with arguments."""

    def mark(fn: F) -> F:
        fn.__py_agent_tool__ = Tool(  # type: ignore[attr-defined]
            name=name or fn.__name__,
            function=fn,
            description=description if description is not None else (inspect.getdoc(fn) or ""),
        )
        return fn

    return mark(function) if function is not None else mark


def as_tool(obj: Any) -> Tool:
    """A :class:`Tool` from a decorated or plain function (or a Tool)."""
    if isinstance(obj, Tool):
        return obj
    marked = getattr(obj, "__py_agent_tool__", None)
    if isinstance(marked, Tool):
        return marked
    if callable(obj):
        return Tool(getattr(obj, "__name__", "tool"), obj, inspect.getdoc(obj) or "")
    raise TypeError(f"{obj!r} is not a function and cannot be a tool")


class Toolbox:
    """The agent's tools by name, and the ``disclose`` function the model calls."""

    def __init__(self, tools: Iterable[Any] = ()) -> None:
        self.tools: dict[str, Tool] = {}
        for obj in tools:
            t = as_tool(obj)
            if t.name in self.tools:
                raise ValueError(f"two tools are named {t.name!r}")
            self.tools[t.name] = t

    def namespace(self) -> Mapping[str, Any]:
        return {name: t.function for name, t in self.tools.items()} | {"disclose": self.disclose}

    def disclose(self, name: str) -> None:
        """Print the full signature and docstring of the tool ``name``."""
        t = self.tools.get(name)
        if t is None:
            known = ", ".join(sorted(self.tools)) or "(none)"
            print(f"There is no tool named {name!r}. The tools are: {known}")
            return
        print(t.disclosure())

    def listing(self) -> str:
        return "\n".join(f"- {t.name}: {t.summary}" for t in self.tools.values())
