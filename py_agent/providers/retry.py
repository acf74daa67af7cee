"""When to try a failed request again, and how long to wait first.

Exponential backoff with jitter, a bounded number of attempts, and the
server's ``retry-after`` honoured: when it asks for less than
``max_retry_after`` seconds we wait exactly that long; when it asks for more
we give up at once (waiting less would only earn another refusal) and the
error's hint says when to come back. Sleep and randomness are injectable so
tests run in no time.
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ProviderError


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to try, and how long to wait between tries.

    ``max_attempts`` counts the first try: 4 means up to three retries. The
    n-th retry waits ``initial_delay * multiplier**(n-1)`` seconds, at most
    ``max_delay``, shortened by a random fraction of up to ``jitter`` so
    clients that failed together do not come back together.
    """

    max_attempts: int = 4
    initial_delay: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 8.0
    jitter: float = 0.25
    max_retry_after: float = 60.0

    def backoff(self, retry_number: int, rand: Callable[[], float] = random.random) -> float:
        """The pause before retry number ``retry_number`` (1 for the first retry)."""
        delay = min(self.max_delay, self.initial_delay * self.multiplier ** max(0, retry_number - 1))
        return delay * (1.0 - self.jitter * rand())

    def delay_before_retry(
        self, attempts_made: int, error: ProviderError, rand: Callable[[], float] = random.random
    ) -> float | None:
        """Seconds to wait before trying again, or ``None`` to give up.

        ``attempts_made`` is how many tries have failed so far (1 after the first).
        """
        if not error.retryable or attempts_made >= self.max_attempts:
            return None
        if error.retry_after is not None:
            if error.retry_after > self.max_retry_after:
                return None
            return max(0.0, error.retry_after)
        return self.backoff(attempts_made, rand)


NO_RETRIES = RetryPolicy(max_attempts=1)

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def parse_retry_after(
    headers: Mapping[str, str],
    body: Any = None,
    *,
    clock: Callable[[], float] = time.time,
) -> float | None:
    """The delay a server asked for, in seconds, or ``None``.

    Reads ``retry-after-ms`` (OpenAI), ``retry-after`` as seconds or as an
    HTTP date, and Gemini's ``RetryInfo.retryDelay`` ("13s") from a parsed
    error body. ``headers`` must look names up case-insensitively.
    """
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                return max(0.0, when.timestamp() - clock())
    return _gemini_retry_delay(body)


def _gemini_retry_delay(body: Any) -> float | None:
    if isinstance(body, list) and body:
        body = body[0]
    if not isinstance(body, Mapping):
        return None
    error = body.get("error")
    details = error.get("details") if isinstance(error, Mapping) else None
    if not isinstance(details, list):
        return None
    for detail in details:
        if isinstance(detail, Mapping) and str(detail.get("@type", "")).endswith("RetryInfo"):
            match = _DURATION_RE.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None
