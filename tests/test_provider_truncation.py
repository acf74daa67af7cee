"""Replies that are not whole, in each wire format, against the loopback fake servers: cut off
at the output-token limit (OpenAI ``finish_reason: "length"``, Anthropic ``stop_reason:
"max_tokens"``, Gemini ``finishReason: "MAX_TOKENS"``) or longer than the reply-size cap.

None of them is read as a malformed reply: :func:`py_agent.ask.ask` ends with a ``CutShort``
whose ``problem`` asks the model for a shorter reply, or, when nothing had arrived yet, sends
the request once more with twice the limit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fake_servers import FakeAnthropic, FakeGemini, FakeModelServer, FakeOpenAI, Fault, RecordedSleep, cut_off, run

from py_agent import events as ev
from py_agent.ask import CutShort, ask
from py_agent.providers import resolve
from py_agent.providers.base import ChatMessage, Completion, CompletionRequest, complete
from py_agent.providers.retry import RetryPolicy

pytestmark = pytest.mark.cpython_only

SCHEMA = {"type": "object", "properties": {"message": {"type": "string"}, "code": {"type": "string"}}}
REQUEST = CompletionRequest("You are a helpful agent.", (ChatMessage("user", "Add 500 books"),), SCHEMA)
LONG = {"message": "Adding them one by one.", "code": "\n".join(f"session.add(Book(title='Book {i}'))" for i in range(60))}
SERVERS = {"openai": FakeOpenAI, "anthropic": FakeAnthropic, "gemini": FakeGemini}
MODEL_IDS = {"openai": "openai:gpt-4.1-mini", "anthropic": "anthropic:claude-sonnet-4-5", "gemini": "gemini:gemini-2.5-flash"}
DEFAULT_CAP = {"openai": 4096, "anthropic": 4096, "gemini": 16384}  # Gemini 2.5 Flash thinks
WORDS = {"openai": "length", "anthropic": "max_tokens", "gemini": "MAX_TOKENS"}


@pytest.fixture(params=list(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[FakeModelServer]:
    with SERVERS[request.param]() as fake:
        yield fake


def provider_for(server: FakeModelServer) -> Any:
    return resolve(
        MODEL_IDS[server.name], api_key="test-key", base_url=server.base_url,
        retry=RetryPolicy(max_attempts=1), sleep=RecordedSleep(),
    )


def cap_sent(server: FakeModelServer, index: int) -> int:
    body = server.requests[index].body
    if server.name == "gemini":
        return int(body["generationConfig"]["maxOutputTokens"])
    return int(body.get("max_completion_tokens") or body["max_tokens"])


async def asked(provider: Any, **options: Any) -> list[Any]:
    return [item async for item in ask(provider, REQUEST, 7, **options)]


def test_each_format_reports_a_cut_off_reply(server: FakeModelServer) -> None:
    cut_off(server, 30)
    server.reply(LONG)
    final = run(complete(provider_for(server), REQUEST))
    assert final.truncated and final.finish_reason == WORDS[server.name]
    assert final.text == json.dumps(LONG)[:30]


def test_a_cut_off_reply_becomes_feedback_not_a_malformed_reply(server: FakeModelServer) -> None:
    cut_off(server, 60)
    server.reply(LONG)
    items = run(asked(provider_for(server)))
    final = items[-1]
    assert isinstance(final, CutShort) and final.truncated
    assert final.reason == "max_tokens" and final.limit == DEFAULT_CAP[server.name]
    # What showed while it streamed stays shown; the model is told what happened and what to do.
    assert any(isinstance(i, ev.MessageDelta) for i in items)
    assert final.problem == (
        f"Your reply was cut off at the limit of {DEFAULT_CAP[server.name]:,} output tokens (60 characters "
        "arrived), so none of it was run. Reply again, shorter: keep the code short, print summaries "
        "instead of data, and split big jobs over several steps."
    )
    notice = [i for i in items if isinstance(i, ev.ReplyTruncated)]
    assert [(n.reason, n.limit, n.chars, n.message, n.retry_with) for n in notice] == [
        ("max_tokens", DEFAULT_CAP[server.name], 60, final.problem, None)
    ]
    assert notice[0].to_dict()["type"] == "reply_truncated"
    assert len(server.requests) == 1  # text had shown: asked to shorten, not retried
    assert final.usage.output_tokens > 0 and final.cost is not None and final.cost > 0


def test_a_reply_cut_off_before_anything_showed_is_asked_again_with_twice_the_room(server: FakeModelServer) -> None:
    cut_off(server, 0)  # e.g. a reasoning model spent the whole budget thinking
    server.reply(LONG, LONG)
    items = run(asked(provider_for(server)))
    final = items[-1]
    assert type(final) is Completion and json.loads(final.text) == LONG
    cap = DEFAULT_CAP[server.name]
    assert [cap_sent(server, 0), cap_sent(server, 1)] == [cap, 2 * cap]
    notice = [i for i in items if isinstance(i, ev.ReplyTruncated)]
    assert [(n.retry_with, n.message) for n in notice] == [(2 * cap, "")]
    # Both requests were paid for: the usage (and cost) of the first is counted in.
    second_alone = run(complete(provider_for(server), REQUEST)).usage
    assert final.usage.input_tokens > second_alone.input_tokens


def test_cut_off_twice_before_anything_showed_gives_up_with_advice(server: FakeModelServer) -> None:
    cut_off(server, 0, 0)
    server.reply(LONG, LONG)
    final = run(asked(provider_for(server)))[-1]
    assert isinstance(final, CutShort) and len(server.requests) == 2
    assert final.limit == 2 * DEFAULT_CAP[server.name]
    assert final.problem.startswith("Your reply was cut off before any of it arrived")


def test_a_too_long_reply_is_stopped_at_the_cap(server: FakeModelServer) -> None:
    server.fault(Fault.big(3_000_000))
    items = run(asked(provider_for(server), max_reply_chars=50_000))
    final = items[-1]
    assert isinstance(final, CutShort) and final.reason == "too_long" and final.limit == 50_000
    assert 50_000 < len(final.text) <= 50_000 + 65_536 + 100  # stopped at the chunk that crossed it
    assert final.problem.startswith(f"Your reply was stopped after {len(final.text):,} characters: the limit is 50,000")
    assert "print summaries" in final.problem
    # No usage report came: the estimate keeps the cost from reading as zero.
    assert final.usage.output_tokens == len(final.text) // 4 and final.cost and final.cost > 0
    shown = sum(len(i.text) for i in items if isinstance(i, ev.MessageDelta))
    assert shown <= 50_000


def test_the_excerpt_kept_in_the_conversation_is_short() -> None:
    cut = CutShort(text="x" * 10_000, model="openai:gpt-4.1-mini", limit=4096)
    assert cut.excerpt() == "x" * 600 + "… [cut: 9,400 more characters]"
    assert CutShort(text="short", model="m").excerpt() == "short"
