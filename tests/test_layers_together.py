"""How the validator's policy meets the rest: the schema's names, the time bound."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from helpers import of_type
from py_agent.sandbox.validator import check


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
