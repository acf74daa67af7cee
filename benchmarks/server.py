"""Load benchmark: many conversations at once against one PostgreSQL (issue 10.5).

Starts a throwaway PostgreSQL (py_agent.testing.PostgresCluster), prepares the demo
bookshop for a least-privilege role, then runs N concurrent conversations (default 20)
with scripted models, each one turn of S steps (default 10) that read and write, twice:
with model code in this process and with each conversation in its own worker process.
Prints throughput, p50/p95 step latency (from "run this code" to "committed"), the worker
start time, and the cost of the separate process. Asserts no cross-talk (each step reads
exactly its own conversation's committed rows) and no lost rows.

    python3 benchmarks/server.py [--conversations 20] [--steps 10]
    python3 build.py bench --server
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402

from py_agent import ScriptedProvider, UserMessage  # noqa: E402
from py_agent import events as ev  # noqa: E402
from py_agent.demo import create_demo_engine  # noqa: E402
from py_agent.server import Server  # noqa: E402
from py_agent.testing import PostgresCluster  # noqa: E402

ROLE = "bench_app"
APP = "from py_agent.demo import Base\n"


def step_code(conversation: int, step: int) -> str:
    """Read this conversation's rows (committed by its earlier steps), then write one more."""
    prefix = f"bench c{conversation:02d} "
    return (
        f"mine = session.scalar(select(func.count()).select_from(Tag).where(Tag.name.like({prefix + '%'!r})))\n"
        f"books = session.scalar(select(func.count()).select_from(Book))\n"
        f"session.add(Tag(name={prefix + f's{step:02d}'!r}))\n"
        "print(mine, books)"
    )


async def conversation(server: Server, number: int, steps: int, latencies: list[float], problems: list[str]) -> None:
    replies = [{"message": "", "code": step_code(number, i)} for i in range(steps)] + [{"message": "done", "code": ""}]
    agent = server.agent(ScriptedProvider(replies), max_loops=steps + 1)
    c = server.open()
    c.state.messages.append(UserMessage(f"conversation {number}"))
    started: float | None = None
    expected = 0
    async for event in agent.arun(c.state):
        if isinstance(event, ev.SignalEvent) and event.signal == ev.Signal.EXECUTION:
            started = time.perf_counter()
        elif isinstance(event, ev.ExecutionResult):
            mine = event.output.split()[0] if event.output.split() else ""
            if event.error or mine != str(expected):
                problems.append(f"conversation {number} step {expected}: read {event.output!r} {event.error or ''}")
        elif isinstance(event, ev.Changes) and event.status == "committed" and started is not None:
            latencies.append(time.perf_counter() - started)
            expected += 1
            started = None
        elif isinstance(event, ev.ErrorEvent):
            problems.append(f"conversation {number}: {event.message}")
    c.save()
    if [p.kind for p in c.state.history] != ["turn"]:
        problems.append(f"conversation {number}: history {c.state.history}")
    c.close()


async def run_all(server: Server, conversations: int, steps: int) -> tuple[list[float], float, list[str]]:
    latencies: list[float] = []
    problems: list[str] = []
    started = time.perf_counter()
    await asyncio.gather(*(conversation(server, n, steps, latencies, problems) for n in range(conversations)))
    return latencies, time.perf_counter() - started, problems


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def check_rows(url: str, conversations: int, steps: int) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT name FROM tags WHERE name LIKE 'bench c%'")).scalars().all()
    finally:
        engine.dispose()
    expected = {f"bench c{c:02d} s{s:02d}" for c in range(conversations) for s in range(steps)}
    problems = []
    if sorted(rows) != sorted(expected):
        problems.append(f"rows: {len(rows)} found, {len(expected)} expected; missing {sorted(expected - set(rows))[:5]}")
    return problems


def reset(admin_url: str) -> None:
    engine = create_engine(admin_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tags WHERE name LIKE 'bench c%'"))
        conn.execute(text("DELETE FROM py_agent.history_rows"))
        conn.execute(text("DELETE FROM py_agent.history"))
    engine.dispose()


def measure(label: str, server: Server, admin_url: str, conversations: int, steps: int) -> list[float]:
    reset(admin_url)
    latencies, elapsed, problems = asyncio.run(run_all(server, conversations, steps))
    problems += check_rows(server.url, conversations, steps)
    total = conversations * steps
    print(
        f"{label:<22} {total} steps in {elapsed:6.2f} s  throughput {total / elapsed:6.1f} steps/s  "
        f"step latency p50 {1000 * statistics.median(latencies):7.1f} ms  p95 {1000 * percentile(latencies, 0.95):7.1f} ms"
    )
    if problems:
        print("  PROBLEMS:\n  " + "\n  ".join(problems[:20]))
        raise SystemExit(1)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    from py_agent.database.postgres_setup import setup

    with PostgresCluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        cluster.psql(f"CREATE ROLE {ROLE} LOGIN")
        admin_url = cluster.create_database("bench")
        create_demo_engine(admin_url).dispose()
        setup(admin_url, role=ROLE)
        url = cluster.url("bench", user=ROLE)
        app = Path(tmp) / "bench_app.py"
        app.write_text(APP)
        print(f"== server benchmark: {args.conversations} concurrent conversations x {args.steps} steps (read + write + commit), "
              f"PostgreSQL {cluster.psql('SHOW server_version').strip()}, scripted models")
        local_server = Server.create(str(app), url, separate_process=False)
        process_server = Server.create(str(app), url, separate_process=True)
        print(f"-- {args.conversations} at once ({os.cpu_count()} CPU cores; latency includes waiting for a core)")
        measure("in this process", local_server, admin_url, args.conversations, args.steps)
        started = time.perf_counter()
        first = process_server.open()
        first.workspace._ensure_worker()  # the app's template process starts with the first worker
        template_start = time.perf_counter() - started
        started = time.perf_counter()
        second = process_server.open()
        second.workspace._ensure_worker()
        worker_start = time.perf_counter() - started
        first.close(), second.close()
        measure("separate processes", process_server, admin_url, args.conversations, args.steps)
        print("-- one conversation at a time (the cost of the process boundary itself)")
        alone_local = measure("in this process", local_server, admin_url, 1, args.steps * 3)
        alone_process = measure("separate processes", process_server, admin_url, 1, args.steps * 3)
        overhead = statistics.median(alone_process) - statistics.median(alone_local)
        print(f"worker start: first of an app {1000 * template_start:.0f} ms (starts its template process), "
              f"then {1000 * worker_start:.0f} ms each (forked from the template)")
        print(f"separate-process overhead per step (p50, one at a time): {1000 * overhead:+.1f} ms; no cross-talk, no lost rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
