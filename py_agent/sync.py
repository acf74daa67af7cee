"""Drive an async generator from synchronous code.

On CPython a private event loop runs it. Inside Pyodide no event loop can
block, so the generator is stepped by hand; that works as long as nothing it
awaits needs real I/O (the scripted providers and sync tools), and otherwise
says to use ``arun`` with ``await``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def _step_by_hand(awaitable: Awaitable[T]) -> T:
    driver = awaitable.__await__()
    try:
        while True:
            waiting_on = driver.send(None)
            if waiting_on is not None:
                driver.close()
                raise RuntimeError(
                    "run() cannot wait for real I/O inside Pyodide; use `async for event in agent.arun(state)` instead"
                )
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def run_sync(awaitable: Awaitable[T]) -> T:
    """Run one awaitable to completion from synchronous code (CPython or Pyodide)."""
    if sys.platform == "emscripten":
        return _step_by_hand(awaitable)
    return asyncio.run(awaitable)  # type: ignore[arg-type]


def iterate(agen: AsyncIterator[T]) -> Iterator[T]:
    """Yield the items of ``agen`` synchronously."""
    if sys.platform == "emscripten":
        while True:
            try:
                yield _step_by_hand(agen.__anext__())
            except StopAsyncIteration:
                return
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(agen.__anext__())  # type: ignore[arg-type]
            except StopAsyncIteration:
                return
    finally:
        closer: Any = getattr(agen, "aclose", None)
        if closer is not None:
            loop.run_until_complete(closer())
        loop.close()
