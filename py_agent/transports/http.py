"""The CPython transport: real HTTP through ``httpx2`` (what the official SDKs use).

``httpx2`` is imported on first use, so importing py_agent never needs it (and
the browser, which has its own transport, never loads it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from ..providers.errors import EndpointUnreachableError, ProviderTimeoutError, StreamInterruptedError
from .base import HttpRequest, HttpResponse


def _httpx() -> Any:
    try:
        import httpx2
    except ImportError:  # pragma: no cover - depends on the environment
        from ..errors import ConfigurationError

        raise ConfigurationError(
            "the HTTP transport needs the httpx2 package",
            hint="pip install 'py-agent[http]' (or pass another transport=)",
        ) from None
    return httpx2


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url


class HttpTransport:
    """Sends requests with an ``httpx2.AsyncClient`` and streams the body back.

    One client (and so one connection pool) is kept per event loop: the sync
    ``run()`` wrapper may start a new loop for each turn, and connections
    cannot move between loops. ``client_options`` go to ``AsyncClient``
    (e.g. ``verify=``, ``proxy=``).
    """

    def __init__(self, **client_options: Any) -> None:
        self._client_options = client_options
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _get_client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            httpx2 = _httpx()
            self._client = httpx2.AsyncClient(follow_redirects=False, **self._client_options)
            self._loop = loop
        return self._client

    async def send(self, request: HttpRequest) -> HttpResponse:
        httpx2 = _httpx()
        client = self._get_client()
        t = request.timeouts
        http_request = client.build_request(
            request.method,
            request.url,
            headers=dict(request.headers),
            content=request.body or None,
            timeout=httpx2.Timeout(connect=t.connect, read=t.read, write=t.read, pool=t.connect),
        )
        where = _origin(request.url)
        try:
            response = await client.send(http_request, stream=True)
        except httpx2.TimeoutException as exc:
            raise ProviderTimeoutError(
                f"Could not reach {where} in time ({type(exc).__name__})",
                hint=f"check that the server at {where} is up and reachable, or raise the timeouts",
            ) from exc
        except (httpx2.ConnectError, httpx2.UnsupportedProtocol, httpx2.InvalidURL) as exc:
            raise EndpointUnreachableError(
                f"Could not connect to {where}: {exc or type(exc).__name__}",
                hint=f"is the server running at {where}? check the base URL and the network",
            ) from exc
        except httpx2.TransportError as exc:
            raise StreamInterruptedError(
                f"The connection to {where} broke before a response arrived: {exc or type(exc).__name__}",
                hint="try again; if it keeps happening check the server's logs",
            ) from exc
        return HttpResponse(
            response.status_code,
            response.headers.multi_items(),
            self._chunks(response, where),
            url=str(response.url),
            on_close=response.aclose,
        )

    @staticmethod
    async def _chunks(response: Any, where: str) -> AsyncIterator[bytes]:
        httpx2 = _httpx()
        try:
            async for chunk in response.aiter_bytes():
                if chunk:
                    yield chunk
        except httpx2.TimeoutException as exc:
            raise ProviderTimeoutError(
                f"{where} stopped sending in the middle of the response",
                hint="try again; if it keeps happening raise the read timeout",
            ) from exc
        except (httpx2.TransportError, httpx2.DecodingError) as exc:
            raise StreamInterruptedError(
                f"The connection to {where} broke in the middle of the response: {exc or type(exc).__name__}",
                hint="try again; if it keeps happening check the server or the proxy in between",
            ) from exc

    async def aclose(self) -> None:
        """Close the connection pool (optional: it is also dropped with the transport)."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()
