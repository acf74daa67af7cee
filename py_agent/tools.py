"""Tools: Python functions the model may call from its code.

The prompt lists each tool by name and the first line of its docstring; the
model calls ``disclose("name")`` to see the full signature and docstring when it
needs them (llmalchemy's "revealed on demand"), which keeps the prompt short.

Model functions (``@llm_func``) are tools too, with one calling convention in agent
code: ``await name(...)`` (a model answers over the network, which synchronous code
cannot wait for inside the browser). Every tool declares an approval rule (see
:mod:`py_agent.gates`): ``"never"`` (the default: it just runs), ``"ask"`` (the person
decides first), ``"blocked"``, or a function of the call's arguments returning one of
those.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

if TYPE_CHECKING:
    from .gates import Gate

F = TypeVar("F", bound=Callable[..., Any])

Decision = Literal["never", "ask", "blocked"]
#: An approval rule: one of the three words, or a function of the call's arguments
#: (a dict of name -> value, defaults applied) that returns one of them.
Rule = Decision | Callable[[dict[str, Any]], Decision]
RULES: tuple[str, ...] = ("never", "ask", "blocked")


@dataclass(frozen=True)
class Tool:
    """A function model code may call: its name, the function, its documentation and rule.

    ``kind`` is ``"tool"`` (a Python function) or ``"model"`` (an ``@llm_func``: a model
    computes the result; always awaited in agent code).
    """

    name: str
    function: Callable[..., Any]
    description: str
    approval: Rule = "never"
    kind: Literal["tool", "model"] = "tool"

    def __post_init__(self) -> None:
        check_rule(self.approval, self.name)

    @property
    def is_async(self) -> bool:
        """Whether agent code awaits it (async tools, and every model function)."""
        return self.kind == "model" or inspect.iscoroutinefunction(self.function)

    @property
    def gated(self) -> bool:
        """Whether a call may need a decision (any rule but ``"never"``)."""
        return self.approval != "never"

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
        text = f"{self.signature()}\n\n{doc}\n\nCall it as: {call}"
        note = _APPROVAL_NOTES.get(self.approval if isinstance(self.approval, str) else "rule")
        return f"{text}\n{note}" if note else text

    def listing(self) -> str:
        """Its line in the prompt's tool list."""
        marks = []
        if self.kind == "model":
            marks.append(f"model function: await {self.name}(...)")
        elif self.is_async:
            marks.append(f"await {self.name}(...)")
        if self.approval == "ask":
            marks.append("asks the person first")
        elif self.approval == "blocked":
            marks.append("blocked")
        elif callable(self.approval):
            marks.append("may ask the person first")
        return f"- {self.name}: {self.summary}" + (f" ({'; '.join(marks)})" if marks else "")


_APPROVAL_NOTES = {
    "ask": (
        "Each call needs the person's approval: the step pauses there and, once they decide, runs again "
        "from its start. Call it early in a step (or in a step of its own). A declined call raises PermissionError."
    ),
    "rule": (
        "Some calls need the person's approval (depending on the arguments): the step then pauses and, once "
        "they decide, runs again from its start. A declined or blocked call raises PermissionError."
    ),
    "blocked": "It is blocked in this app: calling it raises PermissionError.",
}


def check_rule(rule: Any, name: str) -> None:
    """Raise a clear error for an approval rule that is neither a word of RULES nor a function."""
    if callable(rule) or rule in RULES:
        return
    from .errors import ConfigurationError

    raise ConfigurationError(
        f"the approval rule of {name!r} must be 'never', 'ask', 'blocked' or a function of the arguments, not {rule!r}",
        hint="e.g. @tool(approval='ask'), or approval=lambda args: 'ask' if args['amount'] > 100 else 'never'",
    )


@overload
def tool(function: F, /) -> F: ...
@overload
def tool(*, name: str | None = None, description: str | None = None, approval: Rule = "never") -> Callable[[F], F]: ...


def tool(function: Any = None, /, *, name: str | None = None, description: str | None = None, approval: Rule = "never") -> Any:
    """Mark a sync or async function as a tool. Usable bare (``@tool``) or with arguments.

    ``approval``: ``"never"`` (default), ``"ask"`` (the person decides each call),
    ``"blocked"``, or a function of the call's arguments (a dict) returning one of those.
    """

    def mark(fn: F) -> F:
        fn.__py_agent_tool__ = Tool(  # type: ignore[attr-defined]
            name=name or fn.__name__,
            function=fn,
            description=description if description is not None else (inspect.getdoc(fn) or ""),
            approval=approval,
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
    """The agent's tools by name, and the ``disclose`` function the model calls.

    ``approvals`` overrides the rules the tools declare, by name (an app may gate a
    tool it did not write).
    """

    def __init__(self, tools: Iterable[Any] = (), *, approvals: Mapping[str, Rule] | None = None) -> None:
        self.tools: dict[str, Tool] = {}
        for obj in tools:
            t = as_tool(obj)
            if t.name in self.tools:
                raise ValueError(f"two tools are named {t.name!r}")
            self.tools[t.name] = t
        for name, rule in (approvals or {}).items():
            if name not in self.tools:
                from .errors import ConfigurationError

                raise ConfigurationError(
                    f"approvals names {name!r}, which is not a tool", hint=f"the tools are: {', '.join(self.tools) or '(none)'}"
                )
            self.tools[name] = dataclasses.replace(self.tools[name], approval=rule)

    @property
    def gated(self) -> bool:
        """Whether any tool may need a decision."""
        return any(t.gated for t in self.tools.values())

    def namespace(self, gate: Gate | None = None) -> Mapping[str, Any]:
        """The names model code calls: each tool behind the gate, and ``disclose``.

        Without a ``gate`` the tools still obey their rules, but a call that needs the
        person's approval is refused (there is no one to ask).
        """
        from .gates import Gate

        gate = gate if gate is not None else Gate(can_ask=False)
        return {name: gate.wrap(t) for name, t in self.tools.items()} | {"disclose": self.disclose}

    def disclose(self, name: str) -> None:
        """Print the full signature and docstring of the tool ``name``."""
        t = self.tools.get(name)
        if t is None:
            known = ", ".join(sorted(self.tools)) or "(none)"
            print(f"There is no tool named {name!r}. The tools are: {known}")
            return
        print(t.disclosure())

    def listing(self) -> str:
        lines = [t.listing() for t in self.tools.values()]
        if self.gated:
            lines.append(
                "A call that needs the person's approval pauses the step; the step then runs again from its start "
                "with their decision, so call such tools early in a step. A declined or blocked call raises "
                "PermissionError: do not retry it, ask the person what they want instead."
            )
        return "\n".join(lines)
