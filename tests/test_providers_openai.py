"""OpenAI Chat Completions and compatible servers: the fake speaks the real format (the
official SDK says so), then py-agent's provider against the same fake."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from fake_servers import FakeOpenAI, RecordedSleep, run
from pydantic import BaseModel

from py_agent.errors import ConfigurationError
from py_agent.providers import resolve
from py_agent.providers.base import ChatMessage, Completion, CompletionRequest, TextDelta, Usage, complete
from py_agent.providers.errors import (
    AuthenticationError,
    ContextTooLongError,
    MissingApiKeyError,
    ModelNotFoundError,
)
from py_agent.providers.openai import OpenAIProvider, default_mode, schema_name, strict_json_schema
from py_agent.providers.retry import RetryPolicy
from py_agent.transports import ReplayTransport


class Reply(BaseModel):
    message: str
    code: str


class Extended(BaseModel):
    message: str
    code: str = ""
    confidence: float | None = None


SCHEMA = Reply.model_json_schema()
REQUEST = CompletionRequest(
    system="You are a helpful agent.",
    messages=(ChatMessage("user", "Add a book"), ChatMessage("assistant", "ok"), ChatMessage("user", "go on")),
    reply_schema=SCHEMA,
)
REPLY = {"message": "Adding “Dune” — 日本 ✓", "code": "session.add(Book(title='Dune'))"}

cpython_only = pytest.mark.cpython_only


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def make(server: FakeOpenAI, **options: Any) -> OpenAIProvider:
    options.setdefault("retry", RetryPolicy(max_attempts=2, jitter=0))
    options.setdefault("sleep", RecordedSleep())
    return OpenAIProvider("gpt-4.1-mini", api_key="test-key", base_url=server.base_url, **options)


async def collect(provider: Any, request: CompletionRequest = REQUEST) -> list[Any]:
    return [item async for item in provider.stream(request)]


# --- the official SDK against the fake --------------------------------------------


@cpython_only
def test_sdk_plain_completion(openai_server: FakeOpenAI) -> None:
    import openai

    openai_server.reply("Hello there")
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="test-key", max_retries=0)
    result = client.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}])
    assert result.choices[0].message.content == "Hello there"
    assert result.choices[0].finish_reason == "stop"
    assert result.usage is not None and result.usage.completion_tokens >= 1


@cpython_only
def test_sdk_streaming_with_usage(openai_server: FakeOpenAI) -> None:
    import openai

    openai_server.reply(REPLY)
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="test-key", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4.1-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == REPLY
    assert chunks[-1].choices == [] and chunks[-1].usage is not None


@cpython_only
def test_sdk_structured_output_matches_what_py_agent_sends(openai_server: FakeOpenAI) -> None:
    import openai

    openai_server.reply(REPLY, REPLY)
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="test-key", max_retries=0)
    parsed = client.chat.completions.parse(
        model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}], response_format=Reply
    )
    assert parsed.choices[0].message.parsed == Reply(**REPLY)
    sdk_format = openai_server.requests[-1].body["response_format"]

    run(complete(make(openai_server), replace(REQUEST, reply_name="Reply")))
    ours = openai_server.requests[-1].body["response_format"]
    assert ours == sdk_format  # the same strict json_schema request as the SDK's


@cpython_only
def test_sdk_stream_helper_and_error_shape(openai_server: FakeOpenAI) -> None:
    import openai

    openai_server.reply(REPLY)
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="test-key", max_retries=0)
    with client.chat.completions.stream(
        model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}], response_format=Reply
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.parsed == Reply(**REPLY)

    bad = openai.OpenAI(base_url=openai_server.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        bad.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "invalid_api_key"


# --- py-agent's provider against the fake ------------------------------------------


@cpython_only
def test_streams_deltas_then_completion(openai_server: FakeOpenAI) -> None:
    openai_server.reply(REPLY)
    items = run(collect(make(openai_server)))
    deltas = [i.text for i in items if isinstance(i, TextDelta)]
    final = items[-1]
    assert len(deltas) > 3 and isinstance(final, Completion)
    assert json.loads("".join(deltas)) == REPLY and final.text == "".join(deltas)
    assert final.model == "openai:gpt-4.1-mini" and final.format == "json" and final.finish_reason == "stop"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0

    sent = openai_server.requests[-1]
    assert sent.headers["authorization"] == "Bearer test-key"
    assert sent.body["stream"] is True and sent.body["stream_options"] == {"include_usage": True}
    assert [m["role"] for m in sent.body["messages"]] == ["system", "user", "assistant", "user"]
    assert sent.body["response_format"]["json_schema"]["strict"] is True


@cpython_only
def test_non_streaming_request(openai_server: FakeOpenAI) -> None:
    openai_server.reply(REPLY)
    items = run(collect(make(openai_server), replace(REQUEST, stream=False, max_output_tokens=500)))
    assert [type(i) for i in items] == [TextDelta, Completion]
    assert json.loads(items[-1].text) == REPLY
    sent = openai_server.requests[-1].body
    assert sent["stream"] is False and "stream_options" not in sent and sent["max_tokens"] == 500


@cpython_only
def test_fallback_ladder_steps_down_and_remembers(openai_server: FakeOpenAI) -> None:
    from fake_servers import Fault

    openai_server.fault(
        Fault.http(400, "response_format json_schema is not supported by this model"),
        Fault.http(400, "Invalid value for response_format.type: json_object"),
    )
    openai_server.reply("I will add it.\n```python\nsession.add(Book(title='Dune'))\n```", "Done.")
    provider = make(openai_server)
    final = run(complete(provider, REQUEST))
    assert final.format == "text" and "```python" in final.text
    kinds = [r.body.get("response_format", {}).get("type") for r in openai_server.requests]
    assert kinds == ["json_schema", "json_object", None]
    assert "fenced block" in openai_server.requests[-1].body["messages"][0]["content"]
    # The step down is remembered for the next request.
    run(complete(provider, REQUEST))
    assert "response_format" not in openai_server.requests[-1].body


@cpython_only
def test_pinned_mode_does_not_step_down(openai_server: FakeOpenAI) -> None:
    from fake_servers import Fault

    from py_agent.providers.errors import BadRequestError

    openai_server.fault(Fault.http(400, "response_format json_schema is not supported"))
    with pytest.raises(BadRequestError):
        run(complete(make(openai_server, structured="json_schema"), REQUEST))


@cpython_only
def test_json_object_mode_puts_the_schema_in_the_prompt(openai_server: FakeOpenAI) -> None:
    openai_server.reply(REPLY)
    final = run(complete(make(openai_server, structured="json_object"), REQUEST))
    sent = openai_server.requests[-1].body
    assert sent["response_format"] == {"type": "json_object"}
    assert "JSON" in sent["messages"][0]["content"] and '"message"' in sent["messages"][0]["content"]
    assert final.format == "json"


@cpython_only
def test_stream_options_rejection_is_dropped(openai_server: FakeOpenAI) -> None:
    from fake_servers import Fault

    openai_server.fault(Fault.http(400, "Unrecognized request argument supplied: stream_options"))
    openai_server.reply(REPLY)
    final = run(complete(make(openai_server), REQUEST))
    assert json.loads(final.text) == REPLY
    assert "stream_options" not in openai_server.requests[-1].body


@cpython_only
def test_typed_errors(openai_server: FakeOpenAI) -> None:
    from fake_servers import Fault

    with pytest.raises(AuthenticationError) as bad_key:
        run(complete(OpenAIProvider("gpt-4.1-mini", api_key="wrong", base_url=openai_server.base_url), REQUEST))
    assert bad_key.value.status == 401 and "OPENAI_API_KEY" in bad_key.value.hint

    openai_server.models = {"gpt-4.1-mini"}
    with pytest.raises(ModelNotFoundError) as unknown:
        run(complete(OpenAIProvider("gpt-9", api_key="test-key", base_url=openai_server.base_url), REQUEST))
    assert "gpt-9" in unknown.value.message

    openai_server.fault(
        Fault.http(400, "This model's maximum context length is 128000 tokens. However, your messages resulted in 200000 tokens.")
    )
    with pytest.raises(ContextTooLongError) as too_long:
        run(complete(make(openai_server), REQUEST))
    assert "new conversation" in too_long.value.hint


# --- configuration: ids, env vars, browser mode (no network) -----------------------------


def test_env_vars_are_honoured_and_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://proxy.invalid/v1")
    replay = ReplayTransport({"exchanges": []})
    p = resolve("openai:gpt-4.1-mini", transport=replay)
    assert p.api_key == "env-key" and p.base_url == "http://proxy.invalid/v1"
    p = resolve("openai:gpt-4.1-mini", api_key="arg-key", base_url="http://other.invalid/v1/", transport=replay)
    assert p.api_key == "arg-key" and p.base_url == "http://other.invalid/v1"
    assert p.build_request(REQUEST).url == "http://other.invalid/v1/chat/completions"


def test_missing_key_says_which_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(MissingApiKeyError) as caught:
        resolve("openai:gpt-4.1-mini")
    assert "OPENAI_API_KEY" in caught.value.hint
    assert isinstance(caught.value, ConfigurationError)


def test_browser_mode_needs_no_key_and_sends_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "must-not-be-read-in-the-browser")
    p = resolve("openai:gpt-4.1-mini", browser=True, transport=ReplayTransport({"exchanges": []}))
    request = p.build_request(REQUEST)
    assert "authorization" not in request.headers
    assert request.to_json()["auth"] == {"header": "authorization", "scheme": "Bearer"}


def test_key_never_appears_in_the_posted_json() -> None:
    p = resolve("openai:gpt-4.1-mini", api_key="sk-secret", transport=ReplayTransport({"exchanges": []}))
    request = p.build_request(REQUEST)
    assert request.headers["authorization"] == "Bearer sk-secret"
    assert "sk-secret" not in json.dumps(request.to_json())


def test_compatible_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "openai-key-not-for-third-parties")
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    replay = ReplayTransport({"exchanges": []})
    with pytest.raises(ConfigurationError):
        resolve("openai-compatible:llama3", transport=replay)
    p = resolve("openai-compatible:llama3", base_url="http://gpu.local:8000/v1", transport=replay)
    assert p.model == "openai-compatible:llama3" and p.api_key is None
    request = p.build_request(REQUEST)
    assert "authorization" not in request.headers
    assert request.to_json()["auth"] == {"header": "authorization", "scheme": "Bearer", "required": False}
    ollama = resolve("ollama:llama3.2", transport=replay)
    assert ollama.base_url == "http://localhost:11434/v1" and ollama.label == "Ollama"
    assert ollama.build_request(REQUEST).json()["model"] == "llama3.2"
    assert resolve("lmstudio:qwen", transport=replay).base_url == "http://localhost:1234/v1"
    with pytest.raises(MissingApiKeyError) as caught:
        resolve("openrouter:anthropic/claude-sonnet-4.5", transport=replay)
    assert "OPENROUTER_API_KEY" in caught.value.hint


def test_max_tokens_field_depends_on_the_server() -> None:
    replay = ReplayTransport({"exchanges": []})
    request = replace(REQUEST, max_output_tokens=100)
    official = OpenAIProvider("gpt-4.1", api_key="k", transport=replay).build_request(request).json()
    local = resolve("ollama:llama3.2", transport=replay).build_request(request).json()
    assert official["max_completion_tokens"] == 100 and local["max_tokens"] == 100


def test_default_mode_per_model() -> None:
    assert default_mode("gpt-4.1-mini") == "json_schema"
    assert default_mode("gpt-4o") == "json_schema"
    assert default_mode("gpt-3.5-turbo") == "json_object"
    assert default_mode("gpt-4-turbo-2024-04-09") == "json_object"
    assert default_mode("gpt-4") == "json_object"


def test_strict_schema_closes_objects_and_requires_everything() -> None:
    class Book(BaseModel):
        title: str
        year: int | None = None

    class Wrapper(BaseModel):
        """A reply with nested models."""

        message: str
        books: list[Book] = []
        main: Book | None = None

    schema = strict_json_schema(Wrapper.model_json_schema())
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["message", "books", "main"]
    book = schema["$defs"]["Book"]
    assert book["additionalProperties"] is False and book["required"] == ["title", "year"]
    assert "default" not in json.dumps(schema)
    original = Wrapper.model_json_schema()
    assert "additionalProperties" not in original  # the input is not modified


def test_strict_schema_inlines_refs_with_siblings() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/A", "description": "the a"}, "b": {"allOf": [{"$ref": "#/$defs/A"}]}},
        "$defs": {"A": {"type": "object", "properties": {"x": {"type": "string"}}}},
    }
    strict = strict_json_schema(schema)
    assert strict["properties"]["a"]["description"] == "the a"
    assert strict["properties"]["a"]["additionalProperties"] is False and "$ref" not in strict["properties"]["a"]
    assert strict["properties"]["b"] == {"$ref": "#/$defs/A"}


def test_schema_name_is_sanitised() -> None:
    assert schema_name("my reply!") == "my_reply_"
    assert schema_name("") == "reply"
    assert len(schema_name("x" * 100)) == 64


def test_usage_adds_up() -> None:
    assert Usage(1, 2) + Usage(3, 4) == Usage(4, 6)
