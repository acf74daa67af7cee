"""The model's reply: ``{message, code}`` plus output-extension fields.

Parsing never raises into the loop: a bad reply becomes :class:`MalformedReply`
with a sentence the model can act on. Streaming replies are read with a
partial-JSON parser so the UI can show ``message`` and ``code`` as they arrive.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import pydantic
import pydantic_core
from pydantic import BaseModel, Field

MESSAGE_DESCRIPTION = "What you tell the person: your plan, the answer, or a question."
CODE_DESCRIPTION = (
    "Python to run next against the database, or an empty string when the request is done."
)

Extensions = type[BaseModel] | Sequence[type[BaseModel]] | None


class MalformedReply(Exception):
    """The reply could not be read; ``problem`` is written for the model."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def reply_model(output_extensions: Extensions = None) -> type[BaseModel]:
    """The pydantic model of a reply.

    Extension models become *bases* of the reply model, so their fields come
    first and ``isinstance(reply, MyExtension)`` holds (llmalchemy built a
    separate class, so that check failed).
    """
    if output_extensions is None:
        bases: tuple[type[BaseModel], ...] = (BaseModel,)
    elif isinstance(output_extensions, type):
        bases = (output_extensions,)
    else:
        bases = tuple(output_extensions) or (BaseModel,)
    for base in bases:
        if not (isinstance(base, type) and issubclass(base, BaseModel)):
            raise TypeError(f"output_extensions must be pydantic models, got {base!r}")
        clash = {"message", "code"} & set(base.model_fields)
        if clash:
            raise TypeError(f"output extension {base.__name__} may not define {sorted(clash)}: they are the reply's own fields")
    return pydantic.create_model(  # type: ignore[call-overload, no-any-return]
        "Reply",
        __base__=bases if len(bases) > 1 else bases[0],
        message=(str, Field(description=MESSAGE_DESCRIPTION)),
        code=(str, Field(description=CODE_DESCRIPTION)),
    )


def reply_schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


_JSON_FENCE = re.compile(r"^```(?:json)?\s*\n(.*)\n```\s*$", re.DOTALL)
_CODE_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)(?:\n```|\Z)", re.DOTALL)


def parse_reply(text: str, model: type[BaseModel], format: str = "json") -> BaseModel:
    """Read a finished reply, or raise :class:`MalformedReply` saying what was wrong."""
    if format == "text":
        message, code = split_fenced(text)
        return _validate(model, {"message": message, "code": code}, text)
    stripped = text.strip()
    fenced = _JSON_FENCE.match(stripped)
    if fenced:  # JSON mode models sometimes wrap the object in a fence anyway
        stripped = fenced.group(1).strip()
    if not stripped:
        raise MalformedReply("Your reply was empty. Reply with one JSON object with the fields 'message' and 'code'.")
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise MalformedReply(
            f"Your reply was not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}). "
            "Reply with exactly one JSON object with the fields 'message' and 'code', and nothing around it."
        ) from None
    if not isinstance(data, dict):
        raise MalformedReply(
            f"Your reply was a JSON {type(data).__name__}, not an object. "
            "Reply with one JSON object with the fields 'message' and 'code'."
        )
    return _validate(model, data, text)


def _validate(model: type[BaseModel], data: dict[str, Any], raw: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "(reply)"
            problems.append(f"field '{where}': {error['msg'].lower()}")
        fields = ", ".join(f"'{name}'" for name in model.model_fields)
        raise MalformedReply(
            "Your reply did not match the expected shape: " + "; ".join(problems)
            + f". Reply with one JSON object with the fields {fields}."
        ) from None


def split_fenced(text: str) -> tuple[str, str]:
    """Prose and the first Python code block of a plain-text reply."""
    match = _CODE_FENCE.search(text)
    if match is None:
        return text.strip(), ""
    return text[: match.start()].strip(), match.group(1).strip("\n")


def extensions_of(reply: BaseModel) -> dict[str, Any]:
    return {k: v for k, v in reply.model_dump(mode="json").items() if k not in ("message", "code")}


class ReplyStream:
    """Turns a growing reply text into ``message`` / ``code`` deltas.

    ``feed(chunk)`` returns the new text of each field since the last call.
    Partial JSON is parsed with pydantic-core's ``allow_partial`` mode (the
    same parser pydantic uses), so a string split mid-escape is simply waited on.
    """

    def __init__(self, format: str = "json") -> None:
        self.format = format
        self.text = ""
        self._sent = {"message": 0, "code": 0}

    def feed(self, chunk: str) -> list[tuple[str, str]]:
        self.text += chunk
        fields = self._fields()
        deltas = []
        for name in ("message", "code"):
            value = fields.get(name)
            if isinstance(value, str) and len(value) > self._sent[name]:
                deltas.append((name, value[self._sent[name] :]))
                self._sent[name] = len(value)
        return deltas

    def _fields(self) -> dict[str, Any]:
        if self.format == "text":
            message, code = split_fenced(self.text)
            if "```" in self.text:
                # Hold back what may be the start of the closing fence.
                return {"message": message, "code": code.rstrip("`").rstrip("\n")}
            return {"message": self.text.rstrip("`")}
        start = self.text.find("{")
        if start < 0:
            return {}
        try:
            value = pydantic_core.from_json(self.text[start:], allow_partial="trailing-strings")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
