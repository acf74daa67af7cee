"""An incremental parser for server-sent events (the WHATWG ``text/event-stream`` format).

Bytes go in as they arrive, in pieces split anywhere -- inside a line, between
the CR and LF of a line ending, or inside a multi-byte UTF-8 character -- and
complete events come out. Work is linear in the input: a long line that
arrives in many pieces is joined once, when its end is seen; lines are split
by ``str.split`` and ``data:`` lines (nearly all of them) are taken without a
function call, since a long reply streams as tens of thousands of events.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

@dataclass(frozen=True)
class SSEEvent:
    """One dispatched event. ``event`` is ``"message"`` unless the stream named it."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSETooLargeError(ValueError):
    """One event grew past the parser's ``max_event_chars``."""


class SSEParser:
    """Feed bytes with :meth:`feed`; call :meth:`finish` at the end of the stream.

    Following the specification, an event is dispatched at the blank line that
    ends it, and an unfinished event at the end of the stream is dropped;
    :attr:`incomplete` then tells that the stream stopped mid-event.
    """

    def __init__(self, max_event_chars: int = 64 * 1024 * 1024) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._max = max_event_chars
        self._line: list[str] = []  # pieces of the line not yet ended
        self._line_size = 0
        self._after_cr = False  # the last piece ended with CR: a leading LF belongs to it
        self._started = False
        self._data: list[str] = []
        self._data_size = 0
        self._event = ""
        self._last_id: str | None = None
        self._retry: int | None = None
        self.incomplete = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        return self._feed_text(self._decoder.decode(chunk))

    def finish(self) -> list[SSEEvent]:
        events = self._feed_text(self._decoder.decode(b"", final=True))
        self.incomplete = bool(self._line or self._data)
        self._line, self._line_size, self._data, self._data_size = [], 0, [], 0
        return events

    def _feed_text(self, text: str) -> list[SSEEvent]:
        if not text:
            return []
        if not self._started:
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        if self._after_cr:
            self._after_cr = False
            if text.startswith("\n"):
                text = text[1:]  # the LF of a CRLF split between two pieces
        if "\r" in text:
            # Every line ending becomes LF; a CR at the very end may be half of a CRLF.
            self._after_cr = text.endswith("\r")
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        rest = lines.pop()  # after the last line ending: the start of a line not yet ended
        if lines and self._line:
            lines[0] = "".join(self._line) + lines[0]
            self._line, self._line_size = [], 0
        events: list[SSEEvent] = []
        for line in lines:
            if line.startswith("data:"):  # nearly every line: handled here, without a call
                value = line[6:] if line.startswith("data: ") else line[5:]
                self._data.append(value)
                self._data_size += len(value) + 1
                if self._data_size > self._max:
                    raise SSETooLargeError(f"a server-sent event grew past {self._max} characters")
                continue
            event = self._process_line(line)
            if event is not None:
                events.append(event)
        if rest:
            self._line.append(rest)
            self._line_size += len(rest)
            if self._line_size + self._data_size > self._max:
                raise SSETooLargeError(f"a server-sent event grew past {self._max} characters")
        return events

    def _process_line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment (servers send these as keep-alives)
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._data_size += len(value) + 1
            if self._data_size > self._max:
                raise SSETooLargeError(f"a server-sent event grew past {self._max} characters")
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "retry":
            if value.isdigit():
                self._retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SSEEvent("\n".join(self._data), self._event or "message", self._last_id, self._retry)
        self._data, self._data_size, self._event = [], 0, ""
        return event


async def aiter_sse(chunks: AsyncIterable[bytes]) -> AsyncIterator[SSEEvent]:
    """Events from an async stream of bytes."""
    parser = SSEParser()
    async for chunk in chunks:
        for event in parser.feed(chunk):
            yield event
    for event in parser.finish():
        yield event
