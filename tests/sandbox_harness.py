"""A harness for the sandbox's hostile and ordinary corpora (tests/test_escape_*.py,
tests/test_ordinary_code.py): run model code the way a step runs it, with each layer alone
and with both, and check that nothing it must not reach was reached.

A step here is what the loop does with a reply's code: the validator (``check_parsed``),
then the executor on a namespace built like the agent's (curated builtins of the policy,
``session``, the schema's classes, SQLAlchemy helpers, tools, ``disclose``), with a flush
inside the step, in a transaction that is rolled back afterwards. Then the host does what
host code may do later, *outside* the step: flush again, compare, hash and print what the
namespace holds, drop the namespace and collect garbage (generator finalisers, ``__del__``).

What "escaped" means is checked directly, not inferred from an error:

- canaries: a secret in this module's globals (which every tool's ``__globals__`` holds),
  one in ``os.environ``, and in Pyodide one on the JavaScript global object; none may
  appear in the step's output or error;
- ``ESCAPED``: payloads print it only after using what they must not have;
- ``record(tag)`` (a tool): calls made while no step runs mean model code ran outside its
  step.
"""

from __future__ import annotations

import gc
import os
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy.orm import Session

from py_agent.demo import Base, create_demo_engine
from py_agent.sandbox.executor import Executor, Outcome
from py_agent.sandbox.runtime import safe_builtins
from py_agent.sandbox.validator import Policy, Violation, check_parsed
from py_agent.schema import schema_symbols
from py_agent.sync import run_sync
from py_agent.tools import Toolbox

IN_PYODIDE = sys.platform == "emscripten"

MODULE_SECRET = f"module-canary-{uuid.uuid4().hex}"
ENV_SECRET = f"env-canary-{uuid.uuid4().hex}"
JS_SECRET = f"js-canary-{uuid.uuid4().hex}"
SECRETS = (MODULE_SECRET, ENV_SECRET, JS_SECRET)
os.environ["PY_AGENT_CANARY"] = ENV_SECRET
if IN_PYODIDE:  # the worker's JavaScript global: what an escape in the browser reaches first
    import js  # noqa: F401 - tests may; the package may not (only browser/glue.py)

    js.globalThis.pyAgentCanary = JS_SECRET

# The three ways the layers are tested: each alone, and together.
LAYERS: dict[str, Callable[[], Policy]] = {
    "both": lambda: Policy(),
    "validator-only": lambda: Policy(runtime=False),
    "runtime-only": lambda: Policy(validator=False),
}

SQL_HELPERS = ("select", "func", "and_", "or_", "not_", "insert", "update", "delete", "text", "desc", "asc")


# -- the tools model code gets (their module globals hold MODULE_SECRET) --------------------------

_phase = ["outside"]  # "step" while model code is supposed to run
RECORDED: list[tuple[str, str]] = []


def record(tag: str) -> None:
    """Note that model code ran (with the phase it ran in)."""
    RECORDED.append((str(tag), _phase[0]))


def lookup(name: str) -> str:
    """Look a name up (returns it upper-cased)."""
    return str(name).upper()


async def fetch(value: Any) -> Any:
    """An async tool: returns its argument."""
    return value


def numbers(n: int = 3) -> Iterator[int]:
    """A tool that returns a generator (whose frame sees this module's globals)."""
    secret = MODULE_SECRET  # noqa: F841 - a local in the generator's frame
    yield from range(n)


def fail(message: str = "tool failed") -> None:
    """A tool that raises (its traceback holds this module's frames)."""
    secret = MODULE_SECRET  # noqa: F841
    raise ValueError(message)


def pending() -> Any:
    """A tool that returns a coroutine object, not awaited."""
    return fetch(MODULE_SECRET)


def namespace_object() -> Any:
    """A tool returning a plain object with a method (its __func__ reaches these globals)."""

    class Helper:
        label = "helper"

        def describe(self) -> str:
            return self.label

    return Helper()


TOOLS = [lookup, fetch, numbers, fail, record, pending, namespace_object]


# -- running a step --------------------------------------------------------------------------------

@dataclass
class Result:
    layers: str
    code: str
    violations: list[Violation] = field(default_factory=list)
    outcome: Outcome | None = None
    later: list[str] = field(default_factory=list)  # what host-side actions after the step raised
    outside: list[str] = field(default_factory=list)  # record() calls made outside the step

    @property
    def refused(self) -> bool:
        return bool(self.violations)

    @property
    def text(self) -> str:
        parts = [str(v) for v in self.violations]
        if self.outcome is not None:
            parts += [self.outcome.output, self.outcome.error or ""]
        return "\n".join(parts)

    @property
    def failed(self) -> bool:
        return self.refused or (self.outcome is not None and self.outcome.error is not None)

    def leaks(self) -> list[str]:
        """What this step reached that it must not have (empty when safe)."""
        found = [f"canary {s[:12]}..." for s in SECRETS if s in self.text]
        if self.outcome is not None and "ESCAPED" in self.outcome.output:
            found.append("printed ESCAPED")
        found += [f"model code ran outside its step: {tag}" for tag in self.outside]
        return found

    def assert_safe(self, *, must_fail: bool = True) -> None:
        leaks = self.leaks()
        assert not leaks, f"[{self.layers}] escaped: {leaks}\n--- code ---\n{self.code}\n--- result ---\n{self.text}"
        if must_fail:
            assert self.failed, f"[{self.layers}] the payload ran to its end:\n{self.code}\n--- output ---\n{self.text}"

    def assert_ran(self) -> None:
        """For ordinary code: no refusal, no error."""
        assert not self.failed, f"[{self.layers}] ordinary code failed:\n{self.code}\n--- result ---\n{self.text}"


class Harness:
    """Runs snippets against the seeded demo database, each in a transaction rolled back after."""

    def __init__(self) -> None:
        self.engine = create_demo_engine()
        self.symbols = schema_symbols(Base)
        self.helpers = {name: getattr(sqlalchemy, name) for name in SQL_HELPERS}
        self.toolbox = Toolbox(TOOLS)

    def close(self) -> None:
        self.engine.dispose()

    def run(self, code: str, layers: str = "both", *, timeout: float | None = 10.0, later: bool = True) -> Result:
        policy = LAYERS[layers]()
        result = Result(layers, code)
        violations, tree = check_parsed(code, policy)
        if violations:
            result.violations = violations
            return result
        connection = self.engine.connect()
        transaction = connection.begin()
        session = Session(bind=connection, join_transaction_mode="create_savepoint")
        namespace: dict[str, Any] = {"__builtins__": safe_builtins(policy), "__name__": "agent", "session": session}
        namespace.update(self.helpers)
        namespace.update(self.symbols)
        namespace.update(self.toolbox.namespace())
        RECORDED.clear()
        try:
            _phase[0] = "step"
            try:
                result.outcome = run_sync(
                    Executor(namespace, timeout=timeout).run(code, tree=tree, finish=session.flush)
                )
            except Exception as exc:  # the finish (flush) failed: as the loop reports it
                result.outcome = Outcome("", f"{type(exc).__name__} when saving", 0.0)
            finally:
                _phase[0] = "outside"
            if later:
                result.later = self._host_later(session, namespace)
        finally:
            _phase[0] = "outside"
            result.outside = [tag for tag, phase in RECORDED if phase == "outside"]
            try:
                session.close()
                transaction.rollback()
            finally:
                connection.close()
        return result

    def _host_later(self, session: Session, namespace: dict[str, Any]) -> list[str]:
        """What host code may do after a step; returns the errors it met (model code refusing)."""
        errors: list[str] = []

        def attempt(action: Callable[[], Any]) -> None:
            try:
                action()
            except Exception as exc:  # noqa: BLE001 - model code refusing to run, most likely
                errors.append(f"{type(exc).__name__}: {exc}"[:200])

        attempt(session.flush)

        def meet(values: list[Any]) -> None:  # a function, so no reference outlives it
            values += [item for v in values if type(v) in (list, tuple, set) for item in list(v)[:10]]
            for value in values:
                attempt(lambda v=value: repr(v))
                attempt(lambda v=value: str(v))
                attempt(lambda v=value: hash(v))
                attempt(lambda v=value: v == object())
                attempt(lambda v=value: bool(v))

        meet([v for k, v in namespace.items() if not k.startswith("__")])
        attempt(lambda: session.info.clear())
        # Drop what the code made while the tools are still there to be called (a finaliser
        # could reach them), then everything.
        given = set(self.helpers) | set(self.symbols) | set(self.toolbox.namespace()) | {"session"}
        for key in [k for k in namespace if k not in given and not k.startswith("__")]:
            attempt(lambda k=key: namespace.pop(k))
        attempt(gc.collect)
        namespace.clear()
        attempt(gc.collect)
        return errors


def payload_ids(payloads: list[tuple[str, str]]) -> list[str]:
    return [name for name, _ in payloads]


def for_each_payload(payloads: list[tuple[str, str]], layers: Iterable[str] = LAYERS) -> Callable[[Any], Any]:
    """Run a test once per payload (``name``, ``code``) and per layer combination (``layers``)."""

    def mark(test: Any) -> Any:
        test = pytest.mark.parametrize(("name", "code"), payloads, ids=payload_ids(payloads))(test)
        return pytest.mark.parametrize("layers", list(layers))(test)

    return mark
