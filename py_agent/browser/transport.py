"""The postMessage transport: provider requests go out through the page's fetch shim.

The worker never holds the API key: it posts the request (URL, headers without
secrets, body) to the page, whose shim adds the key, checks the origin and
streams the response bytes back as ``fetch_start`` / ``fetch_chunk`` /
``fetch_end`` or ``fetch_error`` messages.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..providers import errors as provider_errors
from ..transports.base import Headers, HttpRequest, HttpResponse

Post = Callable[[dict[str, Any], "bytes | None"], None]

class ShimRefusedError(provider_errors.ProviderError):
    """The page's fetch shim would not send the request (wrong origin, no key)."""

    kind = "refused"


# fetch_error kinds the page's shim sends, and the error each becomes in Python.
_FETCH_ERRORS: dict[str, type[provider_errors.ProviderError]] = {
    "cors": provider_errors.CorsRefusedError,
    "unreachable": provider_errors.EndpointUnreachableError,
    "timeout": provider_errors.ProviderTimeoutError,
    "interrupted": provider_errors.StreamInterruptedError,
    "missing_key": provider_errors.MissingApiKeyError,
    "refused": ShimRefusedError,
}


def fetch_error(kind: str, message: str, hint: str = "", *, started: bool = False) -> provider_errors.ProviderError:
    """The typed error for a ``fetch_error`` message.

    Once the body has started, any failure means the stream broke off.
    """
    if started and kind in ("unreachable", "cors"):
        kind = "interrupted"
    cls = _FETCH_ERRORS.get(kind, provider_errors.ProviderError)
    return cls(message or f"the request failed ({kind})", hint=hint)


class _Exchange:
    """One request in flight: a future for the status line, a queue for the body."""

    def __init__(self, exchange_id: int) -> None:
        self.id = exchange_id
        self.started: asyncio.Future[tuple[int, dict[str, str]]] = asyncio.get_event_loop().create_future()
        self.queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        self.finished = False

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


class BrowserTransport:
    """Sends provider requests through the page's fetch shim.

    The request goes out as ``{type: "fetch", id, method, url, headers, body,
    auth, stream, timeouts}`` (``HttpRequest.to_json()``, which never holds the
    key); the page answers with ``fetch_start``, ``fetch_chunk``\\* and
    ``fetch_end`` or ``fetch_error``. Closing the response early posts
    ``fetch_abort`` so the page cancels the fetch.
    """

    def __init__(self, post: Post) -> None:
        self._post = post
        self._exchanges: dict[int, _Exchange] = {}
        self._ids = itertools.count(1)

    async def send(self, request: HttpRequest) -> HttpResponse:
        exchange = _Exchange(next(self._ids))
        self._exchanges[exchange.id] = exchange
        self._post({"type": "fetch", "id": exchange.id, **request.to_json()}, None)
        try:
            status, headers = await exchange.started
        except BaseException:
            # Cancelled while waiting for headers (abort), or the page reported an error.
            self._forget(exchange, abort=True)
            raise

        async def close() -> None:
            self._forget(exchange, abort=not exchange.finished)

        return HttpResponse(status, Headers(headers), exchange.chunks(), url=request.url, on_close=close)

    def _forget(self, exchange: _Exchange, *, abort: bool) -> None:
        if self._exchanges.pop(exchange.id, None) is not None and abort:
            exchange.finished = True
            self._post({"type": "fetch_abort", "id": exchange.id}, None)

    @property
    def in_flight(self) -> int:
        return len(self._exchanges)

    def receive(self, message: dict[str, Any], data: bytes | None = None) -> None:
        """Feed one ``fetch_*`` message from the page."""
        exchange = self._exchanges.get(message.get("id"))  # type: ignore[arg-type]
        if exchange is None or exchange.finished:
            return  # a late message for a request that was aborted: nothing waits for it
        kind = message["type"]
        if kind == "fetch_start":
            if not exchange.started.done():
                exchange.started.set_result((int(message["status"]), dict(message.get("headers") or {})))
        elif kind == "fetch_chunk":
            if data:
                exchange.queue.put_nowait(bytes(data))
        elif kind == "fetch_end":
            exchange.finished = True
            exchange.queue.put_nowait(None)
        elif kind == "fetch_error":
            started = exchange.started.done()
            error = fetch_error(message.get("kind", ""), message.get("message", ""), message.get("hint", ""), started=started)
            exchange.finished = True
            if started:
                exchange.queue.put_nowait(error)
            else:
                exchange.started.set_exception(error)


