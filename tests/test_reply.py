"""Reading replies: JSON, fenced text, extensions and streaming deltas."""

from __future__ import annotations

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
