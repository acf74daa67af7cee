"""Bringing a conversation back after a reload or a lost worker.

A reloaded page, or a worker the page had to restart, opens the last saved
conversation and database file. Whatever was in flight is gone: a step that
waited for approval (its transaction lived in the old worker's memory), or a
step that ran past its time limit or out of memory and took Python down with
it. These helpers write what happened into the conversation itself, so that the
model never goes on as if such a step were still open or had been saved.

Pure Python: unit-tested on CPython (tests/test_browser_adapter.py).
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, MutableMapping
from typing import Any

# Why the page restarted the worker (``open {lost: {reason}}``), as the model reads it.
_LOST_ERRORS = {
    "timeout": "StepTimeout: the step ran longer than {timeout:g} s and was stopped by restarting Python",
    "memory": "MemoryError: the step ran out of memory (the limit is {memory} MB), so Python was restarted",
    "crash": "the Python worker stopped unexpectedly while the step ran, so it was restarted",
    "interrupt": "KeyboardInterrupt: the person stopped the step, and Python was restarted to do it",
    "takeover": "the step was cut short because the app was opened in another tab",
}


def pending_step(conversation: dict[str, Any] | None) -> int | None:
    """The step a saved conversation left waiting for approval, if any.

    ``Runtime.post_snapshot`` records it as ``{"pending": {"step": n}}``; a
    conversation saved by another writer may give the bare number.
    """
    if not isinstance(conversation, dict):
        return None
    pending = conversation.get("pending")
    if isinstance(pending, dict):
        pending = pending.get("step")
    return pending if isinstance(pending, int) and not isinstance(pending, bool) else None


def note_discarded(state: Any, step: int) -> None:
    """Tell the model that a step waiting for approval was dropped by a reload."""
    from ..messages import ResultMessage

    state.messages.append(
        ResultMessage(
            "Output:\n(not shown)\n"
            f"The changes of step {step} were NOT saved: the page was reloaded while they waited for the "
            "person's approval, so they were discarded and the database is as it was before that step. "
            "Ask the person whether to do it again."
        )
    )


def lost_step_error(reason: str, *, timeout: float, memory: int) -> str:
    """The error text the model reads for a step that was lost with its worker."""
    template = _LOST_ERRORS.get(reason, _LOST_ERRORS["crash"])
    return template.format(timeout=timeout, memory=memory)


def note_lost_step(state: Any, lost: dict[str, Any], *, timeout: float, memory: int) -> str:
    """Record a step that died with its worker: its reply (if missing) and an error result.

    ``lost`` is what the page knew: ``{step, message, code, reason}``. Returns
    the error text (also shown to the person).
    """
    from ..messages import AssistantMessage, ResultMessage

    error = lost_step_error(str(lost.get("reason") or "crash"), timeout=timeout, memory=memory)
    code = lost.get("code") if isinstance(lost.get("code"), str) else ""
    message = lost.get("message") if isinstance(lost.get("message"), str) else ""
    last = state.messages[-1] if state.messages else None
    already = isinstance(last, AssistantMessage) and last.code == code
    if code and not already:
        state.messages.append(AssistantMessage(message, code))
    if code or already:
        state.messages.append(
            ResultMessage(f"Output:\n(nothing printed)\nError:\n{error}\nThe step did not finish, so its changes were rolled back.")
        )
    step = lost.get("step")
    if isinstance(step, int) and not isinstance(step, bool):
        state.step = max(state.step, step)
    return error


def free_namespace(namespace: MutableMapping[str, Any], keep: Iterable[str]) -> list[str]:
    """Drop the model's own variables (after a MemoryError they may hold the memory).

    Returns the names removed. What the agent put there (``keep``) stays.
    """
    kept = set(keep) | {"__builtins__", "__name__"}
    removed = [name for name in list(namespace) if name not in kept]
    for name in removed:
        del namespace[name]
    gc.collect()
    return removed


def schema_enums(base: Any) -> dict[str, dict[str, dict[str, str]]]:
    """Stored name -> label of every enum column (``{table: {column: {NAME: label}}}``).

    SQLAlchemy stores a Python enum by member name; the page shows the value.
    """
    result: dict[str, dict[str, dict[str, str]]] = {}
    for table in base.metadata.tables.values():
        columns = {
            column.name: {member.name: str(member.value) for member in column.type.enum_class}
            for column in table.columns
            if getattr(column.type, "enum_class", None) is not None
        }
        if columns:
            result[table.name] = columns
    return result


__all__ = ["free_namespace", "lost_step_error", "note_discarded", "note_lost_step", "pending_step", "schema_enums"]
