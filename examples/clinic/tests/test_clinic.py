"""The clinic app, tested through py-agent's public surface only: load_app, the pytest plugin's
fixtures (agent_engine, agent_state, run_turn, fake_openai), agent_for_server and the CLI."""

from __future__ import annotations

import io
import json
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from py_agent import UserMessage
from py_agent.cli import main
from py_agent.recording import Demo
from py_agent.testing import agent_for_server

EXAMPLE = Path(__file__).resolve().parents[1]


def rows(engine, sql: str) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(text(sql))]


def test_the_app(py_agent_app, agent_engine) -> None:
    assert py_agent_app.title == "Clinic"
    assert [t.name for t in py_agent_app.tools] == ["next_free_slot"]
    assert py_agent_app.suggestions[0].startswith("Which patients are allergic to penicillin")
    assert rows(agent_engine, "select count(*) from doctors") == [(4,)]
    assert rows(agent_engine, "select count(*) from staff") == [(6,)]  # joined inheritance: doctors and nurses


def test_the_tool(py_agent_app, agent_engine) -> None:
    tool = py_agent_app.tools[0].function
    with Session(agent_engine) as session:
        weber = session.scalars(select(py_agent_app.module.Doctor).where(py_agent_app.module.Doctor.name.like("%Weber"))).one()
        assert tool(session, weber.id, date(2026, 12, 1)) == datetime(2026, 12, 1, 10, 0)  # 9:00 and 9:30 are taken
        assert tool(session, weber.id, date(2026, 12, 5)) is None  # a Saturday


BOOK = {
    "message": "Booking Grace Hopper with the pediatrician's first free slot.",
    "code": (
        "from datetime import date\n"
        "doctor = session.scalars(select(Doctor).where(Doctor.specialty == Specialty.PEDIATRICS)).one()\n"
        "grace = session.scalars(select(Patient).where(Patient.name == 'Grace Hopper')).one()\n"
        "slot = next_free_slot(session, doctor_id=doctor.id, day=date(2026, 12, 3))\n"
        "session.add(Appointment(patient=grace, doctor=doctor, starts_at=slot, reason='check-up'))\n"
        "print(slot)"
    ),
}


def test_a_turn_through_a_fake_openai_server(py_agent_app, fake_openai, agent_state, agent_engine) -> None:
    fake_openai.reply(BOOK, {"message": "Booked for 9:00 on 3 December.", "code": ""})
    agent = agent_for_server(py_agent_app, fake_openai)
    agent_state.messages.append(UserMessage("Book Grace Hopper with the pediatrician on December 3rd"))
    events = list(agent.run(agent_state))
    assert events[-1].reason == "done"
    assert [e.output for e in events if e.type == "execution_result"] == ["2026-12-03 09:00:00\n"]
    assert rows(agent_engine, "select p.name, a.status, a.starts_at from appointments a join patients p on p.id = a.patient_id "
                              "where a.reason = 'check-up' and a.starts_at like '2026-12-03%'") == \
        [("Grace Hopper", "BOOKED", "2026-12-03 09:00:00.000000")]
    system = fake_openai.requests[0].body["messages"][0]["content"]
    assert "class Doctor(StaffMember)" in system and "next_free_slot" in system
    assert "Never delete an appointment" in system  # the app's own instructions


def test_a_declined_change_leaves_the_data_alone(run_turn, agent_engine) -> None:
    before = rows(agent_engine, "select id, status from appointments order by id")
    result = run_turn("cancel everything", approve=False, replies=[
        {"message": "Cancelling.", "code": "for a in session.scalars(select(Appointment)):\n    a.status = AppointmentStatus.CANCELLED"},
        {"message": "Declined, so nothing changed.", "code": ""},
    ])
    assert [c.status for c in result.changes] == ["declined"]
    assert rows(agent_engine, "select id, status from appointments order by id") == before


def test_the_recorded_demo_replays(py_agent_app, run_turn, agent_engine) -> None:
    demo = py_agent_app.demo()
    model = py_agent_app.recorded_model()
    for turn in demo.turns:
        result = run_turn(turn.request, model=model)
        assert result.end.reason == "done"
        assert result.message == turn.steps[-1].message
        assert len(result.errors) == sum(step.failed for step in turn.steps)  # only the recorded, fixed mistake
    assert rows(agent_engine, "select p.name, a.starts_at from appointments a join patients p on p.id = a.patient_id "
                              "where a.reason = 'chest pain'") == [("Grace Hopper", "2026-12-01 10:00:00.000000")]
    assert rows(agent_engine, "select count(*) from appointments where status = 'CANCELLED' and starts_at like '2026-12-02%'") == [(3,)]


def test_the_demo_is_what_recording_the_script_gives(py_agent_app, tmp_path: Path) -> None:
    """demo.json is made by `py-agent chat --record` from scripted replies; doing it again gives the same turns."""
    record = tmp_path / "demo.json"
    requests = (EXAMPLE / "scripted_requests.txt").read_text()
    out = io.StringIO()
    code = main(["chat", "--app", str(EXAMPLE / "clinic"), "--db", "sqlite://", "--yes", "--no-log",
                 "--model", f"script:{EXAMPLE / 'scripted_replies.json'}", "--record", str(record)],
                stdin=io.StringIO(requests), stdout=out)
    assert code == 0, out.getvalue()
    assert Demo.load(record).turns == py_agent_app.demo().turns
    assert len(json.loads((EXAMPLE / "scripted_replies.json").read_text())) == 7
