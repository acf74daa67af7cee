"""Many people at once: sessions with their own conversation, approvals and undo; stored and resumed anywhere."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import text

from py_agent import ScriptedProvider
from py_agent.demo import create_demo_engine
from py_agent.server import ConversationConflict, ConversationNotFound, ConversationStore, Server

pytestmark = [pytest.mark.cpython_only]

DONE = {"message": "done", "code": ""}
APP = '''
"""The demo schema as an app module (what a server loads, in each process and each worker)."""
from py_agent.demo import Base
'''


def add(name: str) -> dict:
    return {"message": f"Adding {name}.", "code": f"session.add(Tag(name={name!r}))"}


@pytest.fixture(scope="module")
def app_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("sessions_app") / "sessions_shop_app.py"
    path.write_text(textwrap.dedent(APP))
    return str(path)


def tags(engine) -> set[str]:
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(text("SELECT name FROM tags"))}


# -- the store --------------------------------------------------------------------------------------

def test_the_store_keeps_conversations_and_refuses_lost_updates(tmp_path):
    engine = create_demo_engine(f"sqlite:///{tmp_path / 'store.db'}")
    store = ConversationStore(engine)
    mine = store.create({"messages": []}, owner="ann")
    theirs = store.create({"messages": []})
    assert mine.id != theirs.id and len(mine.id) >= 20
    version = store.save(mine.id, {"messages": [{"role": "user"}]}, version=mine.version, title="hello")
    assert store.load(mine.id, owner="ann").data == {"messages": [{"role": "user"}]}
    with pytest.raises(ConversationConflict):
        store.save(mine.id, {"messages": []}, version=mine.version)  # someone saved since
    store.save(mine.id, {"messages": []}, version=version)
    with pytest.raises(ConversationNotFound):
        store.load(mine.id, owner="bob")  # another person's
    with pytest.raises(ConversationNotFound):
        store.load("no-such-id")
    assert [c.title for c in store.list(owner="ann")] == ["hello"] and store.count() == 2
    engine.dispose()


# -- the Panel app with many sessions ----------------------------------------------------------------

@pytest.mark.postgres
def test_two_sessions_interleave_with_their_own_approvals_undo_and_conversations(app_file, postgres_demo):
    pytest.importorskip("panel")
    from test_panel_app import buttons_of, finished, text_of, turn

    from py_agent.panel_app import AgentChat

    server = Server.create(app_file, postgres_demo.url)  # conversations in py_agent.conversations
    engine = postgres_demo.engine

    async def scenario() -> tuple[str, str]:
        ann = AgentChat(server=server, model=ScriptedProvider([add("ann's"), DONE, add("ann's second"), DONE]), approve=None)
        bob = AgentChat(server=server, model=ScriptedProvider([add("bob's"), DONE]), approve=None)
        assert ann.conversation.id != bob.conversation.id
        assert ann.state._workspace is not bob.state._workspace

        await turn(ann.chat, "add ann's tag")  # Ann's step waits for her decision...
        ann_question = ann.chat.objects[-1]
        assert ann.state.pending is not None and "ann's" not in tags(engine)

        await turn(bob.chat, "add bob's tag")  # ...while Bob's runs, and he approves his
        assert bob.state.pending is not None
        buttons_of(bob.chat.objects[-1])["Approve"].clicks += 1
        await finished(bob.chat, len(bob.chat.objects) + 1)
        assert "bob's" in tags(engine) and ann.state.pending is not None

        buttons_of(ann_question)["Decline"].clicks += 1  # Ann declines hers: only hers is rolled back
        await finished(ann.chat, len(ann.chat.objects) + 1)
        assert "Declined" in text_of(ann.chat.objects[-1])
        assert "ann's" not in tags(engine) and "bob's" in tags(engine)

        await turn(ann.chat, "add another")
        buttons_of(ann.chat.objects[-1])["Approve"].clicks += 1
        await finished(ann.chat, len(ann.chat.objects) + 1)
        assert "ann's second" in tags(engine)

        # Bob's undo undoes Bob's turn, not Ann's later one.
        assert "Undone" in bob.undo()
        assert "bob's" not in tags(engine) and "ann's second" in tags(engine)
        assert "Nothing was undone" in bob.undo()
        ann.close(), bob.close()
        return ann.conversation.id, bob.conversation.id

    ann_id, bob_id = asyncio.run(scenario())
    stored_ann, stored_bob = server.store.load(ann_id), server.store.load(bob_id)
    assert [m["content"] for m in stored_ann.data["messages"] if m.get("kind") == "user"] == ["add ann's tag", "add another"]
    assert [m["content"] for m in stored_bob.data["messages"] if m.get("kind") == "user"] == ["add bob's tag"]

    # a later session (a reload, any process) resumes Ann's conversation with its history
    again = AgentChat(server=server, conversation=ann_id, model=ScriptedProvider([DONE]))
    shown = "\n".join(text_of(m) for m in again.chat.objects)
    assert "add ann's tag" in shown and "Adding ann's second." in shown and "bob" not in shown
    assert [p.request for p in again.state.history] == ["add another"]
    again.close()


@pytest.mark.postgres
def test_create_app_serves_a_stored_conversation_per_session(app_file, postgres_demo):
    pytest.importorskip("panel")
    import panel as pn

    from py_agent.panel_app import AgentChat, create_app, shared_server

    layout = create_app(app=app_file, url=postgres_demo.url, separate_process=False)
    assert isinstance(layout, pn.viewable.Viewable)
    server = shared_server(app_file, postgres_demo.url, separate_process=False)
    assert server.store is not None and server.store.count() == 0  # stored at its first turn, not before
    assert shared_server(app_file, postgres_demo.url, separate_process=False) is server  # one per process
    # an address with an unknown conversation starts a new one and says so
    chat = AgentChat(server=server, conversation="not-a-conversation")
    assert any("new conversation" in str(m.object) for m in chat.chat.objects)
    chat.close()


RESUME = '''
import json, sys
from py_agent import ScriptedProvider
from py_agent.server import Server

app, url, conversation = sys.argv[1:4]
server = Server.create(app, url)
c = server.open(conversation)
c.state.messages.append(__import__("py_agent").UserMessage("add from the second process"))
agent = server.agent(ScriptedProvider([{"message": "", "code": "session.add(Tag(name='second process'))"}, {"message": "ok", "code": ""}]))
events = list(agent.run(c.state))
c.save()
c.close()
print(json.dumps({"reason": events[-1].reason}))
'''


@pytest.mark.postgres
def test_a_conversation_is_resumed_by_a_second_process(app_file, postgres_demo, tmp_path):
    server = Server.create(app_file, postgres_demo.url)
    first = server.open()
    first.state.messages.append(__import__("py_agent").UserMessage("add from the first process"))
    agent = server.agent(ScriptedProvider([add("first process"), {"message": "ok", "code": ""}]))
    assert list(agent.run(first.state))[-1].reason == "done"
    first.save()

    script = tmp_path / "resume.py"
    script.write_text(RESUME)
    done = subprocess.run([sys.executable, str(script), app_file, postgres_demo.url, first.id], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["reason"] == "done"

    stored = server.store.load(first.id)
    requests = [m["content"] for m in stored.data["messages"] if m.get("kind") == "user"]
    assert requests == ["add from the first process", "add from the second process"]
    assert {"first process", "second process"} <= tags(postgres_demo.engine)
    # Each committed turn is a point of this conversation, whichever process committed it.
    resumed = server.open(first.id)
    assert [p.request for p in resumed.state.history] == ["add from the first process", "add from the second process"]
    # The first process's copy is stale now: saving it would lose the second process's turn.
    with pytest.raises(ConversationConflict):
        first.save()
    first.close(), resumed.close()
