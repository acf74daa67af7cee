"""Keeping the conversation inside the model's context window.

Before each request the loop estimates its size in tokens (characters times a ratio
learnt from the provider's own count of the previous request; 1 token per 3.5
characters until there is one). The input may use the window less the room the reply
needs (the output cap, at most a quarter of the window). When the request would pass
:data:`COMPACT_AT` of that, older steps are compacted down to :data:`TARGET` of it,
oldest first, in three tiers:

1. **Shorten old steps**: their code keeps its first lines, their output its first and
   last lines, the model's message its first sentence or so; the person's requests stay.
2. **Leave out old turns**: the oldest requests and all their steps are replaced by one
   note that lists what the person asked.
3. **Shorten recent steps** too, when a few huge outputs alone are too much.

The newest steps stay whole whenever they fit. A server that still says "too long"
(the window was unknown or the estimate low) triggers the same compaction with a
smaller window learnt from that refusal, and the request is sent once more.

Why truncation rather than a summary the model writes: what a step did lives on in the
database and in the namespace's variables, which the model can query again, so the
transcript only has to remind it what happened, not preserve the data. Truncation is
free (no extra request, which would itself have to fit the window that is already
full), deterministic (the person and the tests see exactly what was kept), and works
with small local models that write poor summaries: the models whose small windows need
it most.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .messages import AssistantMessage, Message, ResultMessage, UserMessage

#: The context window assumed for a model py-agent knows nothing about (tokens). A
#: server that refuses a longer request is understood (its error) and compaction follows.
DEFAULT_CONTEXT_WINDOW = 32_768
#: Local servers run a model with a window of their own, smaller than the model's: Ollama
#: 4k below 24 GiB of VRAM (and it cuts a longer prompt silently, so the estimate must
#: hold), llama.cpp's server and LM Studio 4k unless started with more. Pass
#: ``Agent(context_window=...)`` when the server has more.
SERVER_WINDOWS = {"ollama": 4096, "llamacpp": 4096, "lmstudio": 4096}
#: Compact when the request would pass this share of the input's room (window less reply)...
COMPACT_AT = 0.8
#: ...down to this share (so it does not happen again at the very next step).
TARGET = 0.5
#: Tokens per character until the provider has counted one request (code and JSON
#: tokenize at about 3.5 characters a token; over-estimating is the safe side).
DEFAULT_TOKENS_PER_CHAR = 1 / 3.5
#: The newest steps kept whole in tiers 1 and 2.
KEEP_STEPS = 3
#: Characters added per message for the wire format's framing.
FRAMING = 12

SHORTENED = "[… shortened to fit the context window]"
NOTE_START = "(Earlier in this conversation, left out to fit the context window, the person asked:"
NOTE_END = (
    "What those steps did is in the database and in your variables: look it up again if you need it.)"
)


@dataclass(frozen=True)
class Compaction:
    """The compacted messages and what was done (token counts are estimates)."""

    messages: list[Message]
    before: int
    after: int
    steps: int  # steps shortened
    turns: int  # earlier requests left out


def request_chars(system: str, messages: Sequence[Message]) -> int:
    """The size of a request in characters: the system prompt and every message as sent."""
    return len(system) + sum(len(m.model_text()) + FRAMING for m in messages)


def compact(
    messages: Sequence[Message],
    *,
    system_chars: int,
    budget: int,
    tokens_per_char: float = DEFAULT_TOKENS_PER_CHAR,
    keep_steps: int = KEEP_STEPS,
) -> Compaction | None:
    """Shorten ``messages`` until the request is at most ``budget`` tokens (or nothing more can go).

    Returns None when nothing could be shortened. The input is not changed.
    """
    work = list(messages)
    originals = {id(m) for m in messages}
    size = lambda: int((system_chars + sum(len(m.model_text()) + FRAMING for m in work)) * tokens_per_char)
    before = size()
    shortened = 0
    left_out = 0

    # Tier 1: old steps, oldest first; the newest `keep_steps` stay whole.
    replies = [i for i, m in enumerate(work) if isinstance(m, AssistantMessage)]
    protected_from = replies[-keep_steps] if len(replies) >= keep_steps else (replies[0] if replies else len(work))
    for index in replies:
        if size() <= budget:
            break
        if index >= protected_from:
            break
        if _shorten_step(work, index, code_lines=6, output_chars=600):
            shortened += 1

    # Tier 2: leave out whole old turns (never the current one).
    while size() > budget:
        starts = _turn_starts(work)
        first_real = next((s for s in starts if not _is_note(work[s])), None)
        if first_real is None or len(starts) < 2 or first_real >= starts[-1]:
            break
        following = next((s for s in starts if s > first_real), len(work))
        dropped = work[first_real:following]
        requests = [m.content for m in dropped if isinstance(m, UserMessage) and m.mode != "steer"]
        del work[first_real:following]
        left_out += len(requests) or 1
        _add_to_note(work, requests)

    # Tier 3: the recent steps too, harder, the newest last.
    if size() > budget:
        for index in [i for i, m in enumerate(work) if isinstance(m, AssistantMessage)]:
            if size() <= budget:
                break
            if _shorten_step(work, index, code_lines=3, output_chars=300, message_chars=200):
                shortened += 1
    if size() > budget:  # one huge request of the person's
        for index, message in enumerate(work):
            if isinstance(message, UserMessage) and len(message.content) > 4000:
                work[index] = UserMessage(_cut(message.content, 4000), message.mode)
                shortened += 1

    if not shortened and not left_out:
        return None
    # Steps shortened and then left out with their turn count once, as left out.
    steps = sum(1 for m in work if isinstance(m, AssistantMessage) and id(m) not in originals)
    return Compaction(work, before, size(), steps, left_out)


def _turn_starts(messages: Sequence[Message]) -> list[int]:
    """Indices where a turn starts: a request of the person's (not a steering message), or the note."""
    return [i for i, m in enumerate(messages) if (isinstance(m, UserMessage) and m.mode != "steer") or _is_note(m)]


def _is_note(message: Message) -> bool:
    return isinstance(message, ResultMessage) and message.content.startswith(NOTE_START)


def _add_to_note(work: list[Message], requests: list[str]) -> None:
    """Put the requests left out into the note at the start (made on first use)."""
    listed = [f"- {_cut(' '.join(r.split()), 200)}" for r in requests]
    if work and _is_note(work[0]):
        lines = work[0].content.splitlines()  # type: ignore[attr-defined]
        kept = [line for line in lines if line.startswith("- ")]
        listed = kept + listed
        work.pop(0)
    if len(listed) > 30:  # a very long conversation: the oldest requests go too
        listed = [f"- … and {len(listed) - 29} earlier requests"] + listed[-29:]
    work.insert(0, ResultMessage("\n".join([NOTE_START, *listed, NOTE_END])))


def _shorten_step(work: list[Message], index: int, *, code_lines: int, output_chars: int, message_chars: int = 300) -> bool:
    """Shorten the reply at ``index`` and the results after it; whether anything changed."""
    changed = False
    reply = work[index]
    assert isinstance(reply, AssistantMessage)
    code = _cut_lines(reply.code, code_lines)
    message = _cut(reply.message, message_chars)
    if code != reply.code or message != reply.message or reply.raw:
        before = len(reply.model_text())
        work[index] = AssistantMessage(message, code, reply.extensions)
        changed = len(work[index].model_text()) < before
        if not changed:
            work[index] = reply
    for j in range(index + 1, len(work)):
        result = work[j]
        if not isinstance(result, ResultMessage) or _is_note(result):
            break
        text = _cut_output(result.content, output_chars)
        if text != result.content:
            work[j] = ResultMessage(text)
            changed = True
    return changed


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit or SHORTENED in text:
        return text
    return f"{text[:limit].rstrip()} {SHORTENED}"


def _cut_lines(code: str, keep: int) -> str:
    lines = code.splitlines()
    if len(lines) <= keep + 1 or SHORTENED in code:
        return code if len(code) <= 120 * (keep + 1) or SHORTENED in code else _cut(code, 120 * keep)
    return "\n".join(lines[:keep] + [f"# {SHORTENED} ({len(lines) - keep} more lines)"])


def _cut_output(text: str, limit: int) -> str:
    """The first and last lines of an output, about ``limit`` characters in all."""
    if len(text) <= limit or SHORTENED in text:
        return text
    head, tail = text[: limit * 2 // 3], text[-(limit // 3) :]
    head = head.rsplit("\n", 1)[0] if "\n" in head else head
    tail = tail.split("\n", 1)[-1] if "\n" in tail else tail
    return f"{head}\n{SHORTENED} ({len(text) - len(head) - len(tail):,} characters left out)\n{tail}"


__all__ = ["COMPACT_AT", "DEFAULT_CONTEXT_WINDOW", "TARGET", "Compaction", "compact", "request_chars"]
