"""Asking the model for one step: stream its reply and turn it into deltas of the reply's fields.

The loop (``loop.py``) calls :func:`ask` once per step. What arrives is published as
:class:`~py_agent.events.MessageDelta` / :class:`~py_agent.events.CodeDelta` events while it
streams; the finished :class:`~py_agent.providers.base.Completion` comes last, with its
``cost`` filled in from :mod:`py_agent.pricing`.

A reply that is not whole is never read as a (malformed) reply. The last item is then a
:class:`CutShort` (a Completion), preceded by a :class:`~py_agent.events.ReplyTruncated` event:

* **too long**: the reply ran past ``max_reply_chars`` characters. Reading stops there (the
  request is cancelled), so a runaway or hostile reply costs a bounded amount of time and
  memory before validation;
* **cut off**: the server stopped it at the output-token limit (OpenAI and compatible
  ``finish_reason: "length"``, Anthropic ``stop_reason: "max_tokens"``, Gemini ``MAX_TOKENS``).
  If nothing of the reply had arrived yet (a reasoning model spent the budget thinking), the
  request is sent once more with twice the limit, which costs the person nothing to see;
  otherwise the model is asked for a shorter reply rather than given more room: a reply that
  long is nearly always data written out or a model rambling, and more room would only make
  the next request overflow a small context window.

Either way the loop feeds :attr:`CutShort.problem` back to the model, keeps only
:meth:`CutShort.excerpt` of the text in the conversation, and goes on to the next step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal

from . import events as ev
from . import pricing
from .providers.base import Completion, CompletionRequest, Provider, TextDelta, Usage
from .reply import ReplyStream

#: The longest reply read, in characters (about 12 000 tokens: three times the default
#: output cap). A step's code is rarely a tenth of it; data belongs in the database.
DEFAULT_MAX_REPLY_CHARS = 50_000

#: Retrying a reply cut off before any of it arrived asks for at most this many tokens.
MAX_RAISED_OUTPUT_TOKENS = 65_536

EXCERPT_CHARS = 600


@dataclass(frozen=True)
class CutShort(Completion):
    """A reply that is not whole: none of it is read or run.

    ``reason`` is ``"too_long"`` (longer than ``limit`` characters; reading stopped) or
    ``"max_tokens"`` (the server cut it off at ``limit`` output tokens; ``limit`` is
    ``None`` when the provider does not say what its limit is). ``text`` is what arrived.
    ``usage`` is the server's count, or an estimate (4 characters a token) when reading
    stopped before the server could send one.
    """

    reason: Literal["too_long", "max_tokens"] = "max_tokens"
    limit: int | None = None

    @property
    def truncated(self) -> bool:
        return True  # whichever the reason, the reply is not whole

    @property
    def problem(self) -> str:
        """What the model is told (it never sees the whole text again)."""
        size = f"{len(self.text):,}"
        if self.reason == "too_long":
            return (
                f"Your reply was stopped after {size} characters: the limit is {self.limit:,} characters, "
                "so none of it was run. Reply again, much shorter: keep the code short, print summaries "
                "(counts, a few sample rows) instead of data, and split big jobs over several steps."
            )
        limit = f"the limit of {self.limit:,} output tokens" if self.limit else "the output-token limit"
        if not self.text.strip():
            return (
                f"Your reply was cut off before any of it arrived: {limit} was used up, most likely by "
                "thinking. Think less and answer directly, with short code."
            )
        return (
            f"Your reply was cut off at {limit} ({size} characters arrived), so none of it was run. "
            "Reply again, shorter: keep the code short, print summaries instead of data, and split "
            "big jobs over several steps."
        )

    def excerpt(self, size: int = EXCERPT_CHARS) -> str:
        """The start of the text, to keep in the conversation instead of all of it."""
        if len(self.text) <= size:
            return self.text
        return f"{self.text[:size]}… [cut: {len(self.text) - size:,} more characters]"


async def ask(
    provider: Provider,
    request: CompletionRequest,
    step: int,
    *,
    aborted: Callable[[], bool] = lambda: False,
    max_reply_chars: int = DEFAULT_MAX_REPLY_CHARS,
) -> AsyncIterator[ev.Event | Completion]:
    """Stream the reply to ``request``: field deltas as they arrive, then the Completion.

    The Completion is a :class:`CutShort` when the reply is not whole (see the module).
    Stops reading (and closes the model's stream) as soon as ``aborted()`` is true; then
    no Completion is yielded.
    """
    spent = Usage()  # by an earlier attempt of this step (a reply cut off before it began)
    retried = False
    while True:
        reader: ReplyStream | None = None
        streamed = False
        size = 0
        final: Completion | None = None
        stream = provider.stream(request)
        try:
            async for item in stream:
                if aborted():
                    return
                if isinstance(item, TextDelta):
                    reader = reader or ReplyStream(item.format)
                    size += len(item.text)
                    if size > max_reply_chars:
                        final = _too_long(provider, request, reader, item.text, max_reply_chars)
                        break
                    for name, text in reader.feed(item.text):
                        streamed = True
                        yield (ev.MessageDelta if name == "message" else ev.CodeDelta)(step, text)
                elif isinstance(item, Completion):
                    final = item
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        if final is None:
            return
        final = dataclasses.replace(final, usage=final.usage + spent)
        if isinstance(final, CutShort) or not final.truncated:
            break
        limit = output_limit(provider, request)
        if not streamed and not retried and limit and limit < MAX_RAISED_OUTPUT_TOKENS:
            # Cut off before anything showed: ask once more with more room.
            raised = min(limit * 2, MAX_RAISED_OUTPUT_TOKENS)
            yield ev.ReplyTruncated(step, "max_tokens", limit, len(final.text), retry_with=raised)
            spent, retried = final.usage, True
            request = dataclasses.replace(request, max_output_tokens=raised)
            continue
        final = CutShort(**_fields(final), reason="max_tokens", limit=limit)
        break
    final = dataclasses.replace(final, cost=pricing.cost(final.model, final.usage))
    if isinstance(final, CutShort):
        yield ev.ReplyTruncated(step, final.reason, final.limit, len(final.text), final.problem)
    yield final


def _fields(completion: Completion) -> dict[str, object]:
    return {f.name: getattr(completion, f.name) for f in dataclasses.fields(Completion)}


def output_limit(provider: Provider, request: CompletionRequest) -> int | None:
    """The output-token cap ``request`` will be sent with (None: the server's default)."""
    limit = getattr(provider, "output_limit", None)
    return limit(request) if callable(limit) else request.max_output_tokens


def _too_long(provider: Provider, request: CompletionRequest, reader: ReplyStream, last: str, limit: int) -> CutShort:
    # The server's usage report never came: estimate it, so the cost is not silently zero.
    text = reader.text + last
    prompt = len(request.system) + sum(len(m.content) for m in request.messages)
    return CutShort(
        text=text,
        model=provider.model,
        usage=Usage(prompt // 4, len(text) // 4),
        format="text" if reader.format == "text" else "json",
        finish_reason="too_long",
        reason="too_long",
        limit=limit,
    )
