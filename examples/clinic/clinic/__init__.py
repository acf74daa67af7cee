"""A small clinic, as a py-agent app: doctors and nurses, patients, allergies, appointments.

    py-agent chat --app examples/clinic/clinic          # the recorded demo without a key
    py-agent chat --app examples/clinic/clinic --model openai:gpt-4.1-mini

Everything py-agent reads is defined or imported here (see py_agent.app for the contract).
"""

from .models import (  # noqa: F401 - the mapped classes must be imported for Base to know them
    Allergy,
    Appointment,
    AppointmentStatus,
    Base,
    Doctor,
    Nurse,
    Patient,
    Prescription,
    Specialty,
    StaffMember,
)
from .seed import seed  # noqa: F401
from .tools import next_free_slot

title = "Clinic"
description = "Doctors, nurses, patients and their allergies, appointments and prescriptions."
tools = [next_free_slot]
allowed_imports = ["datetime"]
DEMO = "demo.json"
prompt = """\
Appointments are booked only in clinic hours (Monday to Friday, 9:00 to 17:00); use the
next_free_slot tool to find a time. Never delete an appointment: set its status to
AppointmentStatus.CANCELLED instead. Before prescribing, check the patient's allergies."""
