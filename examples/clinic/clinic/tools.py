"""The clinic's one tool: finding a free slot in a doctor's day."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from py_agent import tool

from .models import Appointment, AppointmentStatus

OPENS, CLOSES, STEP = time(9, 0), time(17, 0), timedelta(minutes=15)


@tool
def next_free_slot(session: Session, doctor_id: int, day: date, minutes: int = 30) -> datetime | None:
    """The first time on `day` when the doctor is free for `minutes`, or None.

    Clinic hours are Monday to Friday, 9:00 to 17:00; slots start every 15 minutes.
    Booked appointments block their time; cancelled ones and no-shows do not.
    Pass the open `session`: next_free_slot(session, doctor_id=2, day=date(2026, 12, 1)).
    """
    if day.weekday() >= 5:
        return None
    taken = session.execute(
        select(Appointment.starts_at, Appointment.minutes).where(
            Appointment.doctor_id == doctor_id,
            Appointment.status.in_([AppointmentStatus.BOOKED, AppointmentStatus.DONE]),
            Appointment.starts_at >= datetime.combine(day, time.min),
            Appointment.starts_at < datetime.combine(day + timedelta(days=1), time.min),
        )
    ).all()
    busy = [(start, start + timedelta(minutes=length)) for start, length in taken]
    start, last = datetime.combine(day, OPENS), datetime.combine(day, CLOSES) - timedelta(minutes=minutes)
    while start <= last:
        end = start + timedelta(minutes=minutes)
        if all(end <= b_start or start >= b_end for b_start, b_end in busy):
            return start
        start += STEP
    return None
