"""A reload comes back to its conversation: the log, the database, a step waiting for approval,
a turn still running; and what is kept, for how long, and for whom.

A reload is a new ``AgentChat`` (what ``panel serve`` makes per page load) with the
``conversation`` id the page's address carries. The browser side (the address really
carrying it) is in tests/e2e/panel.spec.ts.
"""

from __future__ import annotations

import asyncio
import textwrap
import time
from typing import Any, AsyncIterator

import panel as pn
import pytest
from sqlalchemy import create_engine

from py_agent import ScriptedProvider
from py_agent.demo import create_demo_engine
from py_agent.panel_app import AgentChat, from_environment
from py_agent.panel_ui.conversations import LIVE, Registry
from py_agent.server import Server
from test_panel_app import buttons_of, finished, tags, text_of, turn, until

pytestmark = [pytest.mark.cpython_only, pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")]

TAG = {"message": "Tagging.", "code": "session.add(Tag(name='kept'))\nprint('tagged')"}
DONE = {"message": "Done.", "code": ""}


def shown(app: AgentChat) -> str:
    return "\n".join(text_of(m) for m in app.chat.objects)


def counts_text(app: AgentChat) -> str:
    return str(app.counts_view.object)


def history_text(app: AgentChat) -> str:
    return "\n".join(str(pane.object) for pane in app.history_view.select(pn.pane.Markdown))


def test_a_reload_shows_the_same_conversation_and_database():
    async def scenario() -> None:
        first = AgentChat(model=ScriptedProvider([TAG, DONE]))  # the demo bookshop, in memory, of this conversation
        await turn(first.chat, "tag something")
        assert "| tags | 6 |" in counts_text(first)
        first.detach()  # the page went away

        again = AgentChat(conversation=first.live.id, model=ScriptedProvider([DONE]))
        assert again.live is first.live and again.state is first.state
        text = shown(again)
        assert "tag something" in text and "Tagging." in text and "tagged" in text and "**Saved**" in text
        assert "| tags | 6 |" in counts_text(again)  # the same database, not a fresh demo
        assert "Undo" in buttons_of(again.chat.objects[-1])
        assert "tag something" in history_text(again)
        # a new page without the id starts a new conversation on a fresh demo
        other = AgentChat(model=ScriptedProvider([DONE]))
        assert other.live is not first.live and "| tags | 5 |" in counts_text(other)
        again.close(), other.close()

    asyncio.run(scenario())


def test_a_step_waiting_for_approval_survives_a_reload(tmp_path):
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    app_engine, other = create_demo_engine(url), create_engine(url)

    async def scenario() -> None:
        first = AgentChat(engine=app_engine, model=ScriptedProvider([TAG, DONE]), approve=None)
        await turn(first.chat, "tag something")
        assert first.state.pending is not None
        first.detach()

        again = AgentChat(engine=app_engine, conversation=first.live.id, model=ScriptedProvider([TAG, DONE]), approve=None)
        question = again.chat.objects[-1]
        buttons = buttons_of(question)
        assert not buttons["Approve"].disabled  # still the open transaction: it can be decided here
        assert "kept" not in tags(other)
        buttons["Approve"].clicks += 1
        await finished(again.chat, len(again.chat.objects) + 1)
        assert "**Saved**" in text_of(again.chat.objects[-1]) and "kept" in tags(other)
        again.close()

    asyncio.run(scenario())
    app_engine.dispose(), other.dispose()


def test_a_turn_still_running_is_followed_after_a_reload():
    gate = asyncio.Event()

    class Gated(ScriptedProvider):
        async def stream(self, request: Any) -> AsyncIterator[Any]:
            first = not self.requests
            async for item in super().stream(request):
                yield item
            if first:
                await gate.wait()

    async def scenario() -> None:
        first = AgentChat(model=Gated([TAG, DONE]))
        first.chat.send("tag something", respond=True)
        await until(lambda: first.live.running and "Tagging." in text_of(first.chat.objects[-1]))
        first.detach()  # reloaded mid-turn: the turn goes on

        again = AgentChat(conversation=first.live.id, model=ScriptedProvider([DONE]))
        assert again.live.running and "tag something" in shown(again)
        gate.set()
        await until(lambda: not again.live.running and "_Done" in text_of(again.chat.objects[-1]))
        assert "**Saved**" in text_of(again.chat.objects[-1]) and "| tags | 6 |" in counts_text(again)
        again.close()

    asyncio.run(scenario())


def test_an_unknown_or_expired_conversation_starts_a_new_one():
    app = AgentChat(conversation="no-such-conversation", model=ScriptedProvider([DONE]))
    assert "no longer on this server" in shown(app) and app.live.id != "no-such-conversation"
    app.close()


def test_the_registry_keeps_detached_conversations_for_a_while_only():
    from py_agent.state import State
    from py_agent.panel_ui.conversations import LiveConversation

    registry = Registry(keep_seconds=60, keep_at_most=2)
    closed: list[str] = []

    def live(name: str) -> LiveConversation:
        conversation = LiveConversation(State(), key="app", conversation_id=name)
        conversation.close = lambda: closed.append(name)  # type: ignore[method-assign]
        return registry.add(conversation)

    a = live("a")
    a.attach(object())  # shown in a tab: never closed
    b, c = live("b"), live("c")
    now = time.monotonic()
    b.detached_at, c.detached_at = now - 50, now - 20
    registry.sweep(now=now)
    assert closed == [] and len(registry) == 3
    registry.sweep(now=now + 20)  # b was left 70 s ago
    assert closed == ["b"] and "a" in registry and "c" in registry
    assert registry.find("c", key="app", owner=None) is c
    assert registry.find("c", key="another app", owner=None) is None
    assert registry.find("c", key="app", owner="someone") is None  # not another person's
    d, e = live("d"), live("e")
    d.detached_at, e.detached_at = now - 5, now - 4
    registry.sweep(now=now + 20)  # three detached, two kept at most: the oldest goes
    assert closed == ["b", "c"]


APP = '''
"""The demo schema as an app module."""
from py_agent.demo import Base
'''


def test_a_stored_conversation_resumes_in_another_process(tmp_path):
    app_file = tmp_path / "reload_shop_app.py"
    app_file.write_text(textwrap.dedent(APP))
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    create_demo_engine(url).dispose()
    server = Server.create(str(app_file), url, store_url=url, separate_process=False)

    async def scenario() -> str:
        first = AgentChat(server=server, owner="ann", model=ScriptedProvider([TAG, DONE]))
        await turn(first.chat, "tag something")
        # Bob cannot come back into Ann's live conversation, even with its id
        bob = AgentChat(server=server, owner="bob", conversation=first.live.id, model=ScriptedProvider([DONE]))
        assert bob.live is not first.live and "this is a new conversation" in shown(bob)
        bob.close()
        conversation_id = first.live.id
        first.close()  # as if the page came back to another server process: only the store has it
        assert conversation_id not in LIVE
        return conversation_id

    conversation_id = asyncio.run(scenario())
    again = AgentChat(server=server, owner="ann", conversation=conversation_id, model=ScriptedProvider([DONE]))
    text = shown(again)
    assert "tag something" in text and "Tagging." in text and "session.add(Tag(name='kept'))" in text
    assert "kept" in tags(server.engine)
    assert "tag something" in history_text(again)  # the history lives in the database
    assert "reload_shop" not in str(again.conversations_view.object) and conversation_id in str(again.conversations_view.object)
    again.close()


def test_panel_serve_settings_come_from_the_environment():
    assert from_environment({}) == {}
    assert from_environment({"PY_AGENT_ASK": "1"}) == {"approve": None}
    options = from_environment({"PY_AGENT_APP": "shop.py", "PY_AGENT_DB": "sqlite:///x.db", "PY_AGENT_IN_PROCESS": "1"})
    assert options == {"app": "shop.py", "url": "sqlite:///x.db", "store_url": None, "separate_process": False}
