"""llmalchemy's known bugs, each through the whole loop, so they stay fixed."""

from __future__ import annotations

from pydantic import BaseModel
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from helpers import of_type


def test_subclasses_are_in_the_prompt(turn):
    class Base(DeclarativeBase):
        pass

    class Vehicle(Base):
        """Anything with wheels."""

        __tablename__ = "vehicles"
        id: Mapped[int] = mapped_column(primary_key=True)
        kind: Mapped[str] = mapped_column(String(20))
        __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "vehicle"}

    class Truck(Vehicle):
        """A vehicle that carries freight."""

        __tablename__ = "trucks"
        id: Mapped[int] = mapped_column(ForeignKey("vehicles.id"), primary_key=True)
        payload_kg: Mapped[int]
        __mapper_args__ = {"polymorphic_identity": "truck"}

    class Van(Vehicle):
        """Single-table subclass."""

        seats: Mapped[int | None]
        __mapper_args__ = {"polymorphic_identity": "van"}

    _, _, agent = turn([{"message": "", "code": ""}], base=Base)
    for fact in ("Truck", "payload_kg", "A vehicle that carries freight.", "Van", "seats"):
        assert fact in agent.system_prompt
    assert {"Vehicle", "Truck", "Van"} <= set(agent.symbols)


def test_isinstance_with_output_extensions(turn):
    class Mood(BaseModel):
        mood: str

    _, state, _ = turn([{"mood": "calm", "message": "", "code": ""}], output_extensions=[Mood])
    assert isinstance(state.last_reply, Mood)


def test_builtins_import_is_refused_by_both_layers(turn):
    code = "__builtins__['__import__']('os').system('echo pwned')"
    events, _, _ = turn([{"message": "", "code": code}, {"message": "", "code": ""}])
    assert of_type(events, "validation_failed"), "the validator must refuse it"
    assert not of_type(events, "execution_result")


def test_system_exit_does_not_escape(turn):
    events, _, _ = turn([{"message": "", "code": "print('bye')\nraise SystemExit(0)"}, {"message": "still alive", "code": ""}])
    result = of_type(events, "execution_result")[0]
    assert "SystemExit" in result.error and result.output == "bye\n"
    assert events[-1].reason == "done"


def test_output_is_not_lost_on_error(turn):
    events, state, _ = turn([{"message": "", "code": "print('partial result 123')\nraise ValueError('late')"}, {"message": "", "code": ""}])
    result = of_type(events, "execution_result")[0]
    assert result.output == "partial result 123\n" and "ValueError: late" in result.error
    assert "partial result 123" in state.messages[2].content and "ValueError: late" in state.messages[2].content
