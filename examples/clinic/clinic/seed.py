"""Deterministic seed data: one week of appointments (Monday 30 November to Friday 4 December
2026) and a few past visits with prescriptions."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.orm import Session

from .models import Allergy, Appointment, AppointmentStatus, Doctor, Nurse, Patient, Prescription, Specialty

DOCTORS = [
    ("Dr. Amara Okafor", "amara.okafor@clinic.example", date(2015, 3, 1), Specialty.GENERAL_PRACTICE, "A1"),
    ("Dr. Lukas Weber", "lukas.weber@clinic.example", date(2018, 9, 15), Specialty.CARDIOLOGY, "B2"),
    ("Dr. Mei Tanaka", "mei.tanaka@clinic.example", date(2020, 1, 6), Specialty.DERMATOLOGY, "C1"),
    ("Dr. Sofia Rossi", "sofia.rossi@clinic.example", date(2022, 5, 2), Specialty.PEDIATRICS, "A3"),
]
NURSES = [
    ("Ines Duarte", "ines.duarte@clinic.example", date(2016, 4, 11), "Day clinic", date(2027, 3, 31)),
    ("Tom Becker", "tom.becker@clinic.example", date(2023, 2, 20), "Pediatrics", date(2026, 10, 31)),
]
ALLERGIES = ["penicillin", "latex", "peanuts", "aspirin", "ibuprofen"]
# name, born, phone, allergies
PATIENTS = [
    ("Ada Lovelace", date(1985, 12, 10), "+44 20 7946 0101", ["penicillin"]),
    ("Grace Hopper", date(1956, 12, 9), "+1 202 555 0144", []),
    ("Alan Turing", date(1992, 6, 23), "+44 20 7946 0188", ["peanuts"]),
    ("Katherine Johnson", date(1968, 8, 26), "+1 757 555 0117", ["aspirin", "ibuprofen"]),
    ("Tim Berners-Lee", date(1975, 6, 8), None, []),
    ("Hedy Lamarr", date(1990, 11, 9), "+43 1 555 0190", ["penicillin", "latex"]),
    ("Emmy Noether", date(2016, 3, 23), "+49 30 555 0133", ["peanuts"]),
    ("Srinivasa Ramanujan", date(1987, 12, 22), "+91 44 5550 1729", []),
    ("Rosalind Franklin", date(1960, 7, 25), "+44 20 7946 0152", ["penicillin"]),
    ("Mary Jackson", date(2018, 4, 9), "+1 757 555 0163", []),
]
# patient, doctor, start, minutes, status, reason, [(drug, dose, days)]
APPOINTMENTS = [
    ("Ada Lovelace", "Dr. Amara Okafor", datetime(2026, 11, 16, 9, 0), 30, AppointmentStatus.DONE, "sore throat",
     [("erythromycin", "500 mg twice a day", 7)]),
    ("Katherine Johnson", "Dr. Lukas Weber", datetime(2026, 11, 18, 14, 0), 45, AppointmentStatus.DONE, "blood pressure check",
     [("lisinopril", "10 mg once a day", 90)]),
    ("Alan Turing", "Dr. Mei Tanaka", datetime(2026, 11, 20, 11, 0), 30, AppointmentStatus.NO_SHOW, "rash", []),
    ("Emmy Noether", "Dr. Sofia Rossi", datetime(2026, 11, 23, 10, 0), 30, AppointmentStatus.DONE, "ear infection",
     [("amoxicillin", "250 mg three times a day", 5)]),
    ("Hedy Lamarr", "Dr. Amara Okafor", datetime(2026, 11, 25, 15, 30), 30, AppointmentStatus.CANCELLED, "check-up", []),
    ("Tim Berners-Lee", "Dr. Lukas Weber", datetime(2026, 12, 1, 9, 0), 30, AppointmentStatus.BOOKED, "palpitations", []),
    ("Srinivasa Ramanujan", "Dr. Lukas Weber", datetime(2026, 12, 1, 9, 30), 30, AppointmentStatus.BOOKED, "ECG follow-up", []),
    ("Ada Lovelace", "Dr. Amara Okafor", datetime(2026, 12, 2, 9, 0), 30, AppointmentStatus.BOOKED, "follow-up", []),
    ("Hedy Lamarr", "Dr. Amara Okafor", datetime(2026, 12, 2, 10, 30), 30, AppointmentStatus.BOOKED, "check-up", []),
    ("Alan Turing", "Dr. Amara Okafor", datetime(2026, 12, 2, 14, 0), 15, AppointmentStatus.BOOKED, "vaccination", []),
    ("Rosalind Franklin", "Dr. Mei Tanaka", datetime(2026, 12, 3, 11, 0), 30, AppointmentStatus.BOOKED, "mole check", []),
    ("Mary Jackson", "Dr. Sofia Rossi", datetime(2026, 12, 3, 16, 0), 30, AppointmentStatus.BOOKED, "school check-up", []),
    ("Rosalind Franklin", "Dr. Amara Okafor", datetime(2026, 12, 14, 9, 30), 30, AppointmentStatus.BOOKED, "blood test results", []),
]


def seed(session: Session) -> None:
    """Insert the clinic's rows into an empty database (py-agent commits)."""
    allergies = {name: Allergy(name=name) for name in ALLERGIES}
    doctors = {name: Doctor(name=name, email=email, hired=hired, specialty=specialty, room=room)
               for name, email, hired, specialty, room in DOCTORS}
    nurses = [Nurse(name=name, email=email, hired=hired, ward=ward, certified_until=until)
              for name, email, hired, ward, until in NURSES]
    patients = {name: Patient(name=name, born=born, phone=phone, allergies=[allergies[a] for a in allergic_to])
                for name, born, phone, allergic_to in PATIENTS}
    appointments = [
        Appointment(patient=patients[patient], doctor=doctors[doctor], starts_at=start, minutes=minutes, status=status,
                    reason=reason, prescriptions=[Prescription(drug=d, dose=dose, days=days) for d, dose, days in drugs])
        for patient, doctor, start, minutes, status, reason, drugs in APPOINTMENTS
    ]
    session.add_all([*allergies.values(), *doctors.values(), *nurses, *patients.values(), *appointments])
