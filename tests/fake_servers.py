"""The fake model servers (now ``py_agent.testing.servers``) and two helpers of py-agent's own tests.

Kept so the existing ``from fake_servers import ...`` lines keep working.
"""

from __future__ import annotations

import asyncio
from typing import Any

from py_agent.testing.servers import (  # noqa: F401 - re-exported
    DEFAULT_REPLY,
    FakeAnthropic,
    FakeGemini,
    FakeModelServer,
    FakeOpenAI,
    Fault,
    Received,
    free_port,
    pieces,
    reply_text,
    rough_tokens,
    sse,
)


def run(coro: Any, timeout: float = 5.0) -> Any:
    """Run a coroutine to completion on a fresh loop, bounded in time."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


class RecordedSleep:
    """An injectable ``sleep`` that returns at once and remembers the delays asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


# --- replies cut off at the output-token limit (until py_agent.testing.servers has a fault for it) ---

_CUT_OFF_REASONS = {"openai": "length", "anthropic": "max_tokens", "gemini": "MAX_TOKENS"}


def cut_off(server: FakeModelServer, *keeps: int) -> FakeModelServer:
    """Cut the server's next replies off after ``keep`` characters each, as a model that hit
    its output-token limit: the text stops there and the reply ends with the format's own
    signal (OpenAI ``finish_reason: "length"``, Anthropic ``stop_reason: "max_tokens"``,
    Gemini ``finishReason: "MAX_TOKENS"``). Each cut-off uses up its reply."""
    import collections
    import json

    queue: collections.deque[int] = server.__dict__.setdefault("_cut_offs", collections.deque())
    if "_cut_off_installed" not in server.__dict__:
        server.__dict__["_cut_off_installed"] = True
        reason = _CUT_OFF_REASONS[server.name]
        plain_events, plain_body = server.stream_events, server.complete_body

        def mark(data: Any) -> Any:
            if not isinstance(data, dict):
                return data
            for choice in data.get("choices") or []:  # OpenAI
                if choice.get("finish_reason"):
                    choice["finish_reason"] = reason
            if data.get("stop_reason") or (data.get("delta") or {}).get("stop_reason"):  # Anthropic
                (data["delta"] if data.get("type") == "message_delta" else data)["stop_reason"] = reason
            for candidate in data.get("candidates") or []:  # Gemini
                if candidate.get("finishReason"):
                    candidate["finishReason"] = reason
            return data

        def rewrite(event: bytes) -> bytes:
            newline = "\r\n" if b"\r\n" in event else "\n"
            lines = event.decode("utf-8").split(newline)
            name = next((line[7:] for line in lines if line.startswith("event: ")), None)
            data = next((line[6:] for line in lines if line.startswith("data: ")), "")
            try:
                parsed = json.loads(data)
            except ValueError:
                return event
            return sse(mark(parsed), name, newline)

        def stream_events(request: Received, text: str, reply: Any, chunk_size: int) -> list[bytes]:
            if not queue:
                return plain_events(request, text, reply, chunk_size)
            cut = text[: queue.popleft()]
            return [rewrite(e) for e in plain_events(request, cut, cut, chunk_size)]

        def complete_body(request: Received, text: str, reply: Any) -> dict[str, Any]:
            if not queue:
                return plain_body(request, text, reply)
            cut = text[: queue.popleft()]
            return mark(plain_body(request, cut, cut))

        server.stream_events = stream_events  # type: ignore[method-assign]
        server.complete_body = complete_body  # type: ignore[method-assign]
    queue.extend(keeps)
    return server
