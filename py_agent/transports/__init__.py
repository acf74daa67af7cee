"""How provider requests travel: the :class:`Transport` seam and its implementations."""

from .base import BEARER, AuthHeader, Headers, HttpRequest, HttpResponse, Timeouts, Transport
from .http import HttpTransport
from .replay import Cassette, CassetteMismatchError, RecordingTransport, ReplayTransport

__all__ = [
    "BEARER",
    "AuthHeader",
    "Cassette",
    "CassetteMismatchError",
    "Headers",
    "HttpRequest",
    "HttpResponse",
    "HttpTransport",
    "RecordingTransport",
    "ReplayTransport",
    "Timeouts",
    "Transport",
]
