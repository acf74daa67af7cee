"""Gemini generateContent / streamGenerateContent.

No Gemini SDK is installed, so the shapes are checked against the documented
REST format: request (``contents`` with ``user``/``model`` roles,
``systemInstruction``, ``generationConfig.responseMimeType`` +
``responseJsonSchema``, ``x-goog-api-key``), responses
(``GenerateContentResponse``: ``candidates[].content.parts[].text``,
``finishReason``, ``usageMetadata``), streams (``?alt=sse``, one response per
event, CRLF line ends) and errors (``{"error": {"code", "message", "status"}}``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from fake_servers import FakeGemini, Fault, RecordedSleep, run
from pydantic import BaseModel

from py_agent.providers import resolve
from py_agent.providers.base import ChatMessage, Completion, CompletionRequest, TextDelta, complete
from py_agent.providers.errors import (
    AuthenticationError,
    MissingApiKeyError,
    ModelNotFoundError,
    OverloadedError,
    RateLimitedError,
    RefusedError,
)
from py_agent.providers.gemini import GeminiProvider, openapi_schema
from py_agent.providers.retry import RetryPolicy
from py_agent.transports import ReplayTransport


class Book(BaseModel):
    title: str
    year: int | None = None


class Reply(BaseModel):
    message: str
    code: str
    books: list[Book] = []


SCHEMA = Reply.model_json_schema()
REQUEST = CompletionRequest(
    "You are a helpful agent.",
    (ChatMessage("user", "Add a book"), ChatMessage("assistant", '{"message": "ok", "code": ""}'), ChatMessage("user", "go")),
    SCHEMA,
)
REPLY = {"message": "Adding “Dune” — 日本 ✓", "code": "session.add(Book(title='Dune'))"}

cpython_only = pytest.mark.cpython_only


@pytest.fixture
def gemini_server() -> Iterator[FakeGemini]:
    with FakeGemini() as server:
        yield server


def make(server: FakeGemini, **options: Any) -> GeminiProvider:
    options.setdefault("retry", RetryPolicy(max_attempts=3, jitter=0))
    options.setdefault("sleep", RecordedSleep())
    return GeminiProvider("gemini-2.5-flash", api_key="test-key", base_url=server.base_url, **options)


def offline(**options: Any) -> GeminiProvider:
    options.setdefault("api_key", "k")
    return GeminiProvider("gemini-2.5-flash", transport=ReplayTransport({"exchanges": []}), **options)


# --- request shape (pure) ---------------------------------------------------------------


def test_request_follows_the_documented_shape() -> None:
    request = offline().build_request(REQUEST)
    assert request.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert request.headers["x-goog-api-key"] == "k" and request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["systemInstruction"] == {"parts": [{"text": "You are a helpful agent."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][0]["parts"] == [{"text": "Add a book"}]
    assert body["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": SCHEMA,
        "maxOutputTokens": 16384,  # Gemini 2.5 Flash thinks: the larger default cap
        "temperature": 0.2,
    }
    assert "key=" not in request.url  # the key travels in a header, never in the URL


def test_non_streaming_url_and_options() -> None:
    p = offline(generation_config={"temperature": 0})
    request = p.build_request(replace(REQUEST, stream=False, max_output_tokens=256))
    assert request.url.endswith("/v1beta/models/gemini-2.5-flash:generateContent")
    assert request.json()["generationConfig"]["maxOutputTokens"] == 256
    assert request.json()["generationConfig"]["temperature"] == 0


def test_modes() -> None:
    old = offline(structured="response_schema").build_request(REQUEST).json()["generationConfig"]
    assert old["responseSchema"]["type"] == "OBJECT" and "responseJsonSchema" not in old
    plain = offline(structured="json").build_request(REQUEST).json()
    assert plain["generationConfig"]["responseMimeType"] == "application/json"
    assert not {"responseSchema", "responseJsonSchema"} & set(plain["generationConfig"])
    assert "JSON schema" in plain["systemInstruction"]["parts"][0]["text"]
    text = offline(structured="text").build_request(REQUEST).json()
    assert set(text["generationConfig"]) == {"maxOutputTokens", "temperature"}
    assert "fenced block" in text["systemInstruction"]["parts"][0]["text"]


def test_openapi_schema_conversion() -> None:
    converted = openapi_schema(SCHEMA)
    assert converted["type"] == "OBJECT" and converted["required"] == ["message", "code"]
    assert converted["propertyOrdering"] == ["message", "code", "books"]
    book = converted["properties"]["books"]["items"]
    assert book["type"] == "OBJECT" and book["properties"]["year"] == {"type": "INTEGER", "nullable": True, "title": "Year"}
    assert "$ref" not in json.dumps(converted) and "$defs" not in converted and "default" not in json.dumps(converted)


def test_browser_mode_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "env-key")
    p = resolve("gemini:gemini-2.5-flash", transport=ReplayTransport({"exchanges": []}))
    assert p.build_request(REQUEST).headers["x-goog-api-key"] == "env-key"
    browser = resolve("gemini:gemini-2.5-flash", browser=True, transport=ReplayTransport({"exchanges": []}))
    request = browser.build_request(REQUEST)
    assert "x-goog-api-key" not in request.headers and request.to_json()["auth"] == {"header": "x-goog-api-key"}
    monkeypatch.delenv("GEMINI_API_KEY")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(MissingApiKeyError) as caught:
        resolve("gemini:gemini-2.5-flash", transport=ReplayTransport({"exchanges": []}))
    assert "GEMINI_API_KEY" in caught.value.hint


# --- responses in the documented shape (replayed, pure) ----------------------------------------

# A stream as the API sends it: CRLF line ends, usage in every event, a thought part
# (thinking models), and an empty last part carrying a thought signature.
DOCUMENTED_STREAM = [
    {"candidates": [{"content": {"role": "model", "parts": [{"text": "Thinking about books", "thought": True}]}}],
     "usageMetadata": {"promptTokenCount": 40, "totalTokenCount": 40}, "modelVersion": "gemini-2.5-flash", "responseId": "r1"},
    {"candidates": [{"content": {"role": "model", "parts": [{"text": '{"message": "Hi", '}]}, "index": 0}],
     "usageMetadata": {"promptTokenCount": 40, "totalTokenCount": 40}, "modelVersion": "gemini-2.5-flash", "responseId": "r1"},
    {"candidates": [{"content": {"role": "model", "parts": [{"text": '"code": ""}'}, {"text": "", "thoughtSignature": "c2ln"}]},
                     "finishReason": "STOP", "index": 0}],
     "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 9, "thoughtsTokenCount": 5, "totalTokenCount": 54},
     "modelVersion": "gemini-2.5-flash", "responseId": "r1"},
]


def replayed(events: list[dict[str, Any]] | None = None, *, status: int = 200, body: Any = None) -> GeminiProvider:
    if body is not None:
        response = {"status": status, "headers": {"content-type": "application/json; charset=UTF-8"}, "body": json.dumps(body)}
    else:
        chunks = [f"data: {json.dumps(e)}\r\n\r\n" for e in events or []]
        response = {"status": status, "headers": {"content-type": "text/event-stream"}, "chunks": chunks}
    transport = ReplayTransport({"exchanges": [{"request": {"method": "POST"}, "response": response}]})
    return GeminiProvider("gemini-2.5-flash", api_key="k", transport=transport, retry=RetryPolicy(max_attempts=1))


def test_documented_stream_skips_thoughts_and_counts_them() -> None:
    final = run(complete(replayed(DOCUMENTED_STREAM), REQUEST))
    assert final.text == '{"message": "Hi", "code": ""}'
    assert final.finish_reason == "STOP" and final.usage.input_tokens == 40 and final.usage.output_tokens == 14


def test_documented_body() -> None:
    body = {"candidates": [{"content": {"role": "model", "parts": [{"text": '{"message": "Hi", "code": ""}'}]},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 7, "totalTokenCount": 10}}
    final = run(complete(replayed(body=body), replace(REQUEST, stream=False)))
    assert json.loads(final.text) == {"message": "Hi", "code": ""} and final.usage.output_tokens == 7


def test_blocked_prompt_is_a_refusal() -> None:
    body = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}}
    with pytest.raises(RefusedError):
        run(complete(replayed(body=body), replace(REQUEST, stream=False)))


def test_stream_without_finish_reason_is_interrupted() -> None:
    from py_agent.providers.errors import StreamInterruptedError

    with pytest.raises(StreamInterruptedError):
        run(complete(replayed(DOCUMENTED_STREAM[:2]), REQUEST))


def gemini_error(code: int, message: str, status: str) -> dict[str, Any]:
    return {"code": code, "message": message, "status": status}


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (400, gemini_error(400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT"), AuthenticationError),
        (404, gemini_error(404, "models/gemini-9 is not found for API version v1beta", "NOT_FOUND"), ModelNotFoundError),
        (429, gemini_error(429, "Resource has been exhausted (e.g. check quota).", "RESOURCE_EXHAUSTED"), RateLimitedError),
        (503, gemini_error(503, "The model is overloaded. Please try again later.", "UNAVAILABLE"), OverloadedError),
    ],
)
def test_documented_errors(status: int, error: dict[str, Any], expected: type) -> None:
    with pytest.raises(expected) as caught:
        run(complete(replayed(status=status, body={"error": error}), REQUEST))
    assert caught.value.status == status and caught.value.hint


# --- against the fake server ---------------------------------------------------------------------


@cpython_only
def test_streams_from_the_fake(gemini_server: FakeGemini) -> None:
    gemini_server.reply(REPLY)

    async def collect() -> list[Any]:
        return [item async for item in make(gemini_server).stream(REQUEST)]

    items = run(collect())
    deltas = "".join(i.text for i in items if isinstance(i, TextDelta))
    final = items[-1]
    assert isinstance(final, Completion) and json.loads(deltas) == REPLY and final.text == deltas
    assert final.model == "gemini:gemini-2.5-flash" and final.finish_reason == "STOP" and final.usage.output_tokens > 0
    sent = gemini_server.requests[-1]
    assert sent.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent" and sent.query == {"alt": ["sse"]}
    assert sent.headers["x-goog-api-key"] == "test-key"


@cpython_only
def test_complete_from_the_fake(gemini_server: FakeGemini) -> None:
    gemini_server.reply(REPLY)
    final = run(complete(make(gemini_server), replace(REQUEST, stream=False)))
    assert json.loads(final.text) == REPLY


@cpython_only
def test_rate_limit_with_retry_info_is_honoured(gemini_server: FakeGemini) -> None:
    body = {"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED",
                      "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}]}}
    gemini_server.fault(Fault.http(429, body=json.dumps(body).encode()))
    gemini_server.reply(REPLY)
    sleep = RecordedSleep()
    final = run(complete(make(gemini_server, sleep=sleep), REQUEST))
    assert json.loads(final.text) == REPLY and sleep.delays == [2.0]


@cpython_only
def test_typed_errors_from_the_fake(gemini_server: FakeGemini) -> None:
    with pytest.raises(AuthenticationError) as caught:
        run(complete(GeminiProvider("gemini-2.5-flash", api_key="bad", base_url=gemini_server.base_url), REQUEST))
    assert "GEMINI_API_KEY" in caught.value.hint
    gemini_server.models = {"gemini-2.5-flash"}
    with pytest.raises(ModelNotFoundError):
        run(complete(GeminiProvider("gemini-9", api_key="test-key", base_url=gemini_server.base_url), REQUEST))
