"""Offline providers for tests, demos and docs: no network, real streaming shape.

``ScriptedProvider`` replays a list of replies in order; ``FunctionProvider``
computes each reply from the request (like pydantic-ai's ``FunctionModel``), so a
test can assert on exactly what the model was shown.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from .base import Completion, CompletionRequest, ReplyFormat, StreamItem, TextDelta, Usage

Reply = str | Mapping[str, Any]
ReplyFunction = Callable[[CompletionRequest], Reply]


def _as_text(reply: Reply) -> str:
    return reply if isinstance(reply, str) else json.dumps(dict(reply), ensure_ascii=False)


def _rough_tokens(text: str) -> int:
    # Good enough for usage accounting in tests: about four characters a token.
    return max(1, len(text) // 4)


class FunctionProvider:
    """A provider whose replies come from ``function(request)``.

    A reply may be a mapping (sent as JSON) or a raw string (sent verbatim,
    which lets tests feed malformed replies). ``chunk_size`` splits the text
    into deltas so streaming code paths run exactly as with a real model.
    """

    def __init__(
        self,
        function: ReplyFunction,
        *,
        model: str = "function:test",
        chunk_size: int = 16,
        format: ReplyFormat = "json",
        delay: float = 0.0,
    ) -> None:
        self.model = model
        self._function = function
        self._chunk_size = max(1, chunk_size)
        self._format = format
        self._delay = delay
        self.requests: list[CompletionRequest] = []

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamItem]:
        self.requests.append(request)
        text = _as_text(self._function(request))
        for start in range(0, len(text), self._chunk_size):
            if self._delay:
                await asyncio.sleep(self._delay)
            yield TextDelta(text[start : start + self._chunk_size], self._format)
        prompt = request.system + "".join(m.content for m in request.messages)
        yield Completion(
            text=text,
            model=self.model,
            usage=Usage(_rough_tokens(prompt), _rough_tokens(text)),
            format=self._format,
            finish_reason="stop",
        )


class ScriptedProvider(FunctionProvider):
    """Replays ``replies`` in order, one per completion request.

    When the script runs out it replies with an empty ``code``, which ends the
    turn, so a short script can never make the loop spin.
    """

    def __init__(self, replies: Iterable[Reply], *, model: str = "scripted:demo", **options: Any) -> None:
        self.replies: list[Reply] = list(replies)
        self._next = 0
        super().__init__(self._reply, model=model, **options)

    def _reply(self, request: CompletionRequest) -> Reply:
        if self._next >= len(self.replies):
            return {"message": "(the scripted model has no more replies)", "code": ""}
        reply = self.replies[self._next]
        self._next += 1
        return reply

    @property
    def remaining(self) -> int:
        return len(self.replies) - self._next
