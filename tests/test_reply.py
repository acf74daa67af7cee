"""Reading replies: JSON, fenced text, extensions and streaming deltas."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from py_agent.reply import MalformedReply, ReplyStream, parse_reply, reply_model, split_fenced


def test_json_reply_with_a_json_fence_is_accepted():
    r = parse_reply('```json\n{"message": "m", "code": "c"}\n```', reply_model())
    assert (r.message, r.code) == ("m", "c")


def test_text_format_reads_prose_and_the_first_python_block():
    text = "I'll count them.\n\n```python\nprint(1)\n```\nmore"
    r = parse_reply(text, reply_model(), format="text")
    assert r.message == "I'll count them." and r.code == "print(1)"
    assert split_fenced("All done, no code.") == ("All done, no code.", "")


def test_extension_fields_clash_is_refused():
    class Bad(BaseModel):
        code: int

    with pytest.raises(TypeError, match="reply's own fields"):
        reply_model(Bad)


def test_wrong_types_are_named():
    with pytest.raises(MalformedReply, match="field 'code'"):
        parse_reply('{"message": "", "code": ["x"]}', reply_model())


@pytest.mark.parametrize("size", [1, 2, 5, 64])
def test_stream_deltas_for_any_chunking(size):
    text = '{"message": "a \\"quoted\\" \\u00e9 \\n line", "code": "for i in range(3):\\n    print(i)"}'
    s = ReplyStream()
    got = {"message": "", "code": ""}
    for i in range(0, len(text), size):
        for name, delta in s.feed(text[i : i + size]):
            got[name] += delta
    assert got == {"message": 'a "quoted" é \n line', "code": "for i in range(3):\n    print(i)"}


def test_stream_deltas_for_text_replies():
    s = ReplyStream("text")
    got = {"message": "", "code": ""}
    text = "Plan first.\n```python\nprint(2)\n```"
    for ch in text:
        for name, delta in s.feed(ch):
            got[name] += delta
    assert got["code"] == "print(2)" and got["message"].startswith("Plan first.")


# --- the streaming reader: exact deltas, bounded memory --------------------------------------

def stream_fields(reader: ReplyStream, text: str, sizes: list[int]) -> dict[str, str]:
    """Feed ``text`` in chunks of the given sizes (cycled) and join the deltas per field."""
    got = {"message": "", "code": ""}
    start, turn = 0, 0
    while start < len(text):
        size = sizes[turn % len(sizes)]
        for name, delta in reader.feed(text[start : start + size]):
            got[name] += delta
        start, turn = start + size, turn + 1
    return got


TRICKY = {
    "message": 'quotes " and \\ backslashes, \u00e9, an emoji 😀, a tab\t and } ] , : brackets',
    "code": 'print("{\\"a\\": 1}")\nrows = [r for r in "😀😀" if r != "\\n"]',
}


@pytest.mark.parametrize("ascii_only", [True, False])
@pytest.mark.parametrize("sizes", [[1], [2, 3], [5, 1, 7], [64]])
def test_stream_deltas_match_the_parsed_reply(ascii_only, sizes):
    # Extension fields before, between and after (strings with braces, nested objects, numbers)
    # are skipped; escapes, including surrogate pairs split between chunks, are decoded whole.
    reply = {"confidence": 0.75, "notes": {"x": ["}", "]"], "y": '"{'}, **TRICKY, "done": True}
    text = json.dumps(reply, ensure_ascii=ascii_only, indent=1)
    assert stream_fields(ReplyStream(), "```json\n" + text + "\n```", sizes) == TRICKY
    parsed = parse_reply(text, reply_model())
    assert (parsed.message, parsed.code) == (TRICKY["message"], TRICKY["code"])


def test_stream_holds_back_only_a_small_tail_of_a_huge_reply():
    # What makes reading linear: nothing is re-read, and what waits between chunks stays small
    # (before, the whole text was re-parsed on every chunk: ~12 s for an 800 KB reply).
    code = "".join(f'rows.append(("title {i}", "a \\"quoted\\" word"))\n' for i in range(20_000))
    text = json.dumps({"message": "Adding rows.", "code": code})
    reader = ReplyStream()
    held = 0
    sent = ""
    for start in range(0, len(text), 7):
        for name, delta in reader.feed(text[start : start + 7]):
            sent += delta if name == "code" else ""
        held = max(held, len(reader._reader._buf))
    assert sent == code and held <= 12  # at most an escape such as \ud83d\ude00 waits
    assert reader.size == len(text)


def test_stream_of_a_broken_object_stops_quietly():
    reader = ReplyStream()
    assert reader.feed('{"message": "ok", "code": "a\\qb') == [("message", "ok"), ("code", "a")]
    assert reader.feed('more"}') == []  # an invalid escape: parse_reply will say what is wrong
    with pytest.raises(MalformedReply):
        parse_reply('{"message": "ok", "code": "a\\qbmore"}', reply_model())


def test_stream_of_text_replies_matches_split_fenced():
    text = "  Let me count.\n```json\n{}\n```\nThen:\n```python\nprint(1)\n\nprint(2)\n```\nafter"
    message, code = split_fenced(text)
    for sizes in ([1], [2, 5], [100]):
        assert stream_fields(ReplyStream("text"), text, sizes) == {"message": message, "code": code}
