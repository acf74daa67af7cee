"""The transport seam: request/response types, replay and recording of cassettes, and the
CPython HTTP transport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_servers import FakeOpenAI, Fault, free_port, run

from py_agent.providers.base import ChatMessage, CompletionRequest, TextDelta, complete
from py_agent.providers.errors import EndpointUnreachableError, StreamInterruptedError
from py_agent.providers.openai import OpenAIProvider
from py_agent.providers.retry import NO_RETRIES
from py_agent.transports import (
    BEARER,
    AuthHeader,
    Cassette,
    CassetteMismatchError,
    Headers,
    HttpRequest,
    HttpResponse,
    HttpTransport,
    RecordingTransport,
    ReplayTransport,
    Timeouts,
    Transport,
)

REQUEST = CompletionRequest("sys", (ChatMessage("user", "hi"),), {"type": "object", "properties": {}})
CASSETTES = Path(__file__).parent / "cassettes"
cpython_only = pytest.mark.cpython_only


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def post(url: str = "https://api.example/v1/chat/completions", body: Any = None, **kwargs: Any) -> HttpRequest:
    data = json.dumps(body if body is not None else {"model": "m", "stream": True}).encode()
    return HttpRequest("POST", url, {"content-type": "application/json"}, data, **kwargs)


# --- types ------------------------------------------------------------------------------------


def test_headers_are_case_insensitive() -> None:
    headers = Headers([("Content-Type", "text/event-stream"), ("Set-Cookie", "a=1"), ("set-cookie", "b=2")])
    assert headers["content-type"] == headers["CONTENT-TYPE"] == "text/event-stream"
    assert "Content-type" in headers and headers.get("missing") is None
    assert headers["Set-Cookie"] == "a=1, b=2" and len(headers) == 2


def test_request_json_never_carries_the_key() -> None:
    request = HttpRequest(
        "POST",
        "https://api.openai.com/v1/chat/completions",
        {"content-type": "application/json", "authorization": "Bearer sk-secret"},
        b'{"model": "gpt"}',
        auth=BEARER,
        stream=True,
        timeouts=Timeouts(connect=1, read=2, total=3),
    )
    data = request.to_json()
    assert "sk-secret" not in json.dumps(data)
    assert data == {
        "method": "POST",
        "url": "https://api.openai.com/v1/chat/completions",
        "headers": {"content-type": "application/json"},
        "body": '{"model": "gpt"}',
        "auth": {"header": "authorization", "scheme": "Bearer"},
        "stream": True,
        "timeouts": {"connect": 1, "read": 2, "total": 3},
    }
    again = HttpRequest.from_json(data)
    assert again == request.without_secrets() and again.json() == {"model": "gpt"}
    assert AuthHeader("x-api-key").value("k") == "k" and BEARER.value("k") == "Bearer k"


def test_binary_bodies_survive_json() -> None:
    request = HttpRequest("POST", "http://x", body=b"\xff\x00")
    assert HttpRequest.from_json(request.to_json()).body == b"\xff\x00"


def test_response_reading_and_closing() -> None:
    closed: list[bool] = []

    async def on_close() -> None:
        closed.append(True)

    async def scenario() -> None:
        response = HttpResponse(200, {"Content-Type": "application/json"}, [b"ab", b"cd", b"ef"], on_close=on_close)
        assert response.ok and response.headers["content-type"] == "application/json"
        assert await response.aread(limit=3) == b"abc"
        await response.aclose()
        await response.aclose()
        assert closed == [True] and response.closed
        async with HttpResponse(404, {}, [b"x"]) as other:
            assert not other.ok and await other.aread() == b"x"

    asyncio.run(scenario())


def test_transports_satisfy_the_protocol() -> None:
    assert isinstance(HttpTransport(), Transport)
    assert isinstance(ReplayTransport({"exchanges": []}), Transport)
    assert isinstance(RecordingTransport(ReplayTransport({"exchanges": []})), Transport)


# --- replay --------------------------------------------------------------------------------------


def test_replay_matches_method_url_and_body_subset() -> None:
    transport = ReplayTransport(
        {
            "exchanges": [
                {"request": {"url": "/v1/chat/completions", "body": {"model": "other"}}, "response": {"body": "A"}},
                {"request": {"url": "/v1/chat/completions", "body": {"model": "m"}}, "response": {"body": "B"}},
                {"request": {"method": "POST"}, "response": {"status": 201, "body": {"any": 1}}},
            ]
        }
    )

    async def scenario() -> list[tuple[int, bytes]]:
        out = []
        for _ in range(2):
            response = await transport.send(post())
            out.append((response.status, await response.aread()))
        return out

    assert asyncio.run(scenario()) == [(200, b"B"), (201, b'{"any": 1}')]
    assert transport.remaining == 1 and len(transport.requests) == 2
    with pytest.raises(CassetteMismatchError) as caught:
        asyncio.run(transport.send(post(body={"model": "m"})))
    assert "1 of 3 unplayed" in caught.value.message


def test_replay_plays_recorded_chunks_and_failures() -> None:
    transport = ReplayTransport(
        {
            "exchanges": [
                {"request": {}, "error": {"type": "EndpointUnreachableError", "message": "refused", "hint": "start it"}},
                {
                    "request": {},
                    "response": {
                        "chunks": ["ab", {"base64": "w6k="}],
                        "error": {"type": "StreamInterruptedError", "message": "reset"},
                    },
                },
                {"request": {}, "response": {"body": "abcdefg", "chunk_size": 3}},
            ]
        }
    )

    async def scenario() -> None:
        with pytest.raises(EndpointUnreachableError) as caught:
            await transport.send(post())
        assert caught.value.hint == "start it"
        response = await transport.send(post())
        seen = []
        with pytest.raises(StreamInterruptedError):
            async for chunk in response.aiter_bytes():
                seen.append(chunk)
        assert seen == [b"ab", "é".encode()]
        response = await transport.send(post())
        assert [c async for c in response.aiter_bytes()] == [b"abc", b"def", b"g"]

    asyncio.run(scenario())


def test_shipped_cassette_replays_a_streamed_completion() -> None:
    transport = ReplayTransport(CASSETTES / "openai_stream.json")
    provider = OpenAIProvider("gpt-4.1-mini", api_key="k", transport=transport)

    async def collect() -> list[Any]:
        return [item async for item in provider.stream(REQUEST)]

    items = asyncio.run(collect())
    assert len([i for i in items if isinstance(i, TextDelta)]) > 1
    assert json.loads(items[-1].text)["message"] == "Hello from a cassette ✓"
    assert items[-1].usage.input_tokens == 12


# --- recording ----------------------------------------------------------------------------------------


def test_recorder_writes_a_cassette_that_replays_the_same(tmp_path: Path) -> None:
    source = ReplayTransport(CASSETTES / "openai_stream.json")
    path = tmp_path / "recorded.json"
    recorder = RecordingTransport(source, path, strip_origin=True)
    first = asyncio.run(complete(OpenAIProvider("gpt-4.1-mini", api_key="sk-secret", transport=recorder), REQUEST))

    saved = path.read_text()
    assert "sk-secret" not in saved
    cassette = Cassette.load(path)
    exchange = cassette.exchanges[0]
    assert exchange["request"]["url"] == "/v1/chat/completions" and exchange["request"]["body"]["model"] == "gpt-4.1-mini"
    assert exchange["response"]["headers"] == {"content-type": "text/event-stream"}

    replay = ReplayTransport(cassette)
    # The output cap's field depends on the server (api.openai.com: max_completion_tokens);
    # pinned, the request body is the same as the recorded one.
    elsewhere = OpenAIProvider(
        "gpt-4.1-mini", api_key="k", base_url="http://elsewhere:9/v1", transport=replay, max_tokens_field="max_completion_tokens"
    )
    again = asyncio.run(complete(elsewhere, REQUEST))
    assert again == first


def test_recorder_records_failures() -> None:
    down = ReplayTransport({"exchanges": [{"request": {}, "error": {"type": "EndpointUnreachableError", "message": "refused"}}]})
    recorder = RecordingTransport(down)
    with pytest.raises(EndpointUnreachableError):
        asyncio.run(recorder.send(post()))
    assert recorder.cassette.exchanges[0]["error"]["type"] == "EndpointUnreachableError"


@cpython_only
def test_record_against_a_real_server_then_replay(openai_server: FakeOpenAI, tmp_path: Path) -> None:
    openai_server.reply({"message": "réel ✓", "code": ""})
    path = tmp_path / "live.json"
    recorder = RecordingTransport(HttpTransport(), path, strip_origin=True)
    provider = OpenAIProvider(
        "gpt-4.1-mini", api_key="test-key", base_url=openai_server.base_url, transport=recorder, max_tokens_field="max_completion_tokens"
    )
    live = run(complete(provider, REQUEST))
    replayed = run(complete(OpenAIProvider("gpt-4.1-mini", api_key="x", transport=ReplayTransport(path)), REQUEST))
    assert replayed == live and json.loads(live.text)["message"] == "réel ✓"


# --- the CPython HTTP transport ---------------------------------------------------------------------


@cpython_only
def test_http_transport_streams_and_reports_status(openai_server: FakeOpenAI) -> None:
    openai_server.reply("hello")
    transport = HttpTransport()

    async def scenario() -> None:
        request = HttpRequest(
            "POST",
            openai_server.base_url + "/chat/completions",
            {"content-type": "application/json", "authorization": "Bearer test-key"},
            b'{"model": "m", "stream": true}',
        )
        response = await transport.send(request)
        assert response.status == 200 and response.headers["Content-Type"] == "text/event-stream"
        body = await response.aread()
        await response.aclose()
        assert body.endswith(b"data: [DONE]\n\n")
        missing = await transport.send(post(openai_server.base_url + "/nowhere"))
        assert missing.status == 404
        await missing.aclose()
        await transport.aclose()

    run(scenario())
    # A second event loop gets its own connection pool.
    openai_server.reply("again")
    run(complete(OpenAIProvider("m", api_key="test-key", base_url=openai_server.base_url, transport=transport), REQUEST))


@cpython_only
def test_http_transport_unreachable() -> None:
    port = free_port()
    with pytest.raises(EndpointUnreachableError) as caught:
        run(HttpTransport().send(post(f"http://127.0.0.1:{port}/v1/chat/completions")))
    assert f"http://127.0.0.1:{port}" in caught.value.hint and caught.value.retryable


@cpython_only
def test_http_transport_close_drops_the_connection(openai_server: FakeOpenAI) -> None:
    openai_server.fault(Fault.hang_mid_stream(after=2))

    async def scenario() -> None:
        provider = OpenAIProvider("m", api_key="test-key", base_url=openai_server.base_url, retry=NO_RETRIES)
        response = await HttpTransport().send(provider.build_request(REQUEST))
        chunks = response.aiter_bytes()
        assert await chunks.__anext__()
        await response.aclose()

    run(scenario())
    assert openai_server.dropped.wait(2.0)


def test_replayed_completion_needs_no_event_loop() -> None:
    # Inside Pyodide the sync run() steps coroutines by hand, without an event loop.
    provider = OpenAIProvider("gpt-4.1-mini", api_key="k", transport=ReplayTransport(CASSETTES / "openai_stream.json"))
    coroutine = complete(provider, REQUEST)
    try:
        while True:
            assert coroutine.send(None) is None, "the replay waited on real I/O"
    except StopIteration as done:
        final = done.value
    assert json.loads(final.text)["message"] == "Hello from a cassette ✓"
