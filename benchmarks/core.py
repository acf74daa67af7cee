"""Core benchmark: per-step overhead of the loop and the size of the rendered schema.

Prints figures and ratios against targets; never fails on speed (that is for
people to read, not for CI to flake on). Run: ``python benchmarks/core.py``.

- overhead = (validate + execute + database step + events) − the code's own time,
  where the code's own time is a bare ``exec`` of the same compiled 20-line step.
- schema ratio = rendered schema / source dump of the same schema module,
  in characters and in rough tokens.
"""

from __future__ import annotations

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
from py_agent.sandbox.runtime import safe_builtins  # noqa: E402
from py_agent.schema import render_schema  # noqa: E402
from py_agent.sandbox.validator import Policy, check, check_parsed  # noqa: E402

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


def bench_overhead(repeats: int = 200) -> tuple[float, float, float]:
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

    import contextlib
    import io

    async def checked_step() -> None:
        _, tree = check_parsed(STEP, policy)  # as the loop does: one parse per step
        db.begin_step()
        outcome = await executor.run(STEP, tree=tree)
        assert outcome.error is None, outcome.error
        db.flush()
        tables = db.changes()
        db.commit_step()
        for event in (
            ev.SignalEvent(ev.Signal.VALIDATION, 1),
            ev.SignalEvent(ev.Signal.EXECUTION, 1),
            ev.ExecutionResult(1, outcome.output, None, outcome.duration_ms),
        ):
            event.to_dict()
        del tables

    def bare_step() -> None:
        # Same work, same DB state: the code's own time (output still captured).
        db.session.expire_all()
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compiled, bare_ns)  # noqa: S102

    loop = asyncio.new_event_loop()
    for _ in range(20):  # warm up both paths
        loop.run_until_complete(checked_step())
        bare_step()
    checked, bare = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        loop.run_until_complete(checked_step())
        checked.append(time.perf_counter() - t)
        t = time.perf_counter()
        bare_step()
        bare.append(time.perf_counter() - t)
    t0 = time.perf_counter()
    for _ in range(repeats):
        check(STEP, policy)
    validate_ms = (time.perf_counter() - t0) / repeats * 1000
    loop.close()
    return median_ms(checked) - median_ms(bare), median_ms(bare), validate_ms


def bench_full_step(repeats: int = 50) -> float:
    """A whole loop step with a scripted model (completion parsing included)."""
    engine = create_demo_engine()
    reply = {"message": "", "code": "print(1)"}
    agent = Agent(base=Base, model=FunctionProvider(lambda r: reply, chunk_size=64), max_loops=repeats + 1)
    state = State(engine=engine)
    state.messages.append(UserMessage("go"))
    times, last = [], None
    for event in agent.run(state):
        now = time.perf_counter()
        if event.type == "signal" and event.signal.value == "completion":
            if last is not None:
                times.append(now - last)
            last = now
        if len(times) >= repeats:
            state.abort()
    return median_ms(times)


def main() -> None:
    overhead, own, validate_ms = bench_overhead()
    full = bench_full_step()
    rendered = render_schema(Base)
    source = inspect.getsource(library)
    char_ratio = len(rendered) / len(source)
    token_ratio = tokens(rendered) / tokens(source)
    print("py-agent core benchmark (median)")
    print(f"  20-line step, code's own time      {own:8.3f} ms")
    print(f"  per-step overhead beyond the code  {overhead:8.3f} ms   target <= 2 ms   {'OK' if overhead <= 2 else 'OVER'}")
    print(f"    of which validation              {validate_ms:8.3f} ms")
    print(f"  whole loop step (scripted model)   {full:8.3f} ms   (completion parse + events + trivial code)")
    print(f"  schema prompt / source dump        {char_ratio:8.2f} chars ({len(rendered)}/{len(source)})   target <= 0.7   {'OK' if char_ratio <= 0.7 else 'OVER'}")
    print(f"                                     {token_ratio:8.2f} tokens ({tokens(rendered)}/{tokens(source)})")


if __name__ == "__main__":
    main()
