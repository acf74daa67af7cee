"""The `py-agent` command: chat in a terminal (streaming, approvals, commands, the conversation
log, recording demos), check, conversations, and the stubs of part 2."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


import pytest

from py_agent.chat.log import ConversationLog
from py_agent.cli import main
from py_agent.recording import Demo

pytestmark = pytest.mark.cpython_only

ROOT = Path(__file__).resolve().parents[1]
BOOKSHOP = str(ROOT / "examples" / "bookshop" / "bookshop.py")

ADD_TAG = {"message": "I'll add the tag poetry.", "code": "session.add(Tag(name='poetry'))\nprint('added')"}
ADD_TWO = {"message": "And two more.", "code": "session.add_all([Tag(name='odes'), Tag(name='haiku')])"}
DONE = {"message": "Done: the tags are there.", "code": ""}


class Typed(io.StringIO):
    """An output stream that remembers each write (to see streaming happen piece by piece)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private PY_AGENT_HOME and no model keys, so nothing real is reached."""
    monkeypatch.setenv("PY_AGENT_HOME", str(tmp_path / "home"))
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "PY_AGENT_MODEL", "PY_AGENT_APP", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


def script(tmp_path: Path, *replies: dict[str, str], name: str = "script.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(list(replies)))
    return f"script:{path}"


def chat(*args: str, stdin: str = "") -> tuple[int, str, str]:
    out, err = Typed(), io.StringIO()
    code = main(["chat", *args], stdin=io.StringIO(stdin), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def tags(db: Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(db) as connection:
        return sorted(r[0] for r in connection.execute("select name from tags"))


def test_a_turn_streams_and_asks_before_saving(tmp_path: Path) -> None:
    db = tmp_path / "shop.sqlite"
    out, err = Typed(), io.StringIO()
    code = main(["chat", "--app", BOOKSHOP, "--db", f"sqlite:///{db}", "--model", script(tmp_path, ADD_TAG, DONE)],
                stdin=io.StringIO("Add a poetry tag\ny\n"), stdout=out, stderr=err)
    text = out.getvalue()
    assert code == 0, err.getvalue()
    assert "new: tables created and seeded" in text
    assert "assistant: I'll add the tag poetry." in text
    assert "    session.add(Tag(name='poetry'))" in text  # the code, indented
    assert "  │ added" in text  # its output
    assert "changes waiting for your approval: tags: 1 inserted" in text
    assert "+ tags id=6, name='poetry'" in text  # the row itself
    assert "changes saved: tags: 1 inserted" in text
    assert "assistant: Done: the tags are there." in text and "(done · 2 steps" in text
    assert "poetry" in tags(db)
    # the message arrived in pieces, before the whole reply was known
    pieces = [w for w in out.writes if w and w in ADD_TAG["message"]]
    assert len(pieces) >= 3


def test_no_declines_and_the_model_is_told(tmp_path: Path) -> None:
    db = tmp_path / "shop.sqlite"
    code, text, _ = chat("--app", BOOKSHOP, "--db", f"sqlite:///{db}", "--model", script(tmp_path, ADD_TAG, DONE),
                         "--no-log", stdin="Add a poetry tag\nmaybe\nn\n")
    assert code == 0
    assert "answer y, a or n" in text
    assert "changes declined, rolled back: tags: 1 inserted" in text
    assert "poetry" not in tags(db)


def test_always_saves_this_and_later_steps_without_asking(tmp_path: Path) -> None:
    db = tmp_path / "shop.sqlite"
    code, text, _ = chat("--app", BOOKSHOP, "--db", f"sqlite:///{db}", "--no-log",
                         "--model", script(tmp_path, ADD_TAG, ADD_TWO, DONE), stdin="Add tags\na\n")
    assert code == 0
    assert text.count("save these changes?") == 1
    assert text.count("changes saved") == 2
    assert {"poetry", "odes", "haiku"} <= set(tags(db))


def test_commands(tmp_path: Path) -> None:
    db = tmp_path / "shop.sqlite"
    stdin = "!help\n!bogus\n!tokens\nAdd a poetry tag\n!tokens\n!tables\n!model\n!model nonsense\n!undo\n!quit\nnever read\n"
    code, text, _ = chat("--app", BOOKSHOP, "--db", f"sqlite:///{db}", "--yes", "--no-log",
                         "--model", script(tmp_path, ADD_TAG, DONE), stdin=stdin)
    assert code == 0
    assert "!undo              undo the last saved turn" in text
    assert "unknown command !bogus: !help lists them" in text
    assert "this conversation: 0 tokens in, 0 out" in text
    assert "tags                            6" in text
    assert "model: script:script.json" in text
    assert "error: model 'nonsense' is not a 'provider:model' id" in text
    assert "never read" not in text.split("!quit")[-1]
    assert "undone: tags: 1 deleted" in text
    assert "poetry" not in tags(db)


def test_the_log_and_continuing_a_conversation(tmp_path: Path, home: Path) -> None:
    db = tmp_path / "shop.sqlite"
    first = script(tmp_path, ADD_TAG, DONE, name="one.json")
    code, text, _ = chat("--app", BOOKSHOP, "--db", f"sqlite:///{db}", "--yes", "--model", first, stdin="Add a poetry tag\n")
    assert code == 0 and "logged in" in text
    with ConversationLog(home / "conversations.sqlite") as log:
        conversation = log.last()
        assert conversation is not None and conversation.title == "Add a poetry tag"
        assert [e["type"] for e in log.events(conversation.id)][:2] == ["user_message", "assistant_reply"]

    # -c: the same app, database and model, with the earlier messages
    second = script(tmp_path, {"message": "There are 6 tags.", "code": ""}, name="two.json")
    code, text, _ = chat("-c", "--model", second, stdin="How many tags?\n")
    assert code == 0
    assert f"conversation  {conversation.id} (continued)" in text and str(db) in text
    with ConversationLog(home / "conversations.sqlite") as log:
        state = log.get(conversation.id[:5]).state  # a prefix of the id is enough
    contents = [m.get("content") or m.get("message") for m in state["messages"]]
    assert contents[0] == "Add a poetry tag" and "How many tags?" in contents
    assert any("resumed in a new Python session" in (c or "") for c in contents)

    code, text, err = chat("--cid", "nope")
    assert code == 2 and "there is no conversation 'nope'" in err and "py-agent conversations" in err

    out = io.StringIO()
    assert main(["conversations"], stdout=out) == 0
    assert conversation.id in out.getvalue() and "Add a poetry tag" in out.getvalue()


def test_record_then_replay_without_a_key(tmp_path: Path) -> None:
    demo_file = tmp_path / "demo.json"
    code, text, _ = chat("--app", BOOKSHOP, "--db", "sqlite://", "--yes", "--no-log", "--model", script(tmp_path, ADD_TAG, DONE),
                         "--record", str(demo_file), "-m", "Add a poetry tag")
    assert code == 0 and f"recorded 1 turn(s) to {demo_file}" in text
    demo = Demo.load(demo_file)
    assert demo.requests == ["Add a poetry tag"] and demo.turns[0].steps[0].reply == ADD_TAG

    # An app whose DEMO is that file replays it when no key is set
    app = tmp_path / "shop_with_demo.py"
    app.write_text(f"from py_agent.demo import Base, seed\nDEMO = {str(demo_file)!r}\n")
    code, text, _ = chat("--app", str(app), "--db", "sqlite://", "--yes", "--no-log", stdin="Add a poetry tag\n")
    assert code == 0
    assert "the app's recorded demo" in text and "try           Add a poetry tag" in text
    assert "  │ added" in text and "changes saved: tags: 1 inserted" in text


def test_no_key_and_no_demo_says_how_to_set_a_key(tmp_path: Path) -> None:
    app = tmp_path / "plain_shop.py"
    app.write_text("from py_agent.demo import Base, seed\n")
    code, _, err = chat("--app", str(app), "--db", "sqlite://", "--no-log")
    assert code == 2
    assert "no API key is set and this app has no recorded demo" in err and "OPENAI_API_KEY" in err


def test_errors_that_say_what_to_do(tmp_path: Path) -> None:
    code, _, err = chat("--db", "sqlite://")
    assert code == 2 and "which app?" in err and "--app" in err
    broken = tmp_path / "broken_app.py"
    broken.write_text("from py_agent.demo import Base\nx = (\n")
    code, _, err = chat("--app", str(broken), "--no-log")
    assert code == 2 and f"{broken}:2: syntax error" in err
    code, _, err = chat("--app", BOOKSHOP, "--db", "postgresql+nosuchdriver://x/y", "--no-log")
    assert code == 2 and "no driver" in err


def test_check_reports_what_the_model_sees(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    assert main(["check", BOOKSHOP], stdout=out) == 0
    text = out.getvalue()
    assert "Bookshop: bookshop" in text and "created, filled by seed()" in text
    assert "books" in text and "26 rows" in text
    assert "tools: price_with_vat" in text and "demo: 3 recorded request(s)" in text


def test_build_of_a_broken_app_says_what_and_where(tmp_path: Path) -> None:
    app = tmp_path / "broken_app.py"
    app.write_text("from sqlalchemy.orm import DeclarativeBase\nclass Base(DeclarativeBase):\n    pass\nx = (\n")
    err, out = io.StringIO(), io.StringIO()
    assert main(["build", str(app), "--out", str(tmp_path / "site")], stdout=out, stderr=err) == 2
    assert f"{app}:4" in err.getvalue() and "syntax error" in err.getvalue()
    assert not (tmp_path / "site").exists()


def test_python_dash_m_with_pipes(tmp_path: Path) -> None:
    env = {**os.environ, "PY_AGENT_HOME": str(tmp_path / "home")}
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        env.pop(name, None)
    command = [sys.executable, "-m", "py_agent"]
    if shutil.which("py-agent"):
        command = [shutil.which("py-agent") or ""]  # the console script, when installed
    result = subprocess.run(
        [*command, "chat", "--app", BOOKSHOP, "--db", "sqlite://", "--no-log", "--model",
         script(tmp_path, ADD_TAG, DONE)],
        input="Add a poetry tag\ny\n", capture_output=True, text=True, timeout=120, env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "changes saved: tags: 1 inserted" in result.stdout
    assert "\033[" not in result.stdout  # no colours into a pipe




def test_a_local_server_that_is_not_running(tmp_path: Path) -> None:
    from py_agent.testing import free_port

    code, text, _ = chat("--app", BOOKSHOP, "--db", "sqlite://", "--no-log", "--model", "ollama:llama3.2",
                         "--base-url", f"http://127.0.0.1:{free_port()}/v1", "-m", "hi")
    assert code == 0
    assert "error: Could not connect" in text and "to start Ollama: ollama serve" in text


def test_every_event_type_is_shown_or_deliberately_silent() -> None:
    """A new event type must get a line in the terminal, or be added to render.SILENT on purpose."""
    from py_agent.chat.render import SILENT, Renderer
    from py_agent.events import _EVENT_TYPES

    unhandled = [kind for kind in _EVENT_TYPES if kind not in SILENT and not hasattr(Renderer, f"on_{kind}")]
    assert unhandled == []
