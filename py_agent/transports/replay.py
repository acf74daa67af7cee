"""Recorded exchanges ("cassettes"): replay them for tests and demos, or record new ones.

A cassette is a JSON file::

    {"version": 1,
     "exchanges": [
       {"request": {"method": "POST",
                    "url": "/v1/chat/completions",     # full URL, or path+query to match any origin
                    "body": {"model": "gpt-4.1-mini"}}, # optional: must be a subset of the request's JSON body
        "response": {"status": 200,
                     "headers": {"content-type": "text/event-stream"},
                     "chunks": ["data: {...}\\n\\n", {"base64": "..."}],   # the body, as it arrived
                     "error": {"type": "StreamInterruptedError", "message": "..."}}},  # optional: the body breaks here
       {"request": {...}, "error": {"type": "EndpointUnreachableError", "message": "..."}}]}

Instead of ``chunks`` a hand-written response may give ``"body": "<text>"``
(and ``"chunk_size": n`` to split it). Replay hands each request the first
unplayed exchange that matches it, and plays the body back in the recorded
chunks, so streaming code runs exactly as it did against the server. Secrets
are never recorded: request headers are left out and only a few response
headers are kept.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigurationError
from ..providers import errors as provider_errors
from .base import HttpRequest, HttpResponse, Transport

KEPT_RESPONSE_HEADERS = ("content-type", "retry-after", "retry-after-ms", "x-should-retry")


class CassetteMismatchError(ConfigurationError):
    """A request had no matching exchange left in the cassette."""

    kind = "cassette_mismatch"


def encode_chunk(chunk: bytes) -> str | dict[str, str]:
    try:
        return chunk.decode("utf-8")
    except UnicodeDecodeError:  # e.g. a chunk boundary inside a multi-byte character
        return {"base64": base64.b64encode(chunk).decode("ascii")}


def decode_chunk(chunk: str | Mapping[str, str]) -> bytes:
    if isinstance(chunk, str):
        return chunk.encode("utf-8")
    return base64.b64decode(chunk["base64"])


def error_to_json(error: BaseException) -> dict[str, Any]:
    data: dict[str, Any] = {"type": type(error).__name__, "message": str(getattr(error, "message", error))}
    hint = getattr(error, "hint", "")
    if hint:
        data["hint"] = hint
    return data


def error_from_json(data: Mapping[str, Any]) -> provider_errors.ProviderError:
    cls = getattr(provider_errors, str(data.get("type", "")), None)
    if not (isinstance(cls, type) and issubclass(cls, provider_errors.ProviderError)):
        cls = provider_errors.ProviderError
    return cls(str(data.get("message", "recorded failure")), hint=str(data.get("hint", "")))


def _is_subset(expected: Any, actual: Any) -> bool:
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(
            key in actual and _is_subset(value, actual[key]) for key, value in expected.items()
        )
    return bool(expected == actual)


def _path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


class Cassette:
    """An ordered list of recorded exchanges (plain JSON-shaped dicts)."""

    def __init__(self, exchanges: list[dict[str, Any]] | None = None) -> None:
        self.exchanges: list[dict[str, Any]] = list(exchanges or [])

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Cassette:
        return cls([dict(e) for e in data.get("exchanges", [])])

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Cassette:
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "exchanges": self.exchanges}

    def save(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def request_matches(recorded: Mapping[str, Any], request: HttpRequest) -> bool:
    if recorded.get("method", "POST").upper() != request.method.upper():
        return False
    url = recorded.get("url")
    if url is not None:
        actual = _path_and_query(request.url) if url.startswith("/") else request.url
        if url != actual:
            return False
    if "body" in recorded:
        try:
            body = request.json()
        except ValueError:
            body = request.body.decode("utf-8", "replace")
        if not _is_subset(recorded["body"], body):
            return False
    return True


class ReplayTransport:
    """Answers requests from a cassette, without any network.

    ``chunk_delay`` pauses between chunks (for demos that should look live).
    ``requests`` keeps every request received, for assertions.
    """

    def __init__(self, cassette: Cassette | Mapping[str, Any] | str | os.PathLike[str], *, chunk_delay: float = 0.0) -> None:
        if isinstance(cassette, Cassette):
            self.cassette = cassette
        elif isinstance(cassette, Mapping):
            self.cassette = Cassette.from_json(cassette)
        else:
            self.cassette = Cassette.load(cassette)
        self.chunk_delay = chunk_delay
        self._played: set[int] = set()
        self.requests: list[HttpRequest] = []

    @property
    def remaining(self) -> int:
        return len(self.cassette.exchanges) - len(self._played)

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        for index, exchange in enumerate(self.cassette.exchanges):
            if index not in self._played and request_matches(exchange.get("request", {}), request):
                self._played.add(index)
                return self._respond(exchange, request)
        raise CassetteMismatchError(
            f"no recorded exchange left for {request.method} {request.url} "
            f"({self.remaining} of {len(self.cassette.exchanges)} unplayed)",
            hint="record the cassette again, or loosen its request matcher (url, body)",
        )

    def _respond(self, exchange: Mapping[str, Any], request: HttpRequest) -> HttpResponse:
        if "response" not in exchange and "error" in exchange:
            raise error_from_json(exchange["error"])
        response = exchange.get("response", {})
        if "chunks" in response:
            chunks = [decode_chunk(c) for c in response["chunks"]]
        else:
            body = response.get("body", "")
            data = body.encode("utf-8") if isinstance(body, str) else json.dumps(body).encode("utf-8")
            size = int(response.get("chunk_size") or len(data) or 1)
            chunks = [data[i : i + size] for i in range(0, len(data), size)]
        return HttpResponse(
            int(response.get("status", 200)),
            response.get("headers", {}),
            self._play(chunks, response.get("error")),
            url=request.url,
        )

    async def _play(self, chunks: list[bytes], error: Mapping[str, Any] | None) -> AsyncIterator[bytes]:
        for chunk in chunks:
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            yield chunk
        if error:
            raise error_from_json(error)


class RecordingTransport:
    """Wraps another transport and writes every exchange to a cassette.

    The cassette is saved (when ``path`` is given) each time a response is
    closed. ``strip_origin`` records URLs as path+query so the cassette
    replays against any host (handy for servers on random ports);
    ``match_body=False`` leaves the request body out of the matcher.
    """

    def __init__(
        self,
        inner: Transport,
        path: str | os.PathLike[str] | None = None,
        *,
        strip_origin: bool = False,
        match_body: bool = True,
    ) -> None:
        self.inner = inner
        self.path = path
        self.strip_origin = strip_origin
        self.match_body = match_body
        self.cassette = Cassette()

    def _request_json(self, request: HttpRequest) -> dict[str, Any]:
        recorded: dict[str, Any] = {
            "method": request.method,
            "url": _path_and_query(request.url) if self.strip_origin else request.url,
        }
        if self.match_body and request.body:
            try:
                recorded["body"] = request.json()
            except ValueError:
                recorded["body"] = request.body.decode("utf-8", "replace")
        return recorded

    def save(self) -> None:
        if self.path is not None:
            self.cassette.save(self.path)

    async def send(self, request: HttpRequest) -> HttpResponse:
        exchange: dict[str, Any] = {"request": self._request_json(request)}
        self.cassette.exchanges.append(exchange)
        try:
            response = await self.inner.send(request)
        except provider_errors.ProviderError as error:
            exchange["error"] = error_to_json(error)
            self.save()
            raise
        recorded: dict[str, Any] = {
            "status": response.status,
            "headers": {k: response.headers[k] for k in KEPT_RESPONSE_HEADERS if k in response.headers},
            "chunks": [],
        }
        exchange["response"] = recorded

        async def record() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_bytes():
                    recorded["chunks"].append(encode_chunk(chunk))
                    yield chunk
            except provider_errors.ProviderError as error:
                recorded["error"] = error_to_json(error)
                raise

        async def close() -> None:
            try:
                await response.aclose()
            finally:
                self.save()

        return HttpResponse(response.status, response.headers, record(), url=response.url, on_close=close)
