"""py_agent.testing: the fake model servers' browser-facing parts (CORS, health, control
endpoints, recorded demos in every wire format), the command for Playwright's webServer,
run_turn, and the pytest plugin as another project would use it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from py_agent import State, UserMessage
from py_agent.app import load_app
from py_agent.testing import FakeAnthropic, FakeGemini, FakeModelServer, FakeOpenAI, Fault, agent_for_server, run_turn
from py_agent.testing.servers import FORMATS

pytestmark = pytest.mark.cpython_only

ROOT = Path(__file__).resolve().parents[1]
BOOKSHOP = ROOT / "examples" / "bookshop" / "bookshop.py"


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, {k.lower(): v for k, v in response.headers.items()}, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, {k.lower(): v for k, v in error.headers.items()}, json.loads(raw) if raw else None


def origin(server: FakeModelServer) -> str:
    return server.base_url.removesuffix("/v1")


def test_cors_preflight_and_headers_for_a_page() -> None:
    with FakeOpenAI() as server:
        status, headers, _ = http("OPTIONS", server.base_url + "/chat/completions", headers={
            "origin": "http://127.0.0.1:8000", "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type"})
        assert status == 204
        assert headers["access-control-allow-origin"] == "http://127.0.0.1:8000"
        assert headers["access-control-allow-headers"] == "authorization, content-type"  # echoed: * does not cover Authorization
        status, headers, body = http("POST", server.base_url + "/chat/completions",
                                     {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                                     {"authorization": "Bearer test-key", "origin": "http://127.0.0.1:8000"})
        assert status == 200 and headers["access-control-allow-origin"] == "http://127.0.0.1:8000"
        assert json.loads(body["choices"][0]["message"]["content"]) == {"message": "Done.", "code": ""}


def test_without_cors_a_page_gets_no_cors_headers() -> None:
    with FakeOpenAI(cors=False) as server:
        status, headers, _ = http("OPTIONS", server.base_url + "/chat/completions", headers={"origin": "http://x.test"})
        assert status == 405 and "access-control-allow-origin" not in headers


def test_health_and_scripting_over_http() -> None:
    with FakeOpenAI() as server:
        assert http("GET", origin(server) + "/health")[2] == {"ok": True, "format": "openai", "base_url": server.base_url}
        assert http("POST", origin(server) + "/_fake/replies", [{"message": "One", "code": ""}])[0] == 200
        assert http("POST", origin(server) + "/_fake/faults", [{"kind": "status", "status": 429}])[0] == 200
        status, _, body = http("POST", origin(server) + "/_fake/faults", [{"kind": "explode"}])
        assert status == 400 and "unknown fault kind 'explode'" in body["error"]["message"]
        request = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        auth = {"authorization": "Bearer test-key"}
        assert http("POST", server.base_url + "/chat/completions", request, auth)[0] == 429
        body = http("POST", server.base_url + "/chat/completions", request, auth)[2]
        assert json.loads(body["choices"][0]["message"]["content"])["message"] == "One"
        seen = http("GET", origin(server) + "/_fake/requests")[2]
        assert len(seen) == 2 and seen[0]["body"]["messages"][0]["content"] == "hi"
        http("POST", origin(server) + "/_fake/reset")
        assert http("GET", origin(server) + "/_fake/requests")[2] == []


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
def test_a_recorded_demo_served_in_each_wire_format(kind: str) -> None:
    """A real provider, over HTTP, replays the bookshop's demo; its code runs on the database."""
    from py_agent.recording import Demo, RecordedModel

    app = load_app(BOOKSHOP)
    demo = Demo.load(app.demo_path)  # type: ignore[arg-type]
    model = RecordedModel(demo)
    server = FORMATS[kind]().start()
    server.responder = lambda request: model.reply_to(server.messages_of(request))
    try:
        agent = agent_for_server(app, server)
        state = State(engine=app.open_database())
        state.messages.append(UserMessage(demo.requests[0]))
        events = list(agent.run(state))
    finally:
        server.stop()
    assert events[-1].reason == "done" and events[-1].steps == len(demo.turns[0].steps)
    outputs = [e.output for e in events if e.type == "execution_result"]
    assert "The Hobbit" in outputs[0]
    assert [e.status for e in events if e.type == "changes"] == ["committed"]


def test_run_turn_with_a_scripted_model() -> None:
    result = run_turn(BOOKSHOP, "How many authors?", replies=[
        {"message": "Counting.", "code": "print(session.scalar(select(func.count()).select_from(Author)))"},
        {"message": "There are 10.", "code": ""},
    ])
    assert result.outputs == ["10\n"] and result.message == "There are 10." and result.end.reason == "done"
    assert result.errors == []


def test_the_command_for_playwright(tmp_path: Path) -> None:
    app = load_app(BOOKSHOP)
    process = subprocess.Popen(
        [sys.executable, "-m", "py_agent.testing.fake_server", "--format", "openai", "--no-auth",
         "--script", str(app.demo_path), "--fault", "status:503"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        first = process.stdout.readline()  # type: ignore[union-attr]
        assert first.startswith("fake openai model server at http://127.0.0.1:"), first
        assert "the recorded demo's 3 request(s); no key; CORS on" in first
        base_url = first.split(" at ")[1].split(" ")[0]
        assert http("GET", base_url.removesuffix("/v1") + "/health")[0] == 200
        agent = app.agent("openai-compatible:fake", provider_options={"base_url": base_url, "api_key": "unused"})
        state = State(engine=app.open_database())
        state.messages.append(UserMessage("Which customers bought nothing this year?"))
        events = list(agent.run(state))  # the 503 is retried, then the demo answers
        assert events[-1].reason == "done"
        assert "never ordered" in [e.output for e in events if e.type == "execution_result"][0]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_the_pytest_plugin_in_another_project(tmp_path: Path) -> None:
    """A project with its own app, configured in pyproject.toml, using the fixtures and nothing else."""
    (tmp_path / "pyproject.toml").write_text('[tool.pytest.ini_options]\npy_agent_app = "shop/app.py"\n')
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "app.py").write_text(textwrap.dedent('''
        from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

        class Base(DeclarativeBase):
            pass

        class Item(Base):
            __tablename__ = "items"
            id: Mapped[int] = mapped_column(primary_key=True)
            name: Mapped[str]

        def seed(session):
            session.add_all([Item(name="pen"), Item(name="ink")])

        title = "Shop"
    '''))
    (tmp_path / "test_shop.py").write_text(textwrap.dedent('''
        from sqlalchemy import func, select, text
        from py_agent.testing import agent_for_server

        def test_app(py_agent_app):
            assert py_agent_app.title == "Shop"

        def test_scripted_turn(run_turn, agent_engine):
            result = run_turn("add paper", replies=[
                {"message": "Adding.", "code": "session.add(Item(name='paper'))"},
                {"message": "Done.", "code": ""},
            ])
            assert result.changes[0].status == "committed"
            with agent_engine.connect() as c:
                assert c.scalar(text("select count(*) from items")) == 3

        def test_through_a_fake_server(py_agent_app, fake_anthropic, agent_state):
            fake_anthropic.reply({"message": "Counting.", "code": "print(session.scalar(select(func.count()).select_from(Item)))"},
                                 {"message": "Two.", "code": ""})
            agent = agent_for_server(py_agent_app, fake_anthropic)
            from py_agent import UserMessage
            agent_state.messages.append(UserMessage("how many?"))
            events = list(agent.run(agent_state))
            assert [e.output for e in events if e.type == "execution_result"] == ["2\\n"]
            assert fake_anthropic.requests[0].headers["x-api-key"] == "test-key"
    '''))
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 passed" in result.stdout


def test_the_plugin_says_how_to_name_the_app(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text("def test_x(py_agent_app):\n    pass\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "py_agent_app" in result.stdout + result.stderr and "conftest.py" in result.stdout + result.stderr


def test_messages_of_each_format() -> None:
    from py_agent.testing.servers import Received

    openai = Received("POST", "/v1/chat/completions", {}, {}, {"messages": [
        {"role": "system", "content": "sys"}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "text", "text": "yo"}]}]})
    anthropic = Received("POST", "/v1/messages", {}, {}, {"system": "sys", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]}, {"role": "assistant", "content": "yo"}]})
    gemini = Received("POST", "/v1beta/models/m:generateContent", {}, {}, {"contents": [
        {"role": "user", "parts": [{"text": "hi"}]}, {"role": "model", "parts": [{"text": "yo"}]}]})
    for server, request in ((FakeOpenAI(), openai), (FakeAnthropic(), anthropic), (FakeGemini(), gemini)):
        assert [(m.role, m.content) for m in server.messages_of(request)] == [("user", "hi"), ("assistant", "yo")]


@pytest.mark.parametrize(("kind", "signal"), [("openai", "length"), ("anthropic", "max_tokens"), ("gemini", "MAX_TOKENS")])
@pytest.mark.parametrize("stream", [True, False])
def test_a_reply_cut_off_at_the_output_limit(kind: str, signal: str, stream: bool) -> None:
    server = FORMATS[kind](chunk_size=100).start()  # one piece of text per reply
    try:
        server.reply("a long answer that goes on", {"message": "next", "code": ""})  # a string is sent verbatim
        server.fault(Fault.max_tokens(keep=10))
        paths = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages",
                 "gemini": f"/v1beta/models/m:{'streamGenerateContent?alt=sse' if stream else 'generateContent'}"}
        body = {"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}],
                "contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        headers = {"authorization": "Bearer test-key", "x-api-key": "test-key", "x-goog-api-key": "test-key",
                   "content-type": "application/json"}
        request = urllib.request.Request(origin(server) + paths[kind], data=json.dumps(body).encode(), headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read().decode()
        assert signal in raw and "a long ans" in raw and "answer" not in raw
        assert [r["message"] for r in server.replies] == ["next"]  # the cut reply is used up
    finally:
        server.stop()
