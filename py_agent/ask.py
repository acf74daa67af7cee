"""Asking the model for one step: stream its reply and turn it into deltas of the reply's fields.

The loop (``loop.py``) calls :func:`ask` once per step. What arrives is published as
:class:`~py_agent.events.MessageDelta` / :class:`~py_agent.events.CodeDelta` events while it
streams; the finished :class:`~py_agent.providers.base.Completion` comes last.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from . import events as ev
from .providers.base import Completion, CompletionRequest, Provider, TextDelta
from .reply import ReplyStream


async def ask(
    provider: Provider,
    request: CompletionRequest,
    step: int,
    *,
    aborted: Callable[[], bool] = lambda: False,
) -> AsyncIterator[ev.Event | Completion]:
    """Stream the reply to ``request``: field deltas as they arrive, then the Completion.

    Stops reading (and closes the model's stream) as soon as ``aborted()`` is true; then
    no Completion is yielded.
    """
    reader = ReplyStream()
    stream = provider.stream(request)
    try:
        async for item in stream:
            if aborted():
                break
            if isinstance(item, TextDelta):
                for name, text in reader.feed(item.text):
                    yield (ev.MessageDelta if name == "message" else ev.CodeDelta)(step, text)
            elif isinstance(item, Completion):
                yield item
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
