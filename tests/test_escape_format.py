"""Hostile corpus, family 1: attribute paths inside format templates (issue 7.1).

``"{0.a.b[c]}".format(obj)`` reads attributes without an attribute in the code. Each payload
tries to reach a generator's frame globals, the session's engine, a tool's module globals
or the environment through a template: literal, built at run time, or reached through
``str.format``, ``format_map``, ``methodcaller``, ``partial``, ``map``, a str subclass,
``vars``/``getattr``, or ``string.Formatter`` and its subclasses. Each runs against each
layer alone and both together; none may reach a canary or print ESCAPED.
"""

from __future__ import annotations

from sandbox_harness import Harness, for_each_payload

FRAME_TEMPLATE = "'{0.gi_frame.f_globals[MODULE_SECRET]}'"
BUILT = "t = '{0.' + 'gi_fr' + 'ame.f_globals[MODULE_SECRET]}'\n"

PAYLOADS = [
    ("literal, generator frame", f"print('ESCAPED', {FRAME_TEMPLATE}.format(numbers()))"),
    ("literal, generator locals", "print('ESCAPED', '{0.gi_frame.f_locals[secret]}'.format(numbers()))"),
    ("literal, coroutine frame", "c = pending()\nprint('ESCAPED', '{0.cr_frame.f_globals[MODULE_SECRET]}'.format(c))"),
    ("literal, session engine", "print('ESCAPED', '{0.bind.url} {0.bind.dialect.dbapi}'.format(session))"),
    ("literal, result cursor", "r = session.execute(text('select 1'))\nprint('ESCAPED {0.context.root_connection}'.format(r))"),
    ("literal, raw cursor", "r = session.execute(text('select 1'))\nprint('ESCAPED {0.cursor.connection}'.format(r))"),
    ("literal, tool globals", "print('ESCAPED', '{0.__globals__[MODULE_SECRET]}'.format(lookup))"),
    ("literal, class to init globals", "print('ESCAPED', '{0.__class__.__init__.__globals__}'.format(session))"),
    ("literal, nested spec leaks in the error", "print('ESCAPED', '{0:{1.gi_frame.f_globals[MODULE_SECRET]}}'.format(1, numbers()))"),
    ("literal, bytes-decoded template", "t = b'{0.gi_frame.f_globals[MODULE_SECRET]}'.decode()\nprint('ESCAPED', t.format(numbers()))"),
    ("built at run time", BUILT + "print('ESCAPED', t.format(numbers()))"),
    ("built with join", "t = ''.join(['{0.', 'gi_frame', '.f_globals[MODULE_SECRET]}'])\nprint('ESCAPED', t.format(numbers()))"),
    ("built with chr", "u = chr(95) * 2\nt = '{0.' + u + 'globals' + u + '[MODULE_SECRET]}'\nprint('ESCAPED', t.format(lookup))"),
    ("built, unbound str.format", BUILT + "print('ESCAPED', str.format(t, numbers()))"),
    ("built, format_map", "t = '{g.' + 'gi_frame.f_globals[MODULE_SECRET]}'\nprint('ESCAPED', t.format_map({'g': numbers()}))"),
    ("built, str.format_map unbound", "t = '{g.' + 'gi_frame.f_globals[MODULE_SECRET]}'\nprint('ESCAPED', str.format_map(t, {'g': numbers()}))"),
    ("built, methodcaller", BUILT + "from operator import methodcaller\nprint('ESCAPED', methodcaller('format', numbers())(t))"),
    ("built, methodcaller aliased", BUILT + "from operator import methodcaller as mc\nprint('ESCAPED', mc('for' + 'mat', numbers())(t))"),
    ("built, partial of str.format", BUILT + "from functools import partial\nprint('ESCAPED', partial(str.format, t)(numbers()))"),
    ("built, map over str.format", BUILT + "print('ESCAPED', list(map(str.format, [t], [numbers()])))"),
    ("built, str subclass", BUILT + "class T(str):\n    pass\nprint('ESCAPED', T(t).format(numbers()))"),
    ("built, str subclass alias", BUILT + "class T(str):\n    f = str.format\nprint('ESCAPED', T(t).f(numbers()))"),
    ("built, vars of str", BUILT + "print('ESCAPED', vars(str)['format'](t, numbers()))"),
    ("built, getattr", BUILT + "print('ESCAPED', getattr(t, 'form' + 'at')(numbers()))"),
    ("built, type of str", BUILT + "print('ESCAPED', type(t).format(t, numbers()))"),
    ("Formatter", BUILT + "import string\nprint('ESCAPED', string.Formatter().format(t, numbers()))"),
    ("Formatter aliased", BUILT + "from string import Formatter as F\nprint('ESCAPED', F().vformat(t, [numbers()], {}))"),
    ("Formatter module alias", BUILT + "import string as s\nprint('ESCAPED', s.Formatter().format(t, numbers()))"),
    ("Formatter get_field", "import string\nv, _ = string.Formatter().get_field('0.gi_frame', [numbers()], {})\nprint('ESCAPED', v.f_globals['MODULE_SECRET'])"),
    (
        "Formatter subclass format_field",
        "import string\nclass F(string.Formatter):\n    def format_field(self, value, spec):\n        return repr(value.f_globals)\n"
        "print('ESCAPED', F().format('{0.gi_frame}', numbers()))",
    ),
    (
        "Formatter subclass via getattr",
        "import string\nF = getattr(string, 'Form' + 'atter')\nclass G(F):\n    pass\nprint('ESCAPED', G().format('{0.gi_frame.f_globals}', numbers()))",
    ),
    ("f-string to frame", "g = numbers()\nprint('ESCAPED', f\"{g.gi_frame.f_globals['MODULE_SECRET']}\")"),
    ("f-string nested spec", "g = numbers()\nprint('ESCAPED', f\"{1:{g.gi_frame.f_globals['MODULE_SECRET']}}\")"),
    ("unicode field name", "print('ESCAPED', '{0.ｇｉ_ｆｒａｍｅ.f_globals[MODULE_SECRET]}'.format(numbers()))"),
    ("index into builtins", "print('ESCAPED', '{0[__builtins__]}'.format({'__builtins__': 1}), '{0.gi_frame.f_builtins}'.format(numbers()))"),
]


@for_each_payload(PAYLOADS)
def test_format_paths_reach_nothing(harness: Harness, layers: str, name: str, code: str) -> None:
    harness.run(code, layers).assert_safe()


def test_the_refusal_says_what_to_write(harness: Harness) -> None:
    # Templates stay usable: plain fields and safe attribute paths format as usual...
    ok = harness.run(
        "b = session.scalars(select(Book).order_by(Book.id)).first()\n"
        "t = '{0.title} by {0.author.name}: {1:.2f}'\n"
        "print(t.format(b, 2.5), '{x[k]}'.format_map({'x': {'k': 1}}), str.format('{}-{}', 1, 2))"
    )
    ok.assert_ran()
    # ...and a refused path says why.
    refused = harness.run("print('{0.gi_frame}'.format(numbers()))", "runtime-only")
    assert "gi_frame" in refused.text and "frames" in refused.text
    formatter = harness.run("import string\nf = string.Formatter()", "both")
    assert "f-string" in formatter.text
