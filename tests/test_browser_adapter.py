"""The pure parts of the browser runtime, on CPython: the postMessage transport, the
worker's command driver and the demo model. The page is simulated by answering the
messages the runtime posts, exactly as web/app/shim.js and agent.js do.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from py_agent.browser import BrowserTransport, Runtime, ShimRefusedError, check_database, snapshot_bytes
from py_agent.demo.model import choose_reply, load_recording
from py_agent.providers import errors as provider_errors
from py_agent.providers.base import ChatMessage
from py_agent.transports.base import BEARER, HttpRequest


class Page:
    """Collects what the worker posts."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.data: dict[int, bytes] = {}

    def __call__(self, message: dict[str, Any], data: bytes | None) -> None:
        json.dumps(message)  # everything posted must be JSON
        if data is not None:
            self.data[len(self.messages)] = data
        self.messages.append(message)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]


async def until(condition, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not condition():
        if loop.time() > end:
            raise AssertionError("timed out")
        await asyncio.sleep(0.005)


# --- transport ------------------------------------------------------------------------


def test_transport_posts_requests_without_the_key_and_streams_the_answer() -> None:
    async def main() -> None:
        page = Page()
        transport = BrowserTransport(page)
        request = HttpRequest("POST", "https://api.example.com/v1/chat", {"content-type": "application/json", "authorization": "Bearer sk-secret"}, b"{}", auth=BEARER, stream=True)
        sending = asyncio.ensure_future(transport.send(request))
        await until(lambda: page.messages)
        posted = page.messages[0]
        assert posted["type"] == "fetch" and posted["url"] == request.url
        assert "sk-secret" not in json.dumps(posted)
        assert posted["auth"] == {"header": "authorization", "scheme": "Bearer"}
        transport.receive({"type": "fetch_start", "id": posted["id"], "status": 200, "headers": {"content-type": "text/event-stream"}})
        response = await sending
        assert response.status == 200 and response.headers["Content-Type"] == "text/event-stream"
        transport.receive({"type": "fetch_chunk", "id": posted["id"]}, b"data: 1\n\n")
        transport.receive({"type": "fetch_chunk", "id": posted["id"]}, b"data: 2\n\n")
        transport.receive({"type": "fetch_end", "id": posted["id"]})
        assert await response.aread() == b"data: 1\n\ndata: 2\n\n"
        await response.aclose()
        assert transport.in_flight == 0
        assert page.of("fetch_abort") == []  # finished requests are not aborted

    asyncio.run(main())


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("cors", provider_errors.CorsRefusedError),
        ("unreachable", provider_errors.EndpointUnreachableError),
        ("refused", ShimRefusedError),
        ("missing_key", provider_errors.MissingApiKeyError),
        ("something else", provider_errors.ProviderError),
    ],
)
def test_transport_turns_fetch_errors_into_typed_errors(kind: str, error: type) -> None:
    async def main() -> None:
        page = Page()
        transport = BrowserTransport(page)
        sending = asyncio.ensure_future(transport.send(HttpRequest("POST", "https://x.test/")))
        await until(lambda: page.messages)
        transport.receive({"type": "fetch_error", "id": page.messages[0]["id"], "kind": kind, "message": "no luck", "hint": "try this"})
        with pytest.raises(error) as raised:
            await sending
        assert raised.value.message == "no luck" and raised.value.hint == "try this"

    asyncio.run(main())


def test_a_body_that_breaks_off_is_a_stream_interruption() -> None:
    async def main() -> None:
        page = Page()
        transport = BrowserTransport(page)
        sending = asyncio.ensure_future(transport.send(HttpRequest("POST", "https://x.test/")))
        await until(lambda: page.messages)
        fid = page.messages[0]["id"]
        transport.receive({"type": "fetch_start", "id": fid, "status": 200, "headers": {}})
        response = await sending
        transport.receive({"type": "fetch_chunk", "id": fid}, b"partial")
        transport.receive({"type": "fetch_error", "id": fid, "kind": "unreachable", "message": "reset"})
        with pytest.raises(provider_errors.StreamInterruptedError):
            await response.aread()

    asyncio.run(main())


def test_closing_early_or_cancelling_aborts_the_fetch() -> None:
    async def main() -> None:
        page = Page()
        transport = BrowserTransport(page)
        # Cancelled while waiting for the headers.
        waiting = asyncio.ensure_future(transport.send(HttpRequest("POST", "https://x.test/")))
        await until(lambda: page.messages)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert page.of("fetch_abort") == [{"type": "fetch_abort", "id": page.messages[0]["id"]}]
        # Closed in the middle of the body.
        sending = asyncio.ensure_future(transport.send(HttpRequest("POST", "https://x.test/")))
        await until(lambda: len(page.of("fetch")) == 2)
        fid = page.of("fetch")[1]["id"]
        transport.receive({"type": "fetch_start", "id": fid, "status": 200, "headers": {}})
        response = await sending
        await response.aclose()
        assert page.of("fetch_abort")[-1] == {"type": "fetch_abort", "id": fid}
        transport.receive({"type": "fetch_chunk", "id": fid}, b"late")  # ignored, no error
        assert transport.in_flight == 0

    asyncio.run(main())


# --- database files ------------------------------------------------------------------------


def test_check_database(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.executemany("INSERT INTO t VALUES (?)", [(str(i) * 50,) for i in range(2000)])
    good = snapshot_bytes(str(path))
    assert check_database(good) == []
    assert "not an SQLite database" in check_database(b"hello")[0]
    broken = bytearray(good)
    for i in range(4096, len(broken) - 4096, 7):
        broken[i] = (i * 31) & 0xFF
    problems = check_database(bytes(broken))
    assert len(problems) == 1 and problems[0].startswith("its integrity check failed (") and len(problems[0]) < 160


# --- the command driver, with a simulated page -------------------------------------------------


def make_runtime(tmp_path: Path) -> tuple[Runtime, Page]:
    page = Page()
    runtime = Runtime(page, db_path=str(tmp_path / "data" / "app.sqlite"))
    return runtime, page


def open_demo(runtime: Runtime, page: Page, **message: Any) -> None:
    runtime.receive({"type": "open", "schema": "py_agent.demo", **message})
    runtime.receive({"type": "configure", "provider": "demo", "request": 1})
    assert page.of("ready"), page.messages


def test_open_seeds_and_a_demo_turn_commits_and_snapshots(tmp_path: Path) -> None:
    async def main() -> None:
        runtime, page = make_runtime(tmp_path)
        open_demo(runtime, page)
        assert page.of("ready")[0]["tables"]["authors"] == 10
        assert page.of("snapshot")[0]["reason"] == "seed"
        assert page.of("configured") == [{"type": "configured", "request": 1, "model": "demo"}]
        runtime.receive({"type": "send", "text": "Add Tolkien and two of his books"})
        await until(lambda: page.of("turn_end"))
        assert page.of("turn_end")[0]["reason"] == "done"
        commit = next(i for i, m in enumerate(page.messages) if m["type"] == "snapshot" and m["reason"] == "commit")
        with sqlite3.connect(":memory:") as conn:
            conn.deserialize(page.data[commit])
            assert conn.execute("SELECT count(*) FROM authors").fetchone()[0] == 11
        # The last message is the conversation, for persistence.
        assert page.messages[-1]["type"] == "snapshot" and page.messages[-1]["reason"] == "turn"
        assert [m["kind"] for m in page.messages[-1]["conversation"]["messages"]] == ["user", "assistant", "result", "assistant"]

    asyncio.run(main())


def test_reopen_restores_the_file_and_the_conversation(tmp_path: Path) -> None:
    async def main() -> None:
        runtime, page = make_runtime(tmp_path)
        open_demo(runtime, page)
        runtime.receive({"type": "send", "text": "Add Tolkien and two of his books"})
        await until(lambda: page.of("turn_end"))
        saved_db = page.data[max(i for i, m in enumerate(page.messages) if m["type"] == "snapshot" and i in page.data)]
        conversation = page.messages[-1]["conversation"]

        again, page2 = make_runtime(tmp_path / "second")
        again.receive({"type": "open", "schema": "py_agent.demo", "conversation": conversation}, saved_db)
        ready = page2.of("ready")[0]
        assert ready["restored"] is True and ready["tables"]["authors"] == 11 and ready["messages"] == 4
        assert page2.of("snapshot") == []  # nothing seeded, nothing to save

    asyncio.run(main())


def test_a_broken_saved_file_is_replaced_by_a_fresh_one_with_a_message(tmp_path: Path) -> None:
    runtime, page = make_runtime(tmp_path)
    runtime.receive({"type": "open", "schema": "py_agent.demo"}, b"garbage")
    assert page.of("error")[0]["kind"] == "restore"
    assert page.of("ready")[0]["restored"] is False and page.of("ready")[0]["tables"]["authors"] == 10


def test_import_export_and_refusals(tmp_path: Path) -> None:
    async def main() -> None:
        runtime, page = make_runtime(tmp_path)
        open_demo(runtime, page)
        runtime.receive({"type": "export", "request": 7})
        exported = page.of("exported")[0]
        data = page.data[page.messages.index(exported)]
        assert exported["request"] == 7 and data.startswith(b"SQLite format 3\x00")

        runtime.receive({"type": "import", "request": 8}, b"not a database")
        error = page.of("error")[-1]
        assert error["request"] == 8 and "not imported" in error["message"] and "unchanged" in error["hint"]

        with sqlite3.connect(":memory:") as conn:
            conn.deserialize(data)
            conn.execute("DELETE FROM order_items")
            conn.commit()
            smaller = conn.serialize()
        runtime.receive({"type": "import", "request": 9}, smaller)
        assert page.of("imported")[0]["tables"]["order_items"] == 0
        assert page.of("snapshot")[-1]["reason"] == "import"

        runtime.receive({"type": "reset", "request": 10})
        await until(lambda: page.of("reset_done"))
        assert page.of("reset_done")[0]["tables"]["order_items"] == 23
        assert page.of("snapshot")[-1]["conversation"]["messages"] == []

    asyncio.run(main())


def test_bad_commands_are_reported_not_raised(tmp_path: Path) -> None:
    runtime, page = make_runtime(tmp_path)
    runtime.receive({"type": "send", "text": "too early"})
    assert "before the database is open" in page.of("error")[-1]["message"]
    runtime.receive({"type": "nonsense"})
    assert page.of("error")[-1]["kind"] == "protocol"
    runtime.receive({"type": "debug", "code": "result = 1"})  # test hooks are off by default
    assert page.of("error")[-1]["kind"] == "protocol" and not page.of("debug_result")
    open_demo(runtime, page)
    runtime.receive({"type": "configure", "provider": "openai", "model": "", "request": 2})
    assert page.of("error")[-1]["request"] == 2 and "no model" in page.of("error")[-1]["message"]


def test_a_turn_through_the_transport_against_a_simulated_page(tmp_path: Path) -> None:
    """The whole browser path minus the browser: provider -> fetch message -> SSE bytes back."""

    def sse(reply: dict[str, str]) -> bytes:
        text = json.dumps(reply)
        events = [{"choices": [{"index": 0, "delta": {"content": text[i : i + 10]}}]} for i in range(0, len(text), 10)]
        return b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events) + b"data: [DONE]\n\n"

    replies = [{"message": "Counting.", "code": "print(session.scalar(select(func.count()).select_from(Tag)))"}, {"message": "Five tags.", "code": ""}]

    async def main() -> None:
        runtime, page = make_runtime(tmp_path)
        runtime.receive({"type": "open", "schema": "py_agent.demo"})
        runtime.receive({"type": "configure", "provider": "openai-compatible", "model": "m", "baseUrl": "http://127.0.0.1:9/v1"})
        runtime.receive({"type": "send", "text": "How many tags?"})
        answered = 0
        while not page.of("turn_end"):
            fetches = page.of("fetch")
            if len(fetches) > answered:
                request = fetches[answered]
                assert request["url"] == "http://127.0.0.1:9/v1/chat/completions" and request["auth"]["header"] == "authorization"
                fid = request["id"]
                runtime.receive({"type": "fetch_start", "id": fid, "status": 200, "headers": {"content-type": "text/event-stream"}})
                runtime.receive({"type": "fetch_chunk", "id": fid}, sse(replies[answered]))
                runtime.receive({"type": "fetch_end", "id": fid})
                answered += 1
            await asyncio.sleep(0.005)
        assert page.of("turn_end")[0]["reason"] == "done"
        assert page.of("execution_result")[0]["output"] == "5\n"

    asyncio.run(main())


# --- the demo model -----------------------------------------------------------------------------


def test_demo_model_chooses_by_request_and_continues_its_recording() -> None:
    recording = load_recording()
    first = choose_reply([ChatMessage("user", "Please add Tolkien and two of his books")])
    tolkien = next(c for c in recording["conversations"] if c["name"] == "add-tolkien")
    assert first == tolkien["steps"][0]
    after = [ChatMessage("user", "add tolkien"), ChatMessage("assistant", json.dumps(first)), ChatMessage("user", "Output:\nok\nChanges saved: authors: 1 inserted.")]
    assert choose_reply(after) == tolkien["steps"][1]
    failed = after[:2] + [ChatMessage("user", "Output:\n(nothing printed)\nError:\nNameError: x")]
    assert choose_reply(failed) == recording["failed"]
    # A new request merged after the feedback of a stopped turn starts a new recording.
    merged = after[:2] + [ChatMessage("user", "Output:\nok\n\nWhich customers bought nothing this year?")]
    assert choose_reply(merged)["message"].startswith("I'll look for customers")
    assert choose_reply([ChatMessage("user", "hello")])["message"].startswith("I'm the demo model")
