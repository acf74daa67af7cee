"""The clinic's schema: staff (doctors and nurses, joined-table inheritance), patients and
their allergies (many-to-many), appointments with a status, and prescriptions."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Optional

from sqlalchemy import CheckConstraint, Column, ForeignKey, String, Table, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Specialty(enum.Enum):
    GENERAL_PRACTICE = "general practice"
    CARDIOLOGY = "cardiology"
    DERMATOLOGY = "dermatology"
    PEDIATRICS = "pediatrics"


class AppointmentStatus(enum.Enum):
    BOOKED = "booked"
    DONE = "done"
    CANCELLED = "cancelled"
    NO_SHOW = "no show"


patient_allergies = Table(
    "patient_allergies",
    Base.metadata,
    Column("patient_id", ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True),
    Column("allergy_id", ForeignKey("allergies.id", ondelete="CASCADE"), primary_key=True),
)


class StaffMember(Base):
    """Someone who works at the clinic. Doctors and nurses have their own tables as well."""

    __tablename__ = "staff"
    __mapper_args__ = {"polymorphic_on": "role", "polymorphic_identity": "staff"}

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    hired: Mapped[date]
    role: Mapped[str] = mapped_column(String(20))


class Doctor(StaffMember):
    """A physician who sees patients (joined-table inheritance: rows in staff and doctors)."""

    __tablename__ = "doctors"
    __mapper_args__ = {"polymorphic_identity": "doctor"}

    id: Mapped[int] = mapped_column(ForeignKey("staff.id"), primary_key=True)
    specialty: Mapped[Specialty]
    room: Mapped[str] = mapped_column(String(10), comment="consulting room, e.g. 'B2'")

    appointments: Mapped[list["Appointment"]] = relationship(back_populates="doctor")


class Nurse(StaffMember):
    """A nurse assigned to a ward."""

    __tablename__ = "nurses"
    __mapper_args__ = {"polymorphic_identity": "nurse"}

    id: Mapped[int] = mapped_column(ForeignKey("staff.id"), primary_key=True)
    ward: Mapped[str] = mapped_column(String(50))
    certified_until: Mapped[Optional[date]]


class Allergy(Base):
    """Something a patient must not be given, e.g. 'penicillin' or 'latex'."""

    __tablename__ = "allergies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)

    patients: Mapped[list["Patient"]] = relationship(secondary=patient_allergies, back_populates="allergies")


class Patient(Base):
    """A person registered at the clinic."""

    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    born: Mapped[date]
    phone: Mapped[Optional[str]] = mapped_column(String(30))

    allergies: Mapped[list[Allergy]] = relationship(secondary=patient_allergies, back_populates="patients")
    appointments: Mapped[list["Appointment"]] = relationship(back_populates="patient", cascade="all, delete-orphan")


class Appointment(Base):
    """A patient's visit to a doctor. Clinic hours are Monday to Friday, 9:00 to 17:00."""

    __tablename__ = "appointments"
    __table_args__ = (CheckConstraint("minutes > 0"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    doctor_id: Mapped[int] = mapped_column(ForeignKey("doctors.id"), index=True)
    starts_at: Mapped[datetime] = mapped_column(index=True)
    minutes: Mapped[int] = mapped_column(default=30)
    status: Mapped[AppointmentStatus] = mapped_column(default=AppointmentStatus.BOOKED)
    reason: Mapped[str] = mapped_column(String(200))

    patient: Mapped[Patient] = relationship(back_populates="appointments")
    doctor: Mapped[Doctor] = relationship(back_populates="appointments")
    prescriptions: Mapped[list["Prescription"]] = relationship(back_populates="appointment", cascade="all, delete-orphan")


class Prescription(Base):
    """A drug prescribed at an appointment."""

    __tablename__ = "prescriptions"
    __table_args__ = (CheckConstraint("days > 0"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"))
    drug: Mapped[str] = mapped_column(String(100))
    dose: Mapped[str] = mapped_column(String(100), comment="e.g. '500 mg three times a day'")
    days: Mapped[int]
    notes: Mapped[Optional[str]] = mapped_column(Text)

    appointment: Mapped[Appointment] = relationship(back_populates="prescriptions")
