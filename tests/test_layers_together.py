"""How the sandbox's layers meet each other and the rest: the schema's names, the time
bound, the off switches, the shared walk, and the real agent loop."""

from __future__ import annotations

import ast
import textwrap

import pytest
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from helpers import of_type
from py_agent.sandbox.policy import LAYERS_OFF_VARIABLE, Policy, default_policy
from py_agent.sandbox.runtime import RuntimeLayer
from py_agent.sandbox.validator import _Checker, check, check_parsed
from sandbox_harness import MODULE_SECRET


def test_broad_except_is_refused_because_it_would_swallow_the_time_limit():
    for code in ("try:\n    x = 1\nexcept:\n    pass", "try:\n    x = 1\nexcept (ValueError, BaseException):\n    pass"):
        assert [v.rule for v in check(code)] == ["broad-except"]
        assert check(code)[0].line == 3
    assert check("try:\n    x = 1\nexcept Exception:\n    pass") == []


def test_schema_attribute_names_are_not_refused(turn):
    class Base(DeclarativeBase):
        pass

    class Car(Base):
        """A car; `engine` here is a column, not a database engine."""

        __tablename__ = "cars"
        id: Mapped[int] = mapped_column(primary_key=True)
        engine: Mapped[str] = mapped_column(String(20))

    code = "from sqlalchemy import select\nprint([c.engine for c in session.scalars(select(Car))])"
    assert any(v.rule == "blocked-attribute" for v in check(code))  # the bare policy refuses it
    from py_agent.database import memory_engine
    from py_agent import State

    eng = memory_engine()
    Base.metadata.create_all(eng)
    events, _, agent = turn([{"message": "", "code": code}, {"message": "", "code": ""}], base=Base, state=State(engine=eng))
    assert not of_type(events, "validation_failed")
    assert of_type(events, "execution_result")[0].output == "[]\n"
    # ...while reaching past the session is still refused
    assert any(v.rule == "blocked-attribute" for v in check("session.get_bind()", agent.policy))


# -- off switches ----------------------------------------------------------------------------------

def test_layers_switch_off_by_argument_or_environment(monkeypatch):
    assert (Policy().validator, Policy().runtime) == (True, True)
    assert Policy(validator=False).validator is False
    monkeypatch.setenv(LAYERS_OFF_VARIABLE, "validator")
    assert (Policy().validator, Policy().runtime) == (False, True)
    assert default_policy().validator is False
    monkeypatch.setenv(LAYERS_OFF_VARIABLE, "runtime")
    assert (Policy().validator, Policy().runtime) == (True, False)
    monkeypatch.setenv(LAYERS_OFF_VARIABLE, "validator,runtime")
    with pytest.raises(ValueError, match="at least one sandbox layer"):
        Policy()


def test_the_agent_uses_the_switches(monkeypatch, turn):
    code = "g = numbers()\nprint(getattr(g, 'gi_' + 'frame'))"

    def numbers():
        secret = MODULE_SECRET  # noqa: F841
        yield 1

    reply = [{"message": "", "code": code}, {"message": "", "code": ""}]
    events, _, _ = turn(list(reply), tools=[numbers])  # both layers: the run-time layer refuses it
    (result,) = of_type(events, "execution_result")
    assert "gi_frame" in result.error and MODULE_SECRET not in result.output + result.error
    monkeypatch.setenv(LAYERS_OFF_VARIABLE, "runtime")  # the validator alone: refused before running
    events, _, _ = turn(list(reply), tools=[numbers])
    assert of_type(events, "validation_failed") and not of_type(events, "execution_result")
    monkeypatch.setenv(LAYERS_OFF_VARIABLE, "validator")  # the run-time layer alone
    events, _, _ = turn(list(reply), tools=[numbers])
    (result,) = of_type(events, "execution_result")
    assert "gi_frame" in result.error and not of_type(events, "validation_failed")


# -- one walk, two layers ----------------------------------------------------------------------------

def _corpus() -> list[str]:
    import test_escape_format
    import test_escape_frames
    import test_escape_graph
    import test_escape_imports
    import test_escape_later
    import test_ordinary_code
    import test_validator

    codes = [code for module in (test_escape_format, test_escape_frames, test_escape_graph, test_escape_imports, test_escape_later) for _, code in module.PAYLOADS]
    codes += [code for _, code in test_ordinary_code.SNIPPETS]
    codes += list(test_validator.DUNDER_CASES) + [textwrap.dedent(c) for c in test_validator.BENIGN]
    return codes


def test_the_validator_finds_the_same_in_the_shared_walk():
    # With both layers on, the validator's checks ride on the rewrite's walk (one traversal);
    # they must find exactly what the validator finds walking alone.
    policy = Policy()
    for code in _corpus():
        together = check_parsed(code, policy)[0]
        tree = ast.parse(code)
        alone = _Checker(code, policy)
        alone.visit_all(tree)
        alone.check_module_members()
        assert sorted(together, key=str) == sorted(alone.violations, key=str), code


def test_a_checked_tree_is_compiled_without_a_second_walk(monkeypatch):
    policy = Policy()
    layer = RuntimeLayer(policy)
    violations, tree = check_parsed("x = [1].count(1)", policy)
    assert violations == [] and tree is not None
    monkeypatch.setattr(layer, "prepare", lambda *a: pytest.fail("walked twice"))
    namespace = {"__builtins__": layer.builtins}
    exec(layer.compile("x = [1].count(1)", "<t>", tree), namespace)
    assert namespace["x"] == 1


def test_a_tree_prepared_under_another_policy_is_parsed_again():
    _, tree = check_parsed("x = len('ab')", Policy())
    layer = RuntimeLayer(Policy())
    namespace = {"__builtins__": layer.builtins}
    exec(layer.compile("x = len('ab')", "<t>", tree), namespace)
    assert namespace["x"] == 2
