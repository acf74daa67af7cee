"""@llm_func over a real wire format (the loopback fake OpenAI server), and a sync model
function called from code that already runs an event loop (CPython only: sockets, threads)."""

from __future__ import annotations

import asyncio
import json

import pytest
from fake_servers import FakeAnthropic, FakeOpenAI, cut_off

from py_agent.llm_func import llm_func

pytestmark = pytest.mark.cpython_only


def test_a_model_function_over_the_openai_wire_format() -> None:
    with FakeOpenAI(api_key=None) as server:
        server.reply({"message": "Counting vowels.", "code": "result = sum(c in 'aeiou' for c in word)"})

        @llm_func(model="openai-compatible:qwen2.5-coder", provider_options={"base_url": server.base_url})
        def vowels(word: str) -> int:
            """How many vowels (a, e, i, o, u) `word` has."""

        assert vowels("education") == 5
        sent = server.requests[0].body
        assert sent["response_format"]["type"] == "json_schema" and sent["max_tokens"] == 4096
        assert "def vowels(word: str) -> int:" in sent["messages"][0]["content"]
        assert vowels.last_call.cost is None  # no price is known for a bare compatible server


def test_a_cut_off_reply_is_retried_with_feedback() -> None:
    with FakeAnthropic() as server:
        answer = {"message": "Doubling.", "code": "result = n * 2"}
        cut_off(server, 20)
        server.reply(answer, answer)

        @llm_func(model="anthropic:claude-haiku-4-5", provider_options={"base_url": server.base_url, "api_key": "test-key"})
        def double(n: int) -> int:
            """Twice n."""

        assert double(21) == 42
        first = double.last_call.attempts[0]
        assert first.failure.kind == "cut_short" and "cut off at the limit of 4,096 output tokens" in first.feedback
        # Only an excerpt of the cut-off reply went back into the conversation.
        retry = server.requests[1].body["messages"]
        assert retry[1] == {"role": "assistant", "content": json.dumps(answer)[:20]}


def test_a_sync_model_function_called_inside_a_running_event_loop() -> None:
    with FakeOpenAI(api_key=None) as server:
        server.reply({"message": "ok", "code": "result = text.upper()"})

        @llm_func(model="openai-compatible:m", provider_options={"base_url": server.base_url})
        def shout(text: str) -> str:
            """`text` in capitals."""

        async def notebook_cell() -> str:
            return shout("hi")  # a notebook's loop is running: the call gets its own, in a thread

        assert asyncio.run(notebook_cell()) == "HI"
