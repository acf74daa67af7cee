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
        assert page.of("configured") == [{"type": "configured", "request": 1, "model": "demo", "timeout": 30.0, "memoryLimit": 1024}]
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
        # py-agent's history lives in the same file, but is not one of the app's tables.
        assert "py_agent_history" in [r[0] for r in sqlite3.connect(again.db_path).execute("SELECT name FROM sqlite_master")]
        assert not [name for name in ready["tables"] if name.startswith("py_agent_")]
        assert page2.of("snapshot") == []  # nothing seeded, nothing to save

    asyncio.run(main())


def test_a_broken_saved_file_is_replaced_by_a_fresh_one_with_a_message(tmp_path: Path) -> None:
    runtime, page = make_runtime(tmp_path)
    runtime.receive({"type": "open", "schema": "py_agent.demo"}, b"garbage")
    damaged = page.of("storage_damaged")
    assert len(damaged) == 1 and damaged[0]["what"] == "database" and "could not be read" in damaged[0]["message"]
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
        # An import is a step: checked against the schema, previewed, then confirmed.
        before = len(page.of("turn_end"))
        runtime.receive({"type": "import", "request": 9}, smaller)
        assert page.of("import_started")[-1]["request"] == 9
        await until(lambda: len(page.of("turn_end")) > before and not runtime.busy)
        asked = page.of("approval_required")[-1]
        assert asked["kind"] == "import" and asked["tables"]["order_items"]["deleted"] == 23 and asked["detail"]
        assert page.of("turn_end")[-1]["reason"] == "paused"
        assert (await turn(runtime, page, {"type": "decide", "approved": True}))["reason"] == "done"
        assert page.of("snapshot")[-2]["reason"] == "commit" and page.of("history_point")[-1]["point"]["kind"] == "import"
        with sqlite3.connect(runtime.db_path) as conn:
            assert conn.execute("SELECT count(*) FROM order_items").fetchone()[0] == 0

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


# --- issue 12 (browser side): limits, approvals, recovery, damaged saves ------------------------


def scripted_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, replies: list[dict[str, str]], **config: Any) -> tuple[Runtime, Page]:
    """A runtime over the demo schema whose model replays ``replies``."""
    from py_agent.browser import runtime as runtime_module
    from py_agent.providers.scripted import ScriptedProvider

    provider = ScriptedProvider(replies)
    monkeypatch.setattr(runtime_module, "provider_from_config", lambda config, transport, **_: provider)
    runtime, page = make_runtime(tmp_path)
    runtime.receive({"type": "open", "schema": "py_agent.demo"})
    runtime.receive({"type": "configure", "provider": "scripted", **config})
    return runtime, page


async def turn(runtime: Runtime, page: Page, command: dict[str, Any]) -> dict[str, Any]:
    """Send ``command`` and wait for the turn_end it causes."""
    before = len(page.of("turn_end"))
    runtime.receive(command)
    await until(lambda: len(page.of("turn_end")) > before and not runtime.busy)
    return page.of("turn_end")[-1]


def committed_tags(runtime: Runtime, name: str) -> int:
    with sqlite3.connect(runtime.db_path) as conn:
        return conn.execute("SELECT count(*) FROM tags WHERE name = ?", (name,)).fetchone()[0]


def test_configure_checks_and_clamps_the_limits(tmp_path: Path) -> None:
    runtime, page = make_runtime(tmp_path)
    open_demo(runtime, page)
    runtime.receive({"type": "configure", "timeout": "5", "memoryLimit": 10**9, "request": 2})
    assert page.of("configured")[-1] | {} == {"type": "configured", "request": 2, "model": "demo", "timeout": 5.0, "memoryLimit": 4000}
    assert runtime.agent.timeout == 5.0 and runtime.timeout_message() == "the step ran longer than 5 s and was stopped"
    runtime.receive({"type": "configure", "timeout": "soon", "request": 3})
    error = page.of("error")[-1]
    assert error["request"] == 3 and "must be a number" in error["message"] and runtime.timeout == 5.0
    assert page.of("ready")[0]["timeout"] == 30.0  # the default, as on CPython


@pytest.mark.cpython_only
def test_the_pages_time_limit_signal_fails_the_step_with_the_cpython_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGALRM (what the page writes into Pyodide's interrupt buffer) fails the step with
    StepTimeout, in the same words as on CPython; the turn goes on (it is not a Stop)."""
    import os
    import signal
    import sys
    import threading

    from py_agent.sandbox.limits import ignore_page_alarms

    replies = [{"message": "Looping.", "code": "n = 0\nwhile True:\n    n += 1"}, {"message": "That took too long; stopping.", "code": ""}]
    runtime, page = scripted_runtime(tmp_path, monkeypatch, replies, timeout=2)
    previous = signal.getsignal(signal.SIGALRM)

    async def main() -> dict[str, Any]:
        # As in Pyodide: no timer of Python's own, the page's signal is the only clock,
        # and outside a step it is ignored (what glue.start arranges).
        monkeypatch.setattr(sys, "platform", "emscripten")
        ignore_page_alarms()
        threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGALRM)).start()
        runtime.receive({"type": "send", "text": "loop"})
        await until(lambda: page.of("turn_end"), timeout=10)
        return page.of("turn_end")[-1]

    try:
        end = asyncio.run(main())
    finally:
        monkeypatch.undo()
        signal.signal(signal.SIGALRM, previous)
    error = page.of("execution_result")[0]["error"]
    assert error.splitlines()[-1] == "StepTimeout: the step ran longer than 2 s and was stopped"
    assert end["reason"] == "done"  # not a Stop: the model read the error and answered
    assert "ran longer than 2 s" in runtime.state.messages[2].content


def test_decide_declines_and_the_demo_model_does_not_say_done(tmp_path: Path) -> None:
    async def main() -> None:
        runtime, page = make_runtime(tmp_path)
        runtime.receive({"type": "open", "schema": "py_agent.demo"})
        runtime.receive({"type": "configure", "provider": "demo", "approve": "ask"})
        runtime.agent.provider.delay = 0
        paused = await turn(runtime, page, {"type": "send", "text": "Add Tolkien and two of his books"})
        assert paused["reason"] == "paused"
        assert page.of("snapshot")[-1]["conversation"]["pending"]["step"] == 1
        end = await turn(runtime, page, {"type": "decide", "approved": False})
        assert end["reason"] == "done"
        assert page.of("approval_decision")[-1]["approved"] is False
        assert page.of("assistant_reply")[-1]["message"].startswith("Understood: I did not save")
        assert "pending" not in page.of("snapshot")[-1]["conversation"]
        with sqlite3.connect(runtime.db_path) as conn:
            assert conn.execute("SELECT count(*) FROM authors").fetchone()[0] == 10

    asyncio.run(main())


def test_decide_with_remember_allows_later_writes_without_asking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    replies = [
        {"message": "One.", "code": 'session.add(Tag(name="first"))'},
        {"message": "Saved.", "code": ""},
        {"message": "Two.", "code": 'session.add(Tag(name="second"))'},
        {"message": "Saved again.", "code": ""},
    ]

    async def main() -> None:
        runtime, page = scripted_runtime(tmp_path, monkeypatch, replies, approve="ask")
        assert (await turn(runtime, page, {"type": "send", "text": "add first"}))["reason"] == "paused"
        assert (await turn(runtime, page, {"type": "decide", "approved": True, "remember": True}))["reason"] == "done"
        assert page.of("approval_decision")[-1] | {} == {"type": "approval_decision", "step": 1, "approved": True, "remember": True}
        assert committed_tags(runtime, "first") == 1
        # The rest of the conversation commits without asking...
        assert (await turn(runtime, page, {"type": "send", "text": "add second"}))["reason"] == "done"
        assert committed_tags(runtime, "second") == 1 and len(page.of("approval_required")) == 1
        assert page.of("snapshot")[-1]["conversation"]["auto_approve"] is True
        # ...and a new conversation asks again.
        runtime.receive({"type": "new_conversation", "request": 4})
        assert page.of("conversation_opened")[-1]["messages"] == 0 and runtime.state.auto_approve is False

    asyncio.run(main())


def test_a_step_left_waiting_is_reported_as_discarded_after_a_reload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    replies = [{"message": "Adding.", "code": 'session.add(Tag(name="waiting"))'}]

    async def main() -> None:
        runtime, page = scripted_runtime(tmp_path, monkeypatch, replies, approve="ask")
        await turn(runtime, page, {"type": "send", "text": "add a tag"})
        saved = page.of("snapshot")[-1]["conversation"]
        db = snapshot_bytes(runtime.db_path)

        again, page2 = make_runtime(tmp_path / "reloaded")
        again.receive({"type": "open", "schema": "py_agent.demo", "conversation": saved}, db)
        assert page2.of("pending_discarded") == [
            {"type": "pending_discarded", "step": 1, "message": "The changes of step 1 were waiting for your approval when the page was closed; they were not saved."}
        ]
        assert again.state.pending is None and committed_tags(again, "waiting") == 0
        # The model is told, in the conversation that is saved again at once.
        note = again.state.messages[-1]
        assert note.kind == "result" and "were NOT saved" in note.content
        snapshot = page2.of("snapshot")[-1]
        assert snapshot["reason"] == "recovered" and "pending" not in snapshot["conversation"]
        # A new message is accepted (no dangling question).
        again.receive({"type": "configure", "provider": "demo"})
        again.agent.provider.delay = 0
        assert (await turn(again, page2, {"type": "send", "text": "How many rows are in each table?"}))["reason"] == "done"

    asyncio.run(main())


def test_a_step_lost_with_its_worker_is_written_into_the_conversation(tmp_path: Path) -> None:
    runtime, page = make_runtime(tmp_path)
    conversation = {"version": 1, "messages": [{"kind": "user", "content": "loop forever"}], "step": 0}
    lost = {"step": 1, "message": "Looping.", "code": "while True: pass", "reason": "timeout"}
    runtime.receive({"type": "open", "schema": "py_agent.demo", "conversation": conversation, "lost": lost})
    ready = page.of("ready")[0]
    assert ready["lost"].startswith("StepTimeout: the step ran longer than 30 s")
    kinds = [m.kind for m in runtime.state.messages]
    assert kinds == ["user", "assistant", "result"] and runtime.state.step == 1
    assert "was stopped by restarting Python" in runtime.state.messages[-1].content
    assert len(page.of("snapshot")[-1]["conversation"]["messages"]) == 3  # saved again at once


@pytest.mark.parametrize(
    "conversation",
    [
        "a record replaced by a string",
        ["a", "list"],
        {"messages": "not a list"},
        {"messages": [{"kind": "nonsense"}]},
        {"messages": [{"kind": "user"}]},
        {"messages": [], "usage": {"input_tokens": "many"}},
        {"messages": [], "step": [1]},
    ],
)
def test_any_damaged_conversation_still_ends_in_ready(tmp_path: Path, conversation: Any) -> None:
    runtime, page = make_runtime(tmp_path)
    runtime.receive({"type": "open", "schema": "py_agent.demo", "conversation": conversation})
    assert [m["what"] for m in page.of("storage_damaged")] == ["conversation"]
    assert "a new one was started" in page.of("storage_damaged")[0]["message"]
    ready = page.of("ready")
    assert len(ready) == 1 and ready[0]["messages"] == 0 and ready[0]["tables"]["authors"] == 10


def test_an_open_that_cannot_work_at_all_is_fatal_not_silent(tmp_path: Path) -> None:
    runtime, page = make_runtime(tmp_path)
    runtime.receive({"type": "open", "schema": "no_such_module_here"})
    assert page.of("ready") == []
    fatal = page.of("fatal")
    assert len(fatal) == 1 and "could not be opened" in fatal[0]["message"] and fatal[0]["hint"]


def test_a_memory_error_clears_the_models_variables_and_the_turn_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    replies = [
        {"message": "Keeping a list.", "code": "kept = [1, 2, 3]"},
        {"message": "Growing.", "code": "hoard = list(range(10))\nraise MemoryError"},
        {"message": "Out of memory; done.", "code": ""},
    ]

    async def main() -> None:
        runtime, page = scripted_runtime(tmp_path, monkeypatch, replies)
        end = await turn(runtime, page, {"type": "send", "text": "hoard"})
        assert end["reason"] == "done"
        assert "kept" not in runtime.state.namespace and "hoard" not in runtime.state.namespace
        assert "session" in runtime.state.namespace and "Tag" in runtime.state.namespace
        assert any("ran out of memory" in m["message"] for m in page.of("notice"))
        assert page.of("worker_broken") == []  # it can allocate again
        runtime.receive({"type": "ping", "request": 5})
        assert page.of("pong") == [{"type": "pong", "request": 5}]

    asyncio.run(main())


def test_ready_carries_enum_labels_and_an_empty_history(tmp_path: Path) -> None:
    runtime, page = make_runtime(tmp_path)
    open_demo(runtime, page)
    ready = page.of("ready")[0]
    assert ready["enums"]["books"]["genre"]["SCIENCE_FICTION"] == "science fiction"
    assert isinstance(ready["history"], list)


def test_undo_restore_and_history_commands(tmp_path: Path) -> None:
    async def main() -> None:
        runtime, page = make_runtime(tmp_path)
        open_demo(runtime, page)
        runtime.agent.provider.delay = 0
        await turn(runtime, page, {"type": "send", "text": "Add Tolkien and two of his books"})
        assert [p["point"]["kind"] for p in page.of("history_point")] == ["turn"]
        runtime.receive({"type": "history", "request": 11})
        points = page.of("history")[-1]["points"]
        assert page.of("history")[-1]["request"] == 11 and points[-1]["undoable"] is True

        runtime.receive({"type": "undo", "request": 12})
        undone = page.of("undone")[-1]
        assert undone["kind"] == "undo" and undone["tables"]["authors"]["deleted"] == 1
        assert page.of("history")[-1]["request"] == 12
        snapshot = page.of("snapshot")[-1]
        assert snapshot["reason"] == "undo"
        with sqlite3.connect(":memory:") as conn:
            conn.deserialize(page.data[page.messages.index(snapshot)])
            assert conn.execute("SELECT count(*) FROM authors").fetchone()[0] == 10

        runtime.receive({"type": "restore", "request": 13})
        assert page.of("error")[-1]["request"] == 13 and "needs a point" in page.of("error")[-1]["message"]
        runtime.receive({"type": "undo", "request": 14})  # nothing left to undo: a clear refusal
        refusal = page.of("error")[-1]
        assert refusal["request"] == 14 and refusal["kind"] == "undo" and refusal["message"]
        runtime.receive({"type": "restore", "point": points[-1]["id"], "request": 15})
        assert page.of("undone")[-1]["kind"] == "restore" and page.of("snapshot")[-1]["reason"] == "restore"
        with sqlite3.connect(runtime.db_path) as conn:
            assert conn.execute("SELECT count(*) FROM authors").fetchone()[0] == 11

    asyncio.run(main())


def test_new_conversation_keeps_the_database(tmp_path: Path) -> None:
    async def main() -> None:
        runtime, page = make_runtime(tmp_path)
        open_demo(runtime, page)
        runtime.agent.provider.delay = 0
        await turn(runtime, page, {"type": "send", "text": "Add Tolkien and two of his books"})
        archived = runtime.state.to_dict()
        runtime.receive({"type": "new_conversation", "request": 3})
        assert runtime.state.messages == [] and page.of("snapshot")[-1]["reason"] == "conversation"
        with sqlite3.connect(runtime.db_path) as conn:
            assert conn.execute("SELECT count(*) FROM authors").fetchone()[0] == 11
        runtime.receive({"type": "new_conversation", "conversation": archived, "request": 4})
        opened = page.of("conversation_opened")[-1]
        assert opened["request"] == 4 and opened["messages"] == 4 and len(opened["history"]) == 1  # history lives with the data

    asyncio.run(main())


def test_demo_model_answers_a_decline_or_a_discard_without_claiming_success() -> None:
    from py_agent.demo.model import DECLINED_REPLY

    first = choose_reply([ChatMessage("user", "Please add Tolkien and two of his books")])
    for feedback in (
        "Output:\nok\nThe person declined these changes, so they were rolled back: authors: 1 inserted.",
        "Output:\n(not shown)\nThe changes of step 1 were NOT saved: the page was reloaded while they waited.",
    ):
        reply = choose_reply([ChatMessage("user", "add tolkien"), ChatMessage("assistant", json.dumps(first)), ChatMessage("user", feedback)])
        assert reply == DECLINED_REPLY and reply["code"] == ""


def test_on_demand_packages_may_be_imported_by_model_code(tmp_path: Path) -> None:
    class OnDemand:
        import_names = frozenset({"tabulate"})

        async def before_run(self, step: int, tree: Any) -> list[Any]:
            return []

    runtime, page = make_runtime(tmp_path)
    runtime.on_demand = OnDemand()
    open_demo(runtime, page)
    assert "tabulate" in runtime.agent.policy.allowed_imports
    assert "json" in runtime.agent.policy.allowed_imports  # the defaults stay
