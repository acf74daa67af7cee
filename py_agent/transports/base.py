"""The transport seam: how a provider's HTTP request reaches the model's endpoint.

Wire-format code (``py_agent.providers.openai`` and friends) builds an
:class:`HttpRequest` and reads an :class:`HttpResponse`; it never knows which
:class:`Transport` carries them. Implementations:

* :class:`py_agent.transports.http.HttpTransport` -- CPython, plain HTTP (httpx2).
* :class:`py_agent.transports.replay.ReplayTransport` -- recorded exchanges (cassettes).
* the browser transport (``py_agent.browser``) -- posts the request to the host
  page, whose fetch shim adds the API key and streams the bytes back.

Contract for a transport
------------------------
``await transport.send(request)`` returns once the status line and headers
have arrived. Every status is returned as a response, 4xx/5xx included: the
provider reads the error body and turns it into a typed error. A transport
raises only for failures to get a response at all, using the errors of
:mod:`py_agent.providers.errors`:

* ``EndpointUnreachableError`` -- connection refused, DNS failure, network down;
* ``CorsRefusedError`` -- the browser refused the request (a subclass of the above);
* ``ProviderTimeoutError`` -- the connection could not be made in ``timeouts.connect``;
* ``StreamInterruptedError`` -- raised from ``aiter_bytes()`` when the body breaks
  off (connection reset, truncated chunked encoding).

``response.aclose()`` must release the connection at once, even mid-body: this
is how aborting a run cancels the request. Read and total timeouts are enforced
by the provider around any transport (see :class:`Timeouts`).

The API key and the browser
---------------------------
In the browser the key never enters the worker. A provider built with
``browser=True`` and no key sends requests without the secret header, and
:attr:`HttpRequest.auth` names the header the page's fetch shim must add:

* OpenAI and OpenAI-compatible: ``{"header": "authorization", "scheme": "Bearer"}``
  -- the page adds ``Authorization: Bearer <key>``;
* Anthropic: ``{"header": "x-api-key"}`` -- the page adds ``x-api-key: <key>``
  (with ``auth_scheme="bearer"``: the Bearer form above);
* Gemini: ``{"header": "x-goog-api-key"}`` -- the page adds ``x-goog-api-key: <key>``.

For servers that work without a key (Ollama, vLLM, llama.cpp, LM Studio, a
bare ``openai-compatible`` base URL) the descriptor carries
``"required": false``: the page adds the header only if it holds a key for
that endpoint. :meth:`HttpRequest.to_json` is the JSON the browser transport
posts: it never contains the value of the ``auth`` header, even when the
provider had a key.
Anthropic requests made with ``browser=True`` also carry
``anthropic-dangerous-direct-browser-access: true`` (Anthropic refuses CORS
requests without it).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable


class Headers(Mapping[str, str]):
    """Read-only HTTP headers with case-insensitive names.

    Repeated headers are joined with ``", "`` as HTTP allows. Names are kept
    lower-case, which is also what HTTP/2 and the browser's ``Headers`` use.
    """

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            self._items[key] = f"{self._items[key]}, {value}" if key in self._items else str(value)

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def to_dict(self) -> dict[str, str]:
        return dict(self._items)


@dataclass(frozen=True)
class AuthHeader:
    """Which header carries the API key, and how its value is written.

    ``scheme="Bearer"`` means ``<header>: Bearer <key>``; no scheme means the
    key is the whole value. ``required=False`` marks endpoints that work
    without a key (local servers): add one only if you have one.
    """

    header: str
    scheme: str | None = None
    required: bool = True

    def value(self, key: str) -> str:
        return f"{self.scheme} {key}" if self.scheme else key

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"header": self.header}
        if self.scheme:
            data["scheme"] = self.scheme
        if not self.required:
            data["required"] = False
        return data


BEARER = AuthHeader("authorization", "Bearer")


@dataclass(frozen=True)
class Timeouts:
    """Time limits of one exchange, in seconds.

    ``connect``: to open the connection (enforced by transports that can tell).
    ``read``: the longest wait for the response headers or for the next piece
    of the body. ``total``: the whole exchange, streamed body included (it
    does not include the pauses between retries).
    """

    connect: float = 10.0
    read: float = 120.0
    total: float = 600.0

    def to_json(self) -> dict[str, float]:
        return {"connect": self.connect, "read": self.read, "total": self.total}


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request to a model endpoint.

    ``headers`` use lower-case names. ``auth`` says which header the API key
    belongs in (see the module docstring); the header itself is present in
    ``headers`` only when the provider was given the key. ``stream`` tells the
    transport that the response is expected as a stream of server-sent events.
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    auth: AuthHeader | None = None
    stream: bool = False
    timeouts: Timeouts = field(default_factory=Timeouts)

    def json(self) -> Any:
        """The body parsed as JSON (``None`` when empty)."""
        return json.loads(self.body) if self.body else None

    def public_headers(self) -> dict[str, str]:
        """The headers without the API key: safe to post, log or record."""
        secret = self.auth.header.lower() if self.auth else None
        return {k: v for k, v in self.headers.items() if k.lower() != secret}

    def without_secrets(self) -> HttpRequest:
        return replace(self, headers=self.public_headers())

    def to_json(self) -> dict[str, Any]:
        """The request as a JSON object, without the API key.

        This is what the browser transport posts to the page::

            {"method": "POST", "url": "https://api.openai.com/v1/chat/completions",
             "headers": {"content-type": "application/json", ...},
             "body": "<the JSON body as a string>",
             "auth": {"header": "authorization", "scheme": "Bearer"} | null,
             "stream": true,
             "timeouts": {"connect": 10.0, "read": 120.0, "total": 600.0}}
        """
        return {
            "method": self.method,
            "url": self.url,
            "headers": self.public_headers(),
            "body": _body_to_json(self.body),
            "auth": self.auth.to_json() if self.auth else None,
            "stream": self.stream,
            "timeouts": self.timeouts.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HttpRequest:
        auth = data.get("auth")
        timeouts = data.get("timeouts")
        return cls(
            method=data.get("method", "POST"),
            url=data["url"],
            headers={k.lower(): v for k, v in (data.get("headers") or {}).items()},
            body=_body_from_json(data.get("body")),
            auth=AuthHeader(auth["header"], auth.get("scheme"), bool(auth.get("required", True))) if auth else None,
            stream=bool(data.get("stream", False)),
            timeouts=Timeouts(**timeouts) if timeouts else Timeouts(),
        )


def _body_to_json(body: bytes) -> Any:
    # Bodies are JSON text in practice; keep arbitrary bytes representable anyway.
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(body).decode("ascii")}


def _body_from_json(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, Mapping) and "base64" in value:
        return base64.b64decode(value["base64"])
    return json.dumps(value).encode("utf-8")


async def _no_chunks() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover  (makes this an async generator)


async def _iterate(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


class HttpResponse:
    """The status, headers and (streamed) body of a response.

    ``chunks`` is consumed once, by ``aiter_bytes()``. ``on_close`` is called
    by :meth:`aclose` to release the connection; ``aclose`` is idempotent and
    safe to call before the body has been read.
    """

    def __init__(
        self,
        status: int,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        chunks: AsyncIterator[bytes] | Iterable[bytes] | None = None,
        *,
        url: str = "",
        on_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.status = status
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.url = url
        if chunks is None:
            chunks = _no_chunks()
        elif not isinstance(chunks, AsyncIterator):
            chunks = _iterate(chunks)
        self._chunks: AsyncIterator[bytes] = chunks
        self._on_close = on_close
        self.closed = False

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body, piece by piece, as it arrives."""
        return self._chunks

    async def aread(self, limit: int | None = None) -> bytes:
        """The whole body (or its first ``limit`` bytes; the rest is not read)."""
        parts: list[bytes] = []
        size = 0
        async for chunk in self._chunks:
            parts.append(chunk)
            size += len(chunk)
            if limit is not None and size >= limit:
                break
        data = b"".join(parts)
        return data if limit is None else data[:limit]

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            close = getattr(self._chunks, "aclose", None)
            if close is not None:
                await close()
        finally:
            if self._on_close is not None:
                await self._on_close()

    async def __aenter__(self) -> HttpResponse:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<HttpResponse {self.status} {self.headers.get('content-type', '')!r} {self.url}>"


@runtime_checkable
class Transport(Protocol):
    """Carries one :class:`HttpRequest` and returns its :class:`HttpResponse`."""

    async def send(self, request: HttpRequest) -> HttpResponse: ...
