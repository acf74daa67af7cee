"""The bookshop app, tested through py-agent's public surface only (load_app, the pytest
plugin's fixtures, agent_for_server, the CLI)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import text

from py_agent import UserMessage
from py_agent.app import load_app
from py_agent.cli import main
from py_agent.recording import Demo
from py_agent.testing import agent_for_server

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def py_agent_app():
    return load_app(HERE / "bookshop.py")


def scalar(engine, sql: str):
    with engine.connect() as connection:
        return connection.scalar(text(sql))


def test_the_recorded_demo_replays(py_agent_app, run_turn, agent_engine) -> None:
    model = py_agent_app.recorded_model()
    for turn in py_agent_app.demo().turns:
        result = run_turn(turn.request, model=model)
        assert result.end.reason == "done" and result.errors == []
        assert result.message == turn.steps[-1].message
    assert scalar(agent_engine, "select count(*) from books b join authors a on a.id = b.author_id "
                                "where a.name = 'J. R. R. Tolkien'") == 2


def test_a_tool_call_through_a_fake_gemini_server(py_agent_app, fake_gemini, agent_state) -> None:
    fake_gemini.reply(
        {"message": "Pricing it.", "code": "book = session.scalars(select(Book).where(Book.title == 'Emma')).one()\n"
                                           "print(price_with_vat(book.price))"},
        {"message": "Emma costs 8.47 with VAT.", "code": ""},
    )
    agent = agent_for_server(py_agent_app, fake_gemini)
    agent_state.messages.append(UserMessage("What does Emma cost with VAT?"))
    events = list(agent.run(agent_state))
    assert [e.output for e in events if e.type == "execution_result"] == ["8.47\n"]
    assert fake_gemini.requests[0].path == "/v1beta/models/fake-model:streamGenerateContent"


def test_the_demo_is_what_recording_the_script_gives(py_agent_app, tmp_path: Path) -> None:
    record = tmp_path / "demo.json"
    code = main(["chat", "--app", str(HERE / "bookshop.py"), "--db", "sqlite://", "--yes", "--no-log",
                 "--model", f"script:{HERE / 'scripted_replies.json'}", "--record", str(record)],
                stdin=io.StringIO((HERE / "scripted_requests.txt").read_text()), stdout=io.StringIO())
    assert code == 0
    assert Demo.load(record).turns == py_agent_app.demo().turns
