"""Errors that reach a person: each says what happened and what to do about it."""

from __future__ import annotations


class PyAgentError(Exception):
    """Base class for every error py-agent raises on purpose.

    ``hint`` is the sentence that tells the person (or the model) how to fix it.
    """

    kind: str = "error"

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigurationError(PyAgentError):
    """The agent was set up wrongly (unknown model id, bad argument, missing schema)."""

    kind = "configuration"


class AbortedError(PyAgentError):
    """The run was aborted by the person."""

    kind = "aborted"
