"""Reading model code safely: parse it once, without crashing the interpreter.

Both sandbox layers start here. The validator checks the tree; the run-time layer
rewrites it before compiling. Code that would crash Pyodide's parser is refused before
it is parsed (see ``too_deep``); everything else that does not parse is reported as a
:class:`Violation` with its line and column, like any other refusal.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Violation:
    """One broken rule. ``line`` and ``col`` are 1-based, ``col`` counts characters."""

    rule: str
    message: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"line {self.line}, col {self.col}: [{self.rule}] {self.message}"


class ValidationError(Exception):
    """The code was refused; ``violations`` lists every problem found."""

    def __init__(self, violations: list[Violation]) -> None:
        self.violations = list(violations)
        count = len(self.violations)
        lines = [f"The code was rejected before running ({count} problem{'s' * (count != 1)}):"]
        lines += [str(v) for v in self.violations]
        super().__init__("\n".join(lines))


def parse(code: str, filename: str = "<unknown>") -> tuple[ast.Module | None, Violation | None]:
    """The module tree of ``code``, or the violation that stops it from being parsed."""
    if too_deep(code):
        return None, too_complex()
    try:
        return ast.parse(code, filename=filename, mode="exec"), None
    except SyntaxError as err:
        line = err.lineno or 1
        col = err.offset or 1
        message = f"the code does not parse: {err.msg}. Fix the syntax and send the whole code again."
        return None, Violation("syntax", message, line, col)
    except ValueError as err:  # e.g. source containing NUL bytes
        return None, Violation("syntax", f"the code does not parse: {err}. Send plain Python source.", 1, 1)
    except (RecursionError, MemoryError):  # the parser's own limits, e.g. "-" * 100_000 + "1"
        return None, too_complex()


# Pyodide's parser overflows the JavaScript stack (a fatal error that kills the interpreter)
# at about 1,750 chained operators in one expression, e.g. "-" * 2000 + "1" or
# "+".join(["1"] * 2000); CPython raises RecursionError or MemoryError instead. (Deep
# brackets are fine: the parser's own limit refuses them cleanly.) So code long enough to
# get there is scanned first, and anything near that depth is refused unparsed.
_SCAN_FROM = 1000  # characters; shorter code cannot chain enough operators
_DEPTH_LIMIT = 500  # no sensible expression comes close
_CHAIN_CHARACTERS = "+-*/%@&|^~<>.!="
_CHAIN_KEYWORDS = frozenset({"not", "and", "or", "if", "else", "lambda", "await", "in", "is", "for", "yield"})
_CHAIN_KEYWORD_PATTERN = rf"\b(?:{'|'.join(sorted(_CHAIN_KEYWORDS))})\b"
_CHAIN_KEYWORD_RE = re.compile(_CHAIN_KEYWORD_PATTERN)
_STRING_BODY = "|".join(
    (
        r"'''(?:\\.|[^\\])*?'''",
        r'"""(?:\\.|[^\\])*?"""',
        r"'(?:\\.|[^\\'\n])*'",
        r'"(?:\\.|[^\\"\n])*"',
    )
)
_SCAN = re.compile(
    r"(?P<comment>#[^\n]*)"
    rf"|(?P<string>(?P<prefix>[A-Za-z]{{0,3}})(?:{_STRING_BODY}))"
    rf"|(?P<word>{_CHAIN_KEYWORD_PATTERN})"  # other names are skipped
    r"|(?P<open>[(\[{])"
    r"|(?P<close>[)\]}])"
    r"|(?P<continuation>\\\r?\n)"
    r"|(?P<separator>[,;\n])"
    rf"|(?P<operator>[{re.escape(_CHAIN_CHARACTERS)}])"
)


def too_deep(code: str) -> bool:
    """True if ``code`` may chain operators deeply enough to crash Pyodide's parser."""
    if len(code) < _SCAN_FROM:
        return False
    # Cheap upper bound first (counting in C): most long code stops here.
    bound = (
        sum(map(code.count, _CHAIN_CHARACTERS))
        + sum(map(code.count, "()[]{}"))
        + len(_CHAIN_KEYWORD_RE.findall(code))
    )
    return bound > _DEPTH_LIMIT and _nesting_estimate(code) > _DEPTH_LIMIT


def _nesting_estimate(code: str) -> int:
    """A rough upper bound of how deeply the parser recurses on ``code`` (no parsing).

    Counts operators, operator keywords and brackets chained within one expression;
    commas and statement ends start a new chain. Overcounting is harmless (the limit is far
    above real code); f-string bodies are estimated in turn, as they hold expressions.
    """
    levels = [0]  # chain length at each open bracket
    total = 0  # sum(levels)
    worst = 0
    for match in _SCAN.finditer(code):
        kind = match.lastgroup
        if kind == "string" or kind == "prefix":
            prefix = (match.group("prefix") or "").lower()
            if "f" in prefix or "t" in prefix:
                literal = match.group("string")[len(prefix):]
                quote = 3 if literal[:3] in ("'''", '"""') else 1
                nested = _nesting_estimate(literal[quote:-quote])
                worst = max(worst, total + len(levels) - 1 + nested)
            continue
        if kind == "open":
            levels.append(0)
            continue
        elif kind == "close":
            if len(levels) > 1:
                total -= levels.pop()
        elif kind == "separator":
            if match.group() == "\n" and len(levels) > 1:
                continue  # newlines inside brackets do not end the expression
            total -= levels[-1]
            levels[-1] = 0
            continue
        elif kind != "operator" and kind != "word":  # comments, line continuations
            continue
        # An operator or keyword, or a closed bracket group (as in f(x)(y) or a.b(c).d),
        # makes the current chain one longer.
        levels[-1] += 1
        total += 1
        worst = max(worst, total + len(levels) - 1)
    return worst


def too_complex() -> Violation:
    return Violation(
        "too-complex",
        f"an expression chains or nests too deeply (more than {_DEPTH_LIMIT} operators or "
        f"brackets in one expression); split it into several statements.",
        1,
        1,
    )
