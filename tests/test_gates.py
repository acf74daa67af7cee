"""Tools and model functions called from agent code: one calling convention, tool_call events,
usage and cost counted toward the turn, and gated calls (never / ask / blocked / a rule) that
pause the step, then run it again with the person's decision. Pure Python (also in Pyodide)."""

from __future__ import annotations

import enum
import inspect

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from py_agent import Agent, FunctionProvider, Policy, ScriptedProvider, State, UserMessage, llm_func, tool
from py_agent.demo import Author, Base, Book, Genre
from py_agent.errors import ConfigurationError
from py_agent.gates import MAX_DECISIONS_PER_STEP, describe
from py_agent.pricing import set_price
from py_agent.tools import Toolbox

from helpers import of_type

DONE = {"message": "done", "code": ""}


def step(code: str, message: str = "") -> dict[str, str]:
    return {"message": message, "code": code}


def books(engine, title: str) -> list[Book]:
    with Session(engine) as s:
        return list(s.scalars(select(Book).where(Book.title == title)))


def authors(engine, name: str) -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(Author).where(Author.name == name))


# -- model functions from agent code -------------------------------------------------------------

INSERT_WITH_GENRES = """
author = Author(name="A. Newcomer", country="US")
session.add(author)
for title in ["The Dispossessed", "Tehanu"]:
    genre = await classify(title)
    session.add(Book(title=title, author=author, genre=genre, price=9))
session.flush()
print([(b.title, b.genre.value) for b in author.books])
"""


def test_agent_code_awaits_a_model_function_while_inserting_rows_and_its_cost_counts(turn, engine):
    set_price("test:classifier", input=1000.0, output=2000.0)  # $ per million tokens: easy to see
    classifier = ScriptedProvider(
        [step("result = Genre.SCIENCE_FICTION"), step("result = 'fantasy'")], model="test:classifier"
    )

    @llm_func(model=classifier)
    def classify(title: str) -> Genre:
        """The genre of a book, from its title."""

    events, state, agent = turn([step(INSERT_WITH_GENRES), DONE], tools=[classify])
    result = of_type(events, "execution_result")[0]
    assert result.error is None, result.error
    assert "('The Dispossessed', 'science fiction'), ('Tehanu', 'fantasy')" in result.output
    assert books(engine, "Tehanu")[0].genre is Genre.FANTASY
    # One line per call in the person's view: started, then finished with the result and usage.
    calls = of_type(events, "tool_call")
    assert [(c.name, c.status, c.kind) for c in calls] == [("classify", "started", "model"), ("classify", "finished", "model")] * 2
    finished = [c for c in calls if c.status == "finished"]
    assert [c.arguments for c in finished] == [{"title": "The Dispossessed"}, {"title": "Tehanu"}]
    assert [c.result for c in finished] == ["Genre.SCIENCE_FICTION", "Genre.FANTASY"]
    assert finished[0].id != finished[1].id and all(c.input_tokens > 0 and c.cost > 0 for c in finished)
    # Their usage and cost count toward the turn (the agent's own model is free: scripted).
    spent = sum(c.cost for c in finished)
    end = events[-1]
    assert end.cost == pytest.approx(spent) and state.cost == pytest.approx(spent)
    assert state.usage.input_tokens >= sum(c.input_tokens for c in finished) + sum(
        e.input_tokens for e in of_type(events, "assistant_reply")
    )
    # Listed like a tool, with the calling convention.
    assert "- classify: The genre of a book, from its title. (model function: await classify(...))" in agent.system_prompt


def test_a_model_function_without_a_model_uses_the_agents_and_a_def_is_awaited_too(engine):
    @llm_func
    def shout(text: str) -> str:
        """The text in capital letters."""

    def model(request):
        if request.system.startswith("You compute the result of one Python function"):
            return step("result = text.upper()")
        if len(request.messages) == 1:
            return step("print(await shout('quiet'))")
        return DONE

    agent = Agent(base=Base, model=FunctionProvider(model), tools=[shout])
    state = State(engine=engine)
    state.messages.append(UserMessage("shout"))
    events = list(agent.run(state))
    assert of_type(events, "execution_result")[0].output.strip() == "QUIET"
    assert inspect.iscoroutinefunction(state.namespace["shout"])


def test_a_per_turn_budget_stops_model_functions(turn):
    @llm_func(model=ScriptedProvider([step("result = 1")] * 5))
    def one() -> int:
        """One."""

    code = "print(await one())\nprint(await one())"
    events, _, _ = turn([step(code), DONE], tools=[one], max_call_tokens=1)
    result = of_type(events, "execution_result")[0]
    assert result.output.strip() == "1"
    assert "BudgetExceededError" in result.error and "budget of 1 tokens is spent" in result.error
    assert [c.status for c in of_type(events, "tool_call")] == ["started", "finished", "started", "failed"]


def test_tool_call_events_reach_subscribers_live_and_the_stream_after_the_step(engine):
    @tool
    def double(n: int) -> int:
        """Twice n."""
        return 2 * n

    @tool
    def broken() -> None:
        """Always fails."""
        raise ValueError("no luck")

    agent = Agent(base=Base, model=ScriptedProvider([step("print(double(21))\nbroken()"), DONE]), tools=[double, broken])
    state = State(engine=engine)
    live = []
    state.subscribe(live.append)
    state.messages.append(UserMessage("go"))
    events = list(agent.run(state))
    kinds = [e.type for e in events]
    calls = [e for e in events if e.type == "tool_call"]
    assert [(c.name, c.status) for c in calls] == [("double", "started"), ("double", "finished"), ("broken", "started"), ("broken", "failed")]
    assert calls[1].result == 42 and calls[1].duration_ms >= 0 and calls[3].error == "ValueError: no luck"
    assert calls[0].to_dict()["arguments"] == {"n": 21}
    # The stream: after the step ran, before its result. Subscribers: each once, as it happened.
    assert kinds.index("tool_call") > kinds.index("signal") and kinds.index("execution_result") > max(i for i, k in enumerate(kinds) if k == "tool_call")
    assert [e for e in live if e.type == "tool_call"] == calls


# -- gated calls ------------------------------------------------------------------------------------

SENT: list[tuple[str, str]] = []
LOGGED: list[str] = []


@tool(approval="ask")
def send_note(to: str, text: str) -> str:
    """Send a short note to someone (outside the database)."""
    SENT.append((to, text))
    return "sent"


@tool
def log_line(text: str) -> None:
    """Write a line to the app's log (an outside effect, not gated)."""
    LOGGED.append(text)


MIDDLE = """
session.add(Author(name="Gated Person"))
session.flush()
counter = counter + 1
log_line("about to send")
print("before the call")
answer = send_note("ann@example.com", text="Your order shipped")
print("after the call:", answer)
"""


@pytest.fixture(autouse=True)
def clean_outside_world():
    SENT.clear()
    LOGGED.clear()


def gated_state(engine) -> State:
    state = State(engine=engine)
    state.namespace["counter"] = 0
    return state


def test_a_gated_tool_declined_in_the_middle_of_a_step(engine):
    model = ScriptedProvider([step(MIDDLE), DONE])
    agent = Agent(base=Base, model=model, tools=[send_note, log_line])
    state = gated_state(engine)
    state.messages.append(UserMessage("add them and tell Ann"))
    events = list(agent.run(state))

    # The step reached the gated call: it stopped there, was rolled back and waits.
    assert events[-1].reason == "paused"
    asked = of_type(events, "approval_required")[0]
    assert asked.kind == "call" and asked.detail == {"name": "send_note", "arguments": {"to": "ann@example.com", "text": "Your order shipped"}}
    assert asked.code == MIDDLE and state.pending.kind == "call"
    assert not of_type(events, "execution_result") and SENT == []
    assert authors(engine, "Gated Person") == 0  # rolled back
    assert state.namespace["counter"] == 0  # names the step bound are put back
    assert LOGGED == ["about to send"]

    # Declined: the same step runs again and the call raises PermissionError at that point.
    state.resume(False)
    events = list(agent.run(state))
    assert of_type(events, "approval_decision")[0].approved is False
    result = of_type(events, "execution_result")[0]
    assert result.step == asked.step and "before the call" in result.output and "after the call" not in result.output
    assert "PermissionError: the person declined the call send_note(to=\"ann@example.com\", text=\"Your order shipped\")" in result.error
    assert SENT == [] and authors(engine, "Gated Person") == 0
    assert [c.status for c in of_type(events, "tool_call") if c.name == "send_note"] == ["declined"]
    # The documented consequence: what ran before the gated call ran twice (the database part did not).
    assert LOGGED == ["about to send", "about to send"] and state.namespace["counter"] == 1
    # The model read the refusal, and the turn went on.
    assert "PermissionError" in model.requests[-1].messages[-1].content
    assert events[-1].reason == "done"


def test_an_approved_call_runs_once_and_remember_allows_that_tool_for_the_conversation(engine):
    later = 'print(send_note("bob@example.com", "Another note"))'
    agent = Agent(base=Base, model=ScriptedProvider([step(MIDDLE), DONE, step(later), DONE]), tools=[send_note, log_line])
    state = gated_state(engine)
    state.messages.append(UserMessage("add them and tell Ann"))
    list(agent.run(state))
    state.resume(True, remember=True)
    events = list(agent.run(state))
    assert of_type(events, "approval_decision")[0].remember is True
    result = of_type(events, "execution_result")[0]
    assert result.error is None and "after the call: sent" in result.output
    assert SENT == [("ann@example.com", "Your order shipped")]
    assert of_type(events, "changes")[-1].status == "committed" and authors(engine, "Gated Person") == 1
    # Remembered: the next call of that tool (other arguments) does not ask; it is saved.
    state.messages.append(UserMessage("tell Bob too"))
    events = list(agent.run(state))
    assert not of_type(events, "approval_required") and SENT[-1] == ("bob@example.com", "Another note")
    saved = state.to_dict()
    assert saved["allowed_calls"] == ["send_note"]
    assert State.from_dict(saved).gate.remembered == {"send_note"}


def test_swallowing_the_signal_does_not_let_the_step_go_on(engine):
    sneaky = """
try:
    send_note("ann@example.com", "hi")
except BaseException:
    print("caught it")
session.add(Author(name="Sneaky Person"))
"""
    # The validator refuses `except BaseException`; without it (one layer is never the only
    # one) the gate still knows a call is waiting, and the step stops there.
    agent = Agent(base=Base, model=ScriptedProvider([step(sneaky), DONE]), tools=[send_note], policy=Policy(validator=False))
    state = State(engine=engine)
    state.messages.append(UserMessage("go"))
    events = list(agent.run(state))
    assert events[-1].reason == "paused" and of_type(events, "approval_required")[0].kind == "call"
    assert authors(engine, "Sneaky Person") == 0 and SENT == []
    assert state.workspace.pending is False  # the open transaction was rolled back


def test_blocked_tools_and_rules_of_the_arguments(turn):
    @tool(approval=lambda args: "blocked" if args["amount"] > 100 else "never")
    def refund(order: int, amount: float) -> str:
        """Refund an order."""
        return f"refunded {amount}"

    @tool(approval="blocked")
    def drop_everything() -> None:
        """Not allowed here."""

    code = "print(refund(1, 20))\ntry:\n    refund(2, amount=500)\nexcept PermissionError as e:\n    print('refused:', e)\ndrop_everything()"
    events, _, agent = turn([step(code), DONE], tools=[refund, drop_everything])
    result = of_type(events, "execution_result")[0]
    assert "refunded 20" in result.output
    assert "refused: refund() is blocked in this app for these arguments" in result.output
    assert "PermissionError: drop_everything() is blocked in this app" in result.error
    assert [(c.name, c.status) for c in of_type(events, "tool_call")] == [
        ("refund", "started"), ("refund", "finished"), ("refund", "blocked"), ("drop_everything", "blocked")
    ]
    assert "- refund: Refund an order. (may ask the person first)" in agent.system_prompt
    assert "- drop_everything: Not allowed here. (blocked)" in agent.system_prompt


def test_a_broken_rule_refuses_the_call(turn):
    @tool(approval=lambda args: args["missing"])
    def touchy(x: int) -> int:
        """Touchy."""
        return x

    events, _, _ = turn([step("touchy(1)"), DONE], tools=[touchy])
    error = of_type(events, "execution_result")[0].error
    assert "PermissionError: the app's approval rule for touchy failed (KeyError: 'missing'), so the call was not made" in error


def test_an_approve_function_decides_calls_without_pausing(turn):
    seen = []

    def approve(pending):
        seen.append((pending.kind, pending.detail))
        return pending.detail["arguments"]["to"].endswith("@example.com")

    code = 'print(send_note("ann@example.com", "one"))\ntry:\n    send_note("eve@evil.test", "two")\nexcept PermissionError:\n    print("declined")'
    events, _, _ = turn([step(code), DONE], tools=[send_note], approve=approve)
    assert events[-1].reason == "done" and not of_type(events, "approval_required")
    assert [d.approved for d in of_type(events, "approval_decision")] == [True, False]
    assert seen == [("call", {"name": "send_note", "arguments": {"to": "ann@example.com", "text": "one"}}),
                    ("call", {"name": "send_note", "arguments": {"to": "eve@evil.test", "text": "two"}})]
    result = of_type(events, "execution_result")
    assert len(result) == 1 and result[0].output.split() == ["sent", "declined"]
    assert SENT == [("ann@example.com", "one")]


def test_calls_whose_arguments_change_every_run_stop_asking(turn):
    counter = {"n": 0}

    @tool
    def tick() -> int:
        """A new number each call."""
        counter["n"] += 1
        return counter["n"]

    events, _, _ = turn([step("send_note('x@example.com', str(tick()))"), DONE], tools=[send_note, tick], approve=lambda p: True)
    error = of_type(events, "execution_result")[0].error
    assert f"this step already asked the person {MAX_DECISIONS_PER_STEP} times" in error
    assert len(of_type(events, "approval_decision")) == MAX_DECISIONS_PER_STEP


def test_without_a_gate_a_tool_that_asks_is_refused_and_rules_are_checked():
    names = Toolbox([send_note]).namespace()  # e.g. a separate worker process with no one to ask
    with pytest.raises(PermissionError, match="needs the person's approval, which cannot be asked for here"):
        names["send_note"]("a", "b")
    assert SENT == []
    with pytest.raises(ConfigurationError, match="approval rule of 'x' must be"):
        tool(approval="sometimes", name="x")(lambda: None)
    with pytest.raises(ConfigurationError, match="approvals names 'nope'"):
        Toolbox([send_note], approvals={"nope": "ask"})
    assert Toolbox([log_line], approvals={"log_line": "blocked"}).tools["log_line"].approval == "blocked"


def test_arguments_are_shown_as_json_safe_previews():
    class Colour(enum.Enum):
        RED = "red"

    author = Author(id=3, name="Ann")
    assert describe(author) == "Author(id=3, name='Ann')"
    assert describe({"c": Colour.RED, "xs": (1, 2.5, None)}) == {"c": "Colour.RED", "xs": [1, 2.5, None]}
    assert describe(object()) == "<object object>"  # no memory address: the same on every run
    assert describe("x" * 400).endswith("…") and len(describe(list(range(50)))) == 21


@pytest.mark.cpython_only
def test_a_model_function_inside_a_step_keeps_the_steps_time_limit(turn):
    """The snippet's own limit must not switch off the step's timer (one interval timer on CPython)."""

    @llm_func(model=ScriptedProvider([step("result = 1")]))
    def one() -> int:
        """One."""

    busy = "n = await one()\nwhile n < 10**9:\n    n += 1\nprint(n)"
    events, _, _ = turn([step(busy), DONE], tools=[one], timeout=0.5)
    result = of_type(events, "execution_result")[0]
    assert result.error is not None and "StepTimeout: the step ran longer than 0.5 s" in result.error
    assert result.duration_ms < 5000


@pytest.mark.cpython_only
def test_a_model_function_stops_asking_once_the_steps_time_is_up(turn):
    """The step's time runs out inside the snippet: the call ends with StepTimeout, no new attempt."""

    slow = "n = 0\nwhile True:\n    n += 1"
    model = ScriptedProvider([step(slow), step("result = 2")])

    @llm_func(model=model)
    def spin() -> int:
        """Spins."""

    events, _, _ = turn([step("print(await spin())"), DONE], tools=[spin], timeout=0.5)
    result = of_type(events, "execution_result")[0]
    assert "StepTimeout: the step ran longer than 0.5 s" in result.error
    assert model.remaining == 1  # the second attempt was never asked for
    assert [c.status for c in of_type(events, "tool_call")] == ["started", "failed"]


def test_an_approved_call_is_not_made_again_when_a_later_call_stops_the_step(engine):
    @tool(approval="ask")
    def charge(amount: int) -> str:
        """Charge the card (outside the database)."""
        SENT.append(("charge", str(amount)))
        return f"charged {amount}"

    code = 'print(charge(5))\nprint(send_note("ann@example.com", "charged"))'
    agent = Agent(base=Base, model=ScriptedProvider([step(code), DONE]), tools=[charge, send_note])
    state = State(engine=engine)
    state.messages.append(UserMessage("charge and tell"))
    assert of_type(list(agent.run(state)), "approval_required")[0].detail["name"] == "charge"
    state.resume(True, remember=True)  # "for this conversation": the remembered path replays too
    assert of_type(list(agent.run(state)), "approval_required")[0].detail["name"] == "send_note"
    state.resume(True)
    events = list(agent.run(state))
    assert of_type(events, "execution_result")[0].output.split("\n")[:2] == ["charged 5", "sent"]
    assert SENT == [("charge", "5"), ("ann@example.com", "charged")]  # charged once, not twice
