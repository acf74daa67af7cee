"""Stop interrupts running code in the Panel app, in process and in a separate worker process.

Each test runs ``while True: pass`` with a time limit far longer than the test waits
(so only Stop can end it), presses the chat's Stop button, and then checks that the
step's writes are gone, the conversation goes on, and the model is told what happened.
"""

from __future__ import annotations

import asyncio
import textwrap

import panel as pn
import pytest
from sqlalchemy import create_engine

from py_agent import ScriptedProvider
from py_agent.messages import ResultMessage
from py_agent.panel_app import AgentChat
from py_agent.panel_ui.icons import icon
from py_agent.panel_ui.stopping import StoppableWorkspace
from py_agent.server import Server
from test_panel_app import finished, tags, text_of, turn, until

pytestmark = [pytest.mark.cpython_only, pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")]

LIMIT = 600.0  # the step's time limit: far beyond the test's patience, so only Stop ends the loop
STOP_WITHIN = 20.0  # seconds the test waits for the stop to take effect
LOOP = {"message": "Looping.", "code": "session.add(Tag(name='before the loop'))\nsession.flush()\nprint('looping', flush=True)\nwhile True:\n    pass"}
AFTER = {"message": "Tagging.", "code": "session.add(Tag(name='after the stop'))"}
DONE = {"message": "Done.", "code": ""}
QUERY_LOOP = {"message": "Counting.", "code": "print('counting', flush=True)\nsession.execute(text('WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n')).scalar()"}


def stop_button(chat: pn.chat.ChatInterface) -> pn.widgets.Button:
    return next(b for b in chat.select(pn.widgets.Button) if b.icon == icon("stop"))


async def run_then_stop(app: AgentChat, request: str, running: str) -> None:
    """Send ``request``, wait until its step printed ``running``, press Stop, wait for the end."""
    chat = app.chat
    chat.send(request, respond=True)
    # The output arrives while the step runs: the server's event loop is not blocked by it.
    await until(lambda: len(chat.objects) >= 3 and running in text_of(chat.objects[-1]), timeout=STOP_WITHIN)
    assert app.live.running and chat.disabled
    stop_button(chat).clicks += 1
    await until(lambda: not app.live.running and not chat.disabled, timeout=STOP_WITHIN)
    await until(lambda: "**Stopped**" in text_of(chat.objects[-1]), timeout=5)


def test_stop_interrupts_a_step_running_in_process(tmp_path):
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    from py_agent.demo import create_demo_engine

    app_engine, other = create_demo_engine(url), create_engine(url)

    async def scenario() -> None:
        app = AgentChat(engine=app_engine, model=ScriptedProvider([LOOP, AFTER, DONE]), timeout=LIMIT)
        assert isinstance(app.state._workspace, StoppableWorkspace)
        await run_then_stop(app, "loop forever", "looping")
        reply = text_of(app.chat.objects[-1])
        assert "Saved" not in reply
        assert "before the loop" not in tags(other)  # the step's flushed row was rolled back
        assert not app.state._workspace.pending and app.state._workspace.stopped == 1
        note = app.state.messages[-1]
        assert isinstance(note, ResultMessage) and "pressed Stop" in note.content

        await turn(app.chat, "add a tag")  # the conversation goes on, on the same connection
        assert "**Saved**" in text_of(app.chat.objects[-1])
        app.close()

    asyncio.run(scenario())
    assert tags(other) >= {"after the stop"} and "before the loop" not in tags(other)
    app_engine.dispose(), other.dispose()


def test_stop_interrupts_a_long_query_in_process(engine):
    async def scenario() -> None:
        app = AgentChat(engine=engine, model=ScriptedProvider([QUERY_LOOP, DONE, DONE]), timeout=LIMIT)
        await run_then_stop(app, "count forever", "counting")
        await turn(app.chat, "anything else?")
        assert "_Done" in text_of(app.chat.objects[-1])
        app.close()

    asyncio.run(scenario())


APP = '''
"""The demo schema as an app module (what a server's worker process imports)."""
from py_agent.demo import Base
'''


def test_stop_ends_the_worker_process_and_the_conversation_resumes_in_a_fresh_one(tmp_path):
    from py_agent.demo import create_demo_engine

    app_file = tmp_path / "stop_shop_app.py"
    app_file.write_text(textwrap.dedent(APP))
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    create_demo_engine(url).dispose()  # the shop, seeded
    other = create_engine(url)
    server = Server.create(str(app_file), url, store_url=url, separate_process=True)

    async def scenario() -> None:
        app = AgentChat(server=server, model=ScriptedProvider([LOOP, AFTER, DONE]), timeout=LIMIT)
        workspace = app.state._workspace
        assert type(workspace).__name__ == "ProcessWorkspace"
        chat = app.chat
        chat.send("loop forever", respond=True)
        await until(lambda: len(chat.objects) >= 3 and "looping" in text_of(chat.objects[-1]), timeout=STOP_WITHIN)
        looping = workspace.pid
        stop_button(chat).clicks += 1
        await until(lambda: not app.live.running and not chat.disabled, timeout=STOP_WITHIN)
        assert "**Stopped**" in text_of(chat.objects[-1])
        # The worker that ran the loop was ended (the history shown after the turn comes from a fresh one).
        assert workspace.lost and workspace.pid != looping
        assert "before the loop" not in tags(other)
        assert "variables are gone" in app.state.messages[-1].content

        count = len(app.chat.objects)
        app.chat.send("add a tag", respond=True)
        await finished(app.chat, count + 2)
        assert "**Saved**" in text_of(app.chat.objects[-1]) and workspace.restarts == 1
        app.close()

    asyncio.run(scenario())
    assert "after the stop" in tags(other) and "before the loop" not in tags(other)
    other.dispose()
