"""Core benchmark: per-step overhead of the loop and the size of the rendered schema.

Prints figures and ratios against targets; never fails on speed (that is for
people to read, not for CI to flake on). Run: ``python benchmarks/core.py``.

- overhead = (validate + execute + database step + events) − the code's own time,
  where the code's own time is a bare ``exec`` of the same compiled 20-line step.
- schema ratio = rendered schema / source dump of the same schema module,
  in characters and in rough tokens.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from py_agent import Agent, FunctionProvider, State, UserMessage  # noqa: E402
from py_agent import events as ev  # noqa: E402
from py_agent.database import Database  # noqa: E402
from py_agent.demo import Base, create_demo_engine, library  # noqa: E402
from py_agent.sandbox.executor import Executor  # noqa: E402
from py_agent.sandbox.runtime import runtime_layer, safe_builtins  # noqa: E402
from py_agent.schema import render_schema  # noqa: E402
from py_agent.sync import _step_by_hand  # noqa: E402
from py_agent.sandbox.validator import Policy, check_parsed  # noqa: E402

STEP = """\
from decimal import Decimal
rows = session.scalars(select(Book).where(Book.price > Decimal("5"))).all()
by_genre = {}
for book in rows:
    by_genre.setdefault(book.genre.value, []).append(book.title)
counts = {genre: len(titles) for genre, titles in by_genre.items()}
cheapest = min(rows, key=lambda b: b.price) if rows else None
total = sum(b.price for b in rows)
average = total / len(rows) if rows else 0
names = sorted({b.author.name for b in rows})
report = []
for genre in sorted(counts):
    report.append(f"{genre}: {counts[genre]}")
summary = ", ".join(report)
top = names[:3]
flag = average > 10
label = "pricey" if flag else "cheap"
result = {"summary": summary, "top": top, "label": label}
print(summary)
print(label, cheapest.title if cheapest else "-")
"""
assert len(STEP.strip().splitlines()) == 20


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def tokens(text: str) -> int:
    return len(re.findall(r"\w+|[^\w\s]", text))


class Samples(dict):
    """Named lists of timings (seconds); ``ms(name, fn)`` is the median or the minimum."""

    def add(self, name: str, seconds: float) -> None:
        self.setdefault(name, []).append(seconds)

    def ms(self, name: str, fn=statistics.median) -> float:
        return fn(self[name]) * 1000 if name in self else 0.0


def bench_overhead(repeats: int = 200) -> Samples:
    """Time the checked step and the bare step, interleaved, plus where the checked one spends it.

    ``checked``: validation + database step begin + executor (the run-time layer's compile
    step, the code under its guards, output capture, limits) + database step end + events.
    ``bare``: the same code, compiled once, exec'd with output captured (the code's own time).
    """
    engine = create_demo_engine()
    db = Database(engine)
    policy = Policy()
    ns = {"__builtins__": safe_builtins(policy), "__name__": "agent", "session": db.session}
    from sqlalchemy import select

    from py_agent.schema import schema_symbols

    ns.update(schema_symbols(Base), select=select)
    executor = Executor(ns, timeout=30.0)
    compiled = compile(STEP, "<bench>", "exec")
    bare_ns = dict(ns)
    layer = runtime_layer(ns)
    finish = getattr(db, "finish_step", None)  # the database step's API is the trust helper's

    import contextlib
    import io

    samples = Samples()
    # --cpu: this process's CPU time instead of the wall clock (steadier on a busy machine).
    clock = time.process_time if "--cpu" in sys.argv else time.perf_counter

    async def checked_step() -> None:
        t0 = clock()
        _, tree = check_parsed(STEP, policy)  # as the loop does: one parse per step
        t1 = clock()
        db.begin_step()
        t2 = clock()
        outcome = await executor.run(STEP, tree=tree)
        t3 = clock()
        assert outcome.error is None, outcome.error
        if finish is not None:
            finish()
        else:
            db.flush()
            db.changes()
        db.commit_step()
        t4 = clock()
        for event in (
            ev.SignalEvent(ev.Signal.VALIDATION, 1),
            ev.SignalEvent(ev.Signal.EXECUTION, 1),
            ev.ExecutionResult(1, outcome.output, None, outcome.duration_ms),
        ):
            event.to_dict()
        t5 = clock()
        samples.add("checked", t5 - t0)
        samples.add("validation", t1 - t0)
        samples.add("database step", (t2 - t1) + (t4 - t3))
        samples.add("executor", t3 - t2)
        samples.add("events", t5 - t4)

    def bare_step() -> None:
        # Same work, same DB state: the code's own time (output still captured).
        db.session.expire_all()
        with contextlib.redirect_stdout(io.StringIO()):
            t = clock()
            exec(compiled, bare_ns)  # noqa: S102
            samples.add("bare", clock() - t)

    def bare_in_step() -> None:
        # The same, inside a database step: what the step's capture adds to the code's queries.
        db.session.expire_all()
        db.begin_step()
        with contextlib.redirect_stdout(io.StringIO()):
            t = clock()
            exec(compiled, bare_ns)  # noqa: S102
            samples.add("bare in a step", clock() - t)
        if finish is not None:
            finish()
        db.rollback_step()

    def compile_step() -> None:
        # Parts, timed alone: parsing, and compiling a checked (rewritten) tree.
        t = clock()
        ast.parse(STEP)
        samples.add("parse", clock() - t)
        _, tree = check_parsed(STEP, policy)
        t = clock()
        if layer is not None:
            layer.compile(STEP, "<bench>", tree)
        else:
            compile(tree, "<bench>", "exec")
        samples.add("compile", clock() - t)
        t = clock()
        compile(STEP, "<bench>", "exec")  # what any run of this source needs, py-agent or not
        samples.add("compile source", clock() - t)

    # One event loop for every step, as in the agent (Pyodide: stepped by hand, no real I/O).
    loop = None if sys.platform == "emscripten" else asyncio.new_event_loop()
    drive = _step_by_hand if loop is None else loop.run_until_complete
    for _ in range(20):  # warm up both paths
        drive(checked_step())
        bare_step()
    samples.clear()
    for _ in range(repeats):
        drive(checked_step())
        bare_step()
        compile_step()
        bare_in_step()
    if loop is not None:
        loop.close()
    return samples


def bench_full_step(repeats: int = 50) -> float | str:
    """A whole loop step with a scripted model (completion parsing included), or why it failed."""
    engine = create_demo_engine()
    reply = {"message": "", "code": "print(1)"}
    agent = Agent(base=Base, model=FunctionProvider(lambda r: reply, chunk_size=64), max_loops=repeats + 1)
    state = State(engine=engine)
    state.messages.append(UserMessage("go"))
    times, last, problem = [], None, "no step ran"
    for event in agent.run(state):
        now = time.perf_counter()
        if event.type == "error":
            problem = f"{event.kind}: {event.message}"
        if event.type == "signal" and event.signal.value == "completion":
            if last is not None:
                times.append(now - last)
            last = now
        if len(times) >= repeats:
            state.abort()
    return median_ms(times) if times else problem


def main() -> None:
    samples = bench_overhead()
    full = bench_full_step()
    rendered = render_schema(Base)
    source = inspect.getsource(library)
    char_ratio = len(rendered) / len(source)
    token_ratio = tokens(rendered) / tokens(source)
    where = "Pyodide " + sys.version.split()[0] if sys.platform == "emscripten" else "CPython " + sys.version.split()[0]
    clock = "CPU time" if "--cpu" in sys.argv else "wall time"
    print(f"py-agent core benchmark, {where}, {clock} (median; in brackets the minimum, less disturbed by other load)")

    def line(label: str, name: str, note: str = "") -> None:
        print(f"  {label:38s} {samples.ms(name):8.3f} ms  [{samples.ms(name, min):7.3f}]{note}")

    own = samples.ms("bare")
    overhead = samples.ms("checked") - own
    overhead_min = samples.ms("checked", min) - samples.ms("bare", min)
    verdict = "OK" if overhead <= 2 else "OVER"
    print(f"  {'20-line step, code own time':38s} {own:8.3f} ms  [{samples.ms('bare', min):7.3f}]")
    print(f"  {'per-step overhead beyond the code':38s} {overhead:8.3f} ms  [{overhead_min:7.3f}]   target <= 2 ms   {verdict}")
    line("  checks: parse, validator + rewrite", "validation")
    line("    of which parsing", "parse")
    executor = samples.ms("executor") - samples.ms("bare in a step")
    executor_min = samples.ms("executor", min) - samples.ms("bare in a step", min)
    print(f"  {'  executor, beyond the code own time':38s} {executor:8.3f} ms  [{executor_min:7.3f}]")
    line("    of which compiling the checked tree", "compile")
    capture = samples.ms("bare in a step") - own
    capture_min = samples.ms("bare in a step", min) - samples.ms("bare", min)
    print(f"  {'  the code queries inside a db step':38s} {capture:8.3f} ms  [{capture_min:7.3f}]  (the database step's capture)")
    line("  database step (begin, flush, commit)", "database step")
    line("  events", "events")
    intrinsic = samples.ms("compile source")
    print(f"  {'(compiling the source at all costs':38s} {intrinsic:8.3f} ms  [{samples.ms('compile source', min):7.3f}]"
          f"; overhead beyond compile + exec: {overhead - intrinsic:.3f} ms)")
    if isinstance(full, float):
        print(f"  {'whole loop step (scripted model)':38s} {full:8.3f} ms   (completion parse + events + trivial code)")
    else:
        print(f"  {'whole loop step (scripted model)':38s} n/a: {full}")
    print(f"  schema prompt / source dump        {char_ratio:8.2f} chars ({len(rendered)}/{len(source)})   target <= 0.7   {'OK' if char_ratio <= 0.7 else 'OVER'}")
    print(f"                                     {token_ratio:8.2f} tokens ({tokens(rendered)}/{tokens(source)})")


if __name__ == "__main__":
    main()
