"""The model's reply: ``{message, code}`` plus output-extension fields.

Parsing never raises into the loop: a bad reply becomes :class:`MalformedReply`
with a sentence the model can act on. Streaming replies are read with a
partial-JSON parser so the UI can show ``message`` and ``code`` as they arrive.
"""

from __future__ import annotations

import json
import re
from json.decoder import scanstring as _scanstring
from collections.abc import Sequence
from typing import Any

import pydantic
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

    ``feed(chunk)`` returns the new text of each field since the last call. Work
    is linear in the size of the reply: each character is looked at a bounded
    number of times, by regular expressions and ``str.find`` rather than a
    Python loop, and only the unfinished tail of a token (an escape split
    between chunks, a key, a possible code fence) is kept between calls. (The
    reader used to re-parse the whole text on every chunk, which took seconds
    for a long reply streamed in small pieces.)

    The deltas are for showing the reply while it streams; :func:`parse_reply`
    reads the finished text and is the judge of what the reply says.
    """

    def __init__(self, format: str = "json") -> None:
        self.format = format
        self._reader: _JsonFields | _FencedFields = _JsonFields() if format == "json" else _FencedFields()
        self._chunks: list[str] = []
        self.size = 0

    @property
    def text(self) -> str:
        """Everything fed so far."""
        return "".join(self._chunks)

    def feed(self, chunk: str) -> list[tuple[str, str]]:
        if not chunk:
            return []
        self._chunks.append(chunk)
        self.size += len(chunk)
        return self._reader.feed(chunk)


Deltas = list[tuple[str, str]]

# A run of string content that can be decoded on its own: no quote, no unfinished escape.
_STRING_RUN = re.compile(r'(?:[^"\\]+|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*')
# The same, for strings that are skipped: any escape will do.
_SKIP_RUN = re.compile(r'(?:[^"\\]+|\\.)*', re.DOTALL)
_SPACE = re.compile(r"[ \t\r\n]*")
_SCALAR = re.compile(r"[^,}\]\s]*")
_NESTED = re.compile(r'["{}\[\]]')
_STREAMED_FIELDS = ("message", "code")
# The most text held back between chunks (an unfinished key, number or run of spaces); more
# than that is either sent on or ends the deltas, so a hostile reply cannot make reading quadratic.
_MAX_HELD = 256


def _decode_run(raw: str) -> str:
    """The text of a run of JSON string content (no quotes, only whole escapes)."""
    if "\\" not in raw:
        return raw
    return _scanstring(raw + '"', 0, False)[0]  # the json module's C scanner, without its wrapper


class _JsonFields:
    """Reads the top-level ``message`` and ``code`` strings of a JSON object as it streams.

    A small state machine over the unread tail ``self._buf``: before the object,
    at a key, after a key, at a value, inside a streamed string, or skipping
    another value (nested objects and arrays are skipped by depth). A malformed
    object stops the deltas; the finished reply is judged by :func:`parse_reply`.
    """

    def __init__(self) -> None:
        self._buf = ""
        self._state = "start"
        self._key = ""
        self._depth = 0  # nesting depth while skipping an object or array value
        self._in_skipped_string = False

    def feed(self, chunk: str) -> Deltas:
        if self._state == "field" and not self._buf and '"' not in chunk and "\\" not in chunk:
            return [(self._key, chunk)]  # the common case: more of a field, nothing to decode
        buf = self._buf + chunk if self._buf else chunk
        deltas: Deltas = []
        pos = self._run(buf, 0, deltas)
        self._buf = buf[pos:]
        return deltas

    def _run(self, buf: str, pos: int, deltas: Deltas) -> int:
        end = len(buf)
        while pos < end:
            state = self._state
            if state == "start":
                found = buf.find("{", pos)
                if found < 0:
                    return end
                pos, self._state = found + 1, "key"
            elif state == "key":  # expecting a key, a comma or the closing brace
                pos = _SPACE.match(buf, pos).end()  # type: ignore[union-attr]
                if pos == end:
                    return pos
                char = buf[pos]
                if char == ",":
                    pos += 1
                elif char == "}":
                    self._state = "done"
                    return end
                elif char == '"':
                    run = _SKIP_RUN.match(buf, pos + 1).end()  # type: ignore[union-attr]
                    if run == end or buf[run] == "\\":
                        if end - pos > _MAX_HELD:
                            self._state = "broken"  # no reply field has a name this long
                        return pos  # the key is not finished: wait for it
                    self._key = _decode_run(buf[pos + 1 : run])
                    pos, self._state = run + 1, "colon"
                else:
                    self._state = "broken"
            elif state == "colon":
                pos = _SPACE.match(buf, pos).end()  # type: ignore[union-attr]
                if pos == end:
                    return pos
                if buf[pos] != ":":
                    self._state = "broken"
                    continue
                pos, self._state = pos + 1, "value"
            elif state == "value":
                pos = _SPACE.match(buf, pos).end()  # type: ignore[union-attr]
                if pos == end:
                    return pos
                char = buf[pos]
                if char == '"':
                    self._state = "field" if self._key in _STREAMED_FIELDS else "skip_string"
                    pos += 1
                elif char in "{[":
                    self._state, self._depth, self._in_skipped_string = "skip_nested", 1, False
                    pos += 1
                else:
                    scalar = _SCALAR.match(buf, pos).end()  # type: ignore[union-attr]
                    if scalar == end:
                        if end - pos > _MAX_HELD:
                            self._state = "broken"
                        return pos  # a number or literal may go on in the next chunk
                    pos, self._state = scalar, "key"
            elif state == "field":
                pos = self._field(buf, pos, deltas)
                if self._state == "field":
                    return pos
            elif state == "skip_string":
                run = _SKIP_RUN.match(buf, pos).end()  # type: ignore[union-attr]
                if run == end or buf[run] == "\\":  # not finished, or an escape split at the end
                    return run
                pos, self._state = run + 1, "key"
            elif state == "skip_nested":
                pos = self._skip_nested(buf, pos)
                if self._state == "skip_nested":
                    return pos  # more of the nested value is still to come
            else:  # "done" or "broken": the rest says nothing more to stream
                return end
        return pos

    def _field(self, buf: str, pos: int, deltas: Deltas) -> int:
        end = len(buf)
        run = _STRING_RUN.match(buf, pos).end()  # type: ignore[union-attr]
        closed = run < end and buf[run] == '"'
        broken = run < end and not closed and (run + 6 <= end or buf[run + 1 : run + 2] not in ("u", ""))
        text = _decode_run(buf[pos:run]) if run > pos else ""
        if broken:  # an invalid escape: parse_reply will say so
            if text:
                deltas.append((self._key, text))
            self._state = "broken"
            return end
        if text and "\ud800" <= text[-1] <= "\udbff" and not closed:
            # The first half of a surrogate pair: wait for the second, or the pair is split.
            text, run = text[:-1], run - 6
        if text:
            deltas.append((self._key, text))
        if closed:
            self._state = "key"
            return run + 1
        return run

    def _skip_nested(self, buf: str, pos: int) -> int:
        end = len(buf)
        while pos < end:
            if self._in_skipped_string:
                run = _SKIP_RUN.match(buf, pos).end()  # type: ignore[union-attr]
                if run == end or buf[run] == "\\":
                    return run
                pos, self._in_skipped_string = run + 1, False
                continue
            found = _NESTED.search(buf, pos)
            if found is None:
                return end
            char, pos = found.group(), found.end()
            if char == '"':
                self._in_skipped_string = True
            elif char in "{[":
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth == 0:
                    self._state = "key"
                    return pos
        return pos


# A line that opens the code block (after the backticks), whole or still arriving.
_OPENER_LINE = re.compile(r"(?:python|py)?[ \t]*")
_OPENER_START = re.compile(r"(?:p(?:y(?:t(?:h(?:o(?:n)?)?)?)?)?)?[ \t]*")


class _FencedFields:
    """Reads a plain-text reply: prose, then the first ```python block (as :func:`split_fenced` does).

    Text that may be the start of a fence, and whitespace that may turn out to
    be the end of the message or the code, is held back until the next chunk
    decides what it is.
    """

    def __init__(self) -> None:
        self._buf = ""
        self._state = "message"
        self._started = False  # the first non-space character of the current field was sent

    def feed(self, chunk: str) -> Deltas:
        buf = self._buf + chunk if self._buf else chunk
        deltas: Deltas = []
        if self._state == "message":
            buf = self._message(buf, deltas)
        if self._state == "code":
            buf = self._code(buf, deltas)
        self._buf = buf if self._state != "done" else ""
        return deltas

    def _emit(self, name: str, text: str, deltas: Deltas) -> None:
        if not self._started:
            text = text.lstrip() if name == "message" else text.lstrip("\n")
            self._started = bool(text)
        if text:
            deltas.append((name, text))

    def _message(self, buf: str, deltas: Deltas) -> str:
        """Send the prose up to a possible fence; return what is left to read."""
        search = 0
        while True:
            fence = buf.find("```", search)
            if fence < 0:
                return self._send(buf, len(buf.rstrip("`")), deltas)  # hold back a partial "```"
            line_end = buf.find("\n", fence + 3)
            line = buf[fence + 3 : line_end if line_end >= 0 else len(buf)]
            if line_end >= 0 and _OPENER_LINE.fullmatch(line):
                self._emit("message", buf[:fence].rstrip(), deltas)
                self._state, self._started = "code", False
                return buf[line_end + 1 :]
            if line_end < 0 and len(line) <= 16 and _OPENER_START.fullmatch(line):
                return self._send(buf, fence, deltas)  # maybe an opening fence: wait for its line
            search = fence + 3  # backticks of some other block: they are prose

    def _send(self, buf: str, upto: int, deltas: Deltas) -> str:
        """Send ``buf[:upto]`` but for trailing spaces (they may end the message); return the rest."""
        text = buf[:upto].rstrip()
        if upto - len(text) > _MAX_HELD:
            text = buf[:upto]
        self._emit("message", text, deltas)
        return buf[len(text) :]

    def _code(self, buf: str, deltas: Deltas) -> str:
        close = buf.find("\n```")
        if close >= 0:
            self._emit("code", buf[:close].rstrip("\n"), deltas)
            self._state = "done"
            return ""
        keep = len(buf.rstrip("\n`"))  # newlines and backticks may be the closing fence
        if len(buf) - keep > _MAX_HELD:
            keep = len(buf) - 4
        self._emit("code", buf[:keep], deltas)
        return buf[keep:]
