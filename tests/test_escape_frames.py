"""Hostile corpus, family 2: interpreter frames through generators, coroutines, async
generators, tracebacks and class patterns (issue 7.2).

A frame's ``f_globals`` is a module's globals (here: the tools' module, with its canary),
``f_builtins`` Python's real builtins, ``f_back`` the host's own frames. Each payload tries
to get a frame by attribute, by computed name, by ``attrgetter``, by a match pattern, by
``vars``/``dir``, or from an exception's traceback.
"""

from __future__ import annotations

from sandbox_harness import Harness, for_each_payload

PAYLOADS = [
    ("generator gi_frame", "g = numbers()\nprint('ESCAPED', g.gi_frame.f_globals['MODULE_SECRET'])"),
    ("generator locals", "g = numbers()\nnext(g)\nprint('ESCAPED', g.gi_frame.f_locals['secret'])"),
    ("generator f_back", "def gen():\n    yield 1\nx = gen()\nnext(x)\nprint('ESCAPED', x.gi_frame.f_back)"),
    ("own genexp frame builtins", "g = (i for i in [1])\nprint('ESCAPED', g.gi_frame.f_builtins['open'])"),
    ("getattr literal", "g = numbers()\nprint('ESCAPED', getattr(g, 'gi_frame').f_globals['MODULE_SECRET'])"),
    ("getattr computed", "g = numbers()\nf = getattr(g, 'gi_' + 'frame')\nprint('ESCAPED', getattr(f, 'f_' + 'globals')['MODULE_SECRET'])"),
    ("getattr default", "g = numbers()\nf = getattr(g, 'gi_fr' + 'ame', None)\nprint('ESCAPED', f.f_globals['MODULE_SECRET'])"),
    ("attrgetter literal", "from operator import attrgetter\nprint('ESCAPED', attrgetter('gi_frame.f_globals')(numbers())['MODULE_SECRET'])"),
    ("attrgetter computed", "from operator import attrgetter\nn = 'gi_frame.' + 'f_globals'\nprint('ESCAPED', attrgetter(n)(numbers())['MODULE_SECRET'])"),
    ("attrgetter aliased", "from operator import attrgetter as ag\nn = 'gi_frame'\nprint('ESCAPED', ag(n)(numbers()).f_globals['MODULE_SECRET'])"),
    ("attrgetter via module alias", "import operator as op\nn = 'gi_frame'\nprint('ESCAPED', op.attrgetter(n)(numbers()).f_globals['MODULE_SECRET'])"),
    ("methodcaller", "from operator import methodcaller\nn = '__getattribute__'\nprint('ESCAPED', methodcaller(n, 'gi_frame')(numbers()))"),
    ("reduce over getattr", "import functools\nprint('ESCAPED', functools.reduce(getattr, ['gi_frame', 'f_globals'], numbers())['MODULE_SECRET'])"),
    ("map over getattr", "print('ESCAPED', list(map(getattr, [numbers()], ['gi_' + 'frame']))[0].f_globals)"),
    ("match class pattern", "match numbers():\n    case object(gi_frame=f):\n        print('ESCAPED', f.f_globals['MODULE_SECRET'])"),
    ("match class pattern computed", "class P:\n    pass\nmatch numbers():\n    case object(gi_code=c):\n        print('ESCAPED', c)"),
    ("coroutine cr_frame", "c = pending()\nprint('ESCAPED', c.cr_frame.f_globals['MODULE_SECRET'])"),
    ("coroutine getattr", "c = fetch(1)\nf = getattr(c, 'cr_' + 'frame')\nprint('ESCAPED', f.f_back)"),
    ("async generator ag_frame", "async def ag():\n    yield 1\na = ag()\nprint('ESCAPED', a.ag_frame.f_back)"),
    ("gi_code", "g = numbers()\nprint('ESCAPED', g.gi_code.co_consts)"),
    ("traceback tb_frame", "try:\n    fail()\nexcept Exception as e:\n    tb = e.__traceback__\n    while tb.tb_next:\n        tb = tb.tb_next\n    print('ESCAPED', tb.tb_frame.f_locals['secret'])"),
    ("traceback via getattr", "try:\n    fail()\nexcept Exception as e:\n    tb = getattr(e, '__trace' + 'back__')\n    print('ESCAPED', tb.tb_frame.f_globals['MODULE_SECRET'])"),
    ("traceback via with_traceback", "try:\n    fail()\nexcept Exception as e:\n    t = e.with_traceback(None)\n    print('ESCAPED', vars(t), getattr(t, '__cause' + '__'))"),
    ("context chain", "try:\n    try:\n        fail()\n    except Exception:\n        raise KeyError('x')\nexcept Exception as e:\n    print('ESCAPED', getattr(e, '__context__').__traceback__.tb_frame)"),
    ("vars of a generator", "print('ESCAPED', vars(numbers()))"),
    ("dir then getattr", "g = numbers()\nfor n in dir(g):\n    if 'frame' in n:\n        print('ESCAPED', getattr(g, n).f_globals['MODULE_SECRET'])\nprint(1/0)"),
    ("yieldfrom frame", "def outer():\n    yield from numbers()\no = outer()\nnext(o)\nprint('ESCAPED', o.gi_yieldfrom.gi_frame.f_globals['MODULE_SECRET'])"),
    ("frame of own lambda", "f = lambda: 0\nprint('ESCAPED', f.__code__, getattr(f, '__glo' + 'bals__'))"),
    ("sys._getframe", "import sys\nprint('ESCAPED', sys._getframe(1).f_globals)"),
    ("inspect.currentframe", "import inspect\nprint('ESCAPED', inspect.currentframe().f_back.f_globals)"),
    ("unicode attribute", "g = numbers()\nprint('ESCAPED', g.ｇｉ_ｆｒａｍｅ.f_globals['MODULE_SECRET'])"),
    ("unicode getattr", "g = numbers()\nprint('ESCAPED', getattr(g, 'ｇｉ_ｆｒａｍｅ').f_globals['MODULE_SECRET'])"),
]


@for_each_payload(PAYLOADS)
def test_frames_stay_out_of_reach(harness: Harness, layers: str, name: str, code: str) -> None:
    harness.run(code, layers).assert_safe()


def test_generators_and_exceptions_still_work(harness: Harness) -> None:
    result = harness.run(
        "g = numbers(4)\n"
        "print(list(g), g.gi_running)\n"
        "try:\n    fail('boom')\nexcept ValueError as e:\n    print('caught', e.args[0], type(e).__name__)\n"
        "match (1, 2):\n    case (a, b):\n        print(a + b)\n"
        "print(await fetch(7))"
    )
    result.assert_ran()
    assert result.outcome is not None
    assert result.outcome.output.splitlines() == ["[0, 1, 2, 3] False", "caught boom ValueError", "3", "7"]
