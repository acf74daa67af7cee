"""The incremental server-sent-events parser: splits anywhere, CR/LF/CRLF, UTF-8, limits."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from py_agent.providers.sse import SSEEvent, SSEParser, SSETooLargeError, aiter_sse

SAMPLE = (
    "\ufeff: a comment the server sends to keep the line open\r\n"
    "event: message_start\r\n"
    'data: {"text": "héllo wörld ✓ 𝄞 日本"}\r\n'
    "\r\n"
    "data: first line\n"
    "data:second line without a space\n"
    "id: 42\n"
    "retry: 1500\n"
    "\n"
    "event: ping\r"
    "data: {}\r"
    "\r"
    "data\n"
    "\n"
    "data: [DONE]\n\n"
).encode("utf-8")

EXPECTED = [
    SSEEvent('{"text": "héllo wörld ✓ 𝄞 日本"}', "message_start"),
    SSEEvent("first line\nsecond line without a space", "message", "42", 1500),
    SSEEvent("{}", "ping", "42", 1500),
    SSEEvent("", "message", "42", 1500),
    SSEEvent("[DONE]", "message", "42", 1500),
]


def parse(chunks: list[bytes]) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events + parser.finish()


def test_whole_stream() -> None:
    assert parse([SAMPLE]) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(SAMPLE)))
def test_split_in_two_anywhere(cut: int) -> None:
    # Every cut: inside a line, between CR and LF, inside a 2-, 3- or 4-byte UTF-8 character.
    assert parse([SAMPLE[:cut], SAMPLE[cut:]]) == EXPECTED


def test_one_byte_at_a_time() -> None:
    assert parse([SAMPLE[i : i + 1] for i in range(len(SAMPLE))]) == EXPECTED


def test_random_splits() -> None:
    rng = random.Random(7)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, len(SAMPLE)), rng.randint(1, 12)))
        bounds = [0, *cuts, len(SAMPLE)]
        assert parse([SAMPLE[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]) == EXPECTED


def test_cr_at_the_end_of_a_chunk_does_not_make_a_blank_line() -> None:
    # If the CR and the LF were read as two line ends, "a" would be dispatched alone.
    assert parse([b"data: a\r", b"\ndata: b\r\n\r\n"]) == [SSEEvent("a\nb")]


def test_lone_cr_line_endings() -> None:
    assert parse([b"data: a\r\r", b"data: b\r\r"]) == [SSEEvent("a"), SSEEvent("b")]


def test_event_name_resets_and_empty_events_are_not_dispatched() -> None:
    events = parse([b"event: first\n\nevent: second\ndata: x\n\ndata: y\n\n"])
    assert events == [SSEEvent("x", "second"), SSEEvent("y")]


def test_unfinished_event_is_dropped_and_reported() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: whole\n\ndata: cut off") == [SSEEvent("whole")]
    assert parser.finish() == []
    assert parser.incomplete


def test_finished_stream_is_not_incomplete() -> None:
    parser = SSEParser()
    parser.feed(b"data: whole\n\n")
    parser.finish()
    assert not parser.incomplete


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert parse([b"data: \xff\xfe ok\n\n"]) == [SSEEvent("\ufffd\ufffd ok")]


def test_long_line_in_many_chunks_is_linear() -> None:
    payload = b"data: " + b"x" * (5 * 1024 * 1024) + b"\n\n"
    start = time.perf_counter()
    events = parse([payload[i : i + 1024] for i in range(0, len(payload), 1024)])
    assert time.perf_counter() - start < 2.0
    assert len(events) == 1 and len(events[0].data) == 5 * 1024 * 1024


def test_event_size_limit() -> None:
    parser = SSEParser(max_event_chars=100)
    with pytest.raises(SSETooLargeError):
        for _ in range(10):
            parser.feed(b"data: " + b"y" * 30 + b"\n")
    with pytest.raises(SSETooLargeError):
        SSEParser(max_event_chars=100).feed(b"data: " + b"z" * 200)


def test_aiter_sse() -> None:
    async def chunks():
        for i in range(0, len(SAMPLE), 5):
            yield SAMPLE[i : i + 5]

    async def collect() -> list[SSEEvent]:
        return [event async for event in aiter_sse(chunks())]

    assert asyncio.run(collect()) == EXPECTED
