"""show() and chart() in real steps: display events after the step's output, the summary in
what the model reads, a query result as the last expression, and no way around the sandbox.
Pure: runs in Pyodide too."""

from __future__ import annotations

import inspect
import json

import pytest
from helpers import of_type

from py_agent import tool
from py_agent.sandbox.executor import Executor

LAST_VALUE_HOOK = "on_value" in inspect.signature(Executor).parameters


def run_code(turn, code: str, **options):
    events, state, _ = turn([{"message": "Here.", "code": code}, {"message": "Done.", "code": ""}], **options)
    return events, state


def test_show_and_chart_become_display_events_after_the_output(turn):
    events, state = run_code(
        turn,
        'print("before")\n'
        'show(session.execute(select(Book.title, Book.price).order_by(Book.title)), title="Books")\n'
        'chart(session.execute(select(Book.genre, func.count().label("books")).group_by(Book.genre)), x="genre", y="books", title="Per genre")\n'
        'print("after")\n',
    )
    kinds = [e.type for e in events]
    start = kinds.index("execution_result")
    assert kinds[start + 1 : start + 3] == ["display", "display"]
    table, chart = of_type(events, "display")
    result = of_type(events, "execution_result")[0]
    assert table.step == chart.step == result.step == 1
    assert (table.kind, table.title, table.columns, table.truncated) == ("table", "Books", ["title", "price"], False)
    assert table.total == len(table.rows) > 5 and isinstance(table.rows[0][1], float)
    assert chart.kind == "chart" and chart.spec["mark"] == {"type": "bar"} and chart.columns == ["genre", "books"]
    assert {row["genre"] for row in chart.spec["data"]["values"]} >= {"fantasy", "romance"}
    json.dumps([e.to_dict() for e in events], allow_nan=False)
    # The model reads the summaries in the step's output, in order with what it printed.
    output = result.output
    assert output.index("before") < output.index('[table "Books"') < output.index('[bar chart "Per genre"') < output.index("after")
    assert "more rows not printed here" in output
    feedback = state.messages[2].model_text()
    assert '[table "Books" shown to the person' in feedback and "title | price" in feedback


def test_a_failed_step_keeps_what_it_showed_before_the_error(turn):
    events, _ = run_code(turn, "show(session.scalars(select(Author)).all())\nsession.add(Author(name='Nobody'))\nsession.flush()\n1 / 0\n")
    [display] = of_type(events, "display")
    assert "name" in display.columns and display.total >= 1
    assert of_type(events, "execution_result")[0].error.endswith("ZeroDivisionError: division by zero")
    assert of_type(events, "changes")[0].status == "rolled_back"


def test_a_step_waiting_for_approval_shows_its_displays_before_the_approval_card(turn):
    events, _ = run_code(turn, "session.add(Author(name='Someone New'))\nshow(session.scalars(select(Author).where(Author.name == 'Someone New')))\n", approve=None)
    kinds = [e.type for e in events]
    assert kinds.index("execution_result") < kinds.index("display") < kinds.index("approval_required")
    assert of_type(events, "display")[0].rows[0][1] == "Someone New"


@pytest.mark.skipif(not LAST_VALUE_HOOK, reason="needs the executor's on_value hook (requested from the sandbox helper)")
def test_a_query_result_as_the_last_expression_is_shown_as_a_table(turn):
    events, _ = run_code(turn, "session.execute(select(Author.name, Author.country).order_by(Author.name))")
    [display] = of_type(events, "display")
    assert display.columns == ["name", "country"] and display.title is None
    output = of_type(events, "execution_result")[0].output
    assert output.startswith("[table shown to the person:") and "ChunkedIteratorResult" not in output
    # Other values keep their repr.
    events, _ = run_code(turn, "[{'a': 1}]")
    assert of_type(events, "display") == [] and of_type(events, "execution_result")[0].output.strip() == "[{'a': 1}]"


def test_mistakes_are_the_steps_error_with_what_to_do(turn):
    events, _ = run_code(turn, "chart(session.execute(select(Book.title, Book.price)), x='title', y='cost')")
    error = of_type(events, "execution_result")[0].error
    assert "there is no column 'cost' for y=; the columns are: title, price" in error
    assert of_type(events, "display") == []


def test_show_reads_no_attribute_of_model_objects_and_hands_back_nothing(turn):
    code = (
        "class Spy:\n"
        "    @property\n"
        "    def title(self):\n"
        "        print('the title was read')\n"
        "        return 'x'\n"
        "    def keys(self):\n"
        "        print('keys() was called')\n"
        "        return ['title']\n"
        "got = show([Spy()], columns=['title'])\n"
        "print('got', got)\n"
        "print(type(show).__name__, type(chart).__name__)\n"
    )
    events, _ = run_code(turn, code)
    result = of_type(events, "execution_result")[0]
    assert result.error is None, result.error
    assert "was read" not in result.output and "was called" not in result.output
    assert "got None" in result.output and "function function" in result.output
    [display] = of_type(events, "display")
    assert display.columns == ["title"] and display.rows[0][0].startswith("<") and "Spy object" in display.rows[0][0]


@pytest.mark.parametrize("code", ["show.__globals__", "show.__closure__[0].cell_contents", "getattr(show, '__closure__')"])
def test_the_functions_internals_are_out_of_reach(turn, code):
    events, _ = run_code(turn, f"x = {code}\nprint(x)")
    assert of_type(events, "validation_failed") and not of_type(events, "execution_result")


def test_the_functions_carry_nothing_of_the_host(turn):
    events, _ = run_code(turn, "print(vars(show), vars(chart))\nprint([n for n in dir(show) if not n.startswith('__')])")
    assert of_type(events, "execution_result")[0].output == "{} {}\n[]\n"


def test_an_apps_own_tool_named_show_wins(turn):
    @tool
    def show(text: str) -> str:
        """The app's own show."""
        return f"app show: {text}"

    events, _ = run_code(turn, "print(show('hi'))", tools=[show])
    assert "app show: hi" in of_type(events, "execution_result")[0].output
    assert of_type(events, "display") == []


def test_the_system_prompt_teaches_show_and_chart(turn):
    events, _ = run_code(turn, "")
    prompt = of_type(events, "system")[0].text
    assert "show(rows" in prompt and "chart(rows" in prompt and "print() for what you need to read yourself" in prompt
