"""Fake model servers on loopback that speak the real wire formats.

One threaded ``http.server`` per format (OpenAI Chat Completions, Anthropic
Messages, Gemini generateContent), on 127.0.0.1 and a free port, with real
HTTP/1.1, chunked transfer encoding and server-sent events. Tests script the
replies (``server.reply({...})``) and queue faults (``server.fault(Fault...)``);
each request takes the next fault if there is one, otherwise the next reply,
otherwise what ``responder(request)`` returns (e.g. a recorded demo's next step),
otherwise ``{"message": "Done.", "code": ""}``.

    with FakeOpenAI() as server:
        server.reply({"message": "Counting.", "code": "print(1)"})
        agent = app.agent(model="openai-compatible:fake",
                          provider_options={"base_url": server.base_url, "api_key": server.api_key})

For browsers, every response carries CORS headers (``cors=False`` to leave them
out, e.g. to test a page's "no CORS" diagnosis) and ``OPTIONS`` preflights are
answered. A test that cannot reach the Python object (a Playwright test against
``python -m py_agent.testing.fake_server``) scripts it over HTTP instead:

    GET  /health              200 {"ok": true, "format": ..., "base_url": ...}
    POST /_fake/replies       JSON list of replies, queued
    POST /_fake/faults        JSON list of faults ({"kind": "status", "status": 429, ...})
    GET  /_fake/requests      what the server received, as JSON
    POST /_fake/reset         forget queued replies, faults and received requests

The official ``openai`` and ``anthropic`` SDKs are pointed at these servers in
py-agent's own tests, which is what shows that the fakes speak the real formats.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..providers.base import ChatMessage

DEFAULT_REPLY = {"message": "Done.", "code": ""}


@dataclass
class Fault:
    """What goes wrong with one request. Build them with the class methods."""

    kind: str
    status: int = 500
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    after: int = 2  # stream events sent before the fault strikes
    delay: float = 0.0
    size: int = 0
    keep: int = 40  # max_tokens: characters of the reply sent before the cut

    @classmethod
    def http(cls, status: int, message: str = "", headers: dict[str, str] | None = None, body: bytes | None = None) -> Fault:
        """An error status with the format's own error body (or ``body``)."""
        return cls("status", status=status, message=message, headers=headers or {}, body=body)

    @classmethod
    def html(cls, status: int = 502) -> Fault:
        """An HTML error page, as a proxy or load balancer sends."""
        return cls("html", status=status)

    @classmethod
    def wrong_content_type(cls) -> Fault:
        return cls("wrong_content_type", status=200)

    @classmethod
    def invalid_json(cls) -> Fault:
        return cls("invalid_json", status=200)

    @classmethod
    def drip(cls, delay: float) -> Fault:
        """The reply, with ``delay`` seconds before each event."""
        return cls("drip", delay=delay)

    @classmethod
    def reset(cls, after: int = 2) -> Fault:
        """Connection reset (TCP RST) after ``after`` events (0: before the headers)."""
        return cls("reset", after=after)

    @classmethod
    def truncate(cls, after: int = 2) -> Fault:
        """The connection closes mid-body, chunked encoding left unfinished."""
        return cls("truncate", after=after)

    @classmethod
    def end_early(cls, after: int = 2) -> Fault:
        """The body ends cleanly at the HTTP level, but before the stream's last event."""
        return cls("end_early", after=after)

    @classmethod
    def stream_error(cls, after: int = 1, message: str = "Overloaded") -> Fault:
        """An error event inside a 200 stream."""
        return cls("stream_error", after=after, message=message)

    @classmethod
    def big(cls, size: int = 5 * 1024 * 1024) -> Fault:
        """A reply whose message is ``size`` characters long."""
        return cls("big", size=size)

    @classmethod
    def hang(cls) -> Fault:
        """Send nothing at all until the client gives up."""
        return cls("hang")

    @classmethod
    def hang_mid_stream(cls, after: int = 2) -> Fault:
        """Send ``after`` events, then nothing until the client gives up."""
        return cls("hang_mid_stream", after=after)

    @classmethod
    def max_tokens(cls, keep: int = 40) -> Fault:
        """The reply cut off after ``keep`` characters, ending with the format's own "output
        limit reached" signal. Unlike other faults it uses the reply up, as a real model would."""
        return cls("max_tokens", keep=keep)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        """A fault from JSON (the control endpoint, the command line); ``body`` may be text."""
        known = {"kind", "status", "message", "headers", "body", "after", "delay", "size", "keep"}
        unknown = sorted(set(data) - known)
        if unknown or "kind" not in data:
            raise ValueError(f"a fault needs a 'kind' and only these keys: {', '.join(sorted(known))} (got {sorted(data)})")
        if data["kind"] not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {data['kind']!r}: use one of {', '.join(FAULT_KINDS)}")
        values = dict(data)
        if isinstance(values.get("body"), str):
            values["body"] = values["body"].encode("utf-8")
        return cls(**values)


FAULT_KINDS = ("status", "html", "wrong_content_type", "invalid_json", "drip", "reset", "truncate",
               "end_early", "stream_error", "big", "hang", "hang_mid_stream", "max_tokens")


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "query": self.query, "headers": self.headers, "body": self.body}


def reply_text(reply: Any) -> str:
    return reply if isinstance(reply, str) else json.dumps(reply, ensure_ascii=False)


def rough_tokens(value: Any) -> int:
    return max(1, len(json.dumps(value, ensure_ascii=False)) // 4)


def pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class FakeModelServer:
    """The shared machinery; a subclass supplies one wire format."""

    name = "fake"

    def __init__(
        self,
        *,
        api_key: str | None = "test-key",
        models: set[str] | None = None,
        chunk_size: int = 8,
        cors: bool = True,
        responder: Callable[[Received], Any] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.models = models
        self.chunk_size = chunk_size
        self.cors = cors
        self.responder = responder
        self.host = host
        self.port = port
        self.replies: deque[Any] = deque()
        self.faults: deque[Fault] = deque()
        self.requests: list[Received] = []
        self.dropped = threading.Event()  # a client went away in the middle of a response
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # --- scripting -----------------------------------------------------------

    def reply(self, *replies: Any) -> FakeModelServer:
        self.replies.extend(replies)
        return self

    def fault(self, *faults: Fault) -> FakeModelServer:
        self.faults.extend(faults)
        return self

    def reset(self) -> FakeModelServer:
        """Forget queued replies and faults and the requests received."""
        with self._lock:
            self.replies.clear()
            self.faults.clear()
            self.requests.clear()
        return self

    def _next(self, request: Received) -> tuple[Fault | None, Any]:
        # A faulted request shows (part of) the next reply without using it up,
        # so the retry that follows gets the same reply, as from a real model.
        with self._lock:
            fault = self.faults.popleft() if self.faults else None
            if self.replies:
                peek = fault is not None and fault.kind != "max_tokens"
                return fault, self.replies[0] if peek else self.replies.popleft()
        return fault, self.responder(request) if self.responder is not None else DEFAULT_REPLY

    # --- life cycle ----------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeModelServer:
        server = self

        class Handler(_Handler):
            fake = server

        self._httpd = _Server((self.host, self.port), Handler)
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what a format supplies ------------------------------------------------

    def route(self, request: Received) -> str | None:
        """``"stream"``, ``"complete"``, or ``None`` for an unknown path."""
        raise NotImplementedError

    def authorized(self, request: Received) -> bool:
        raise NotImplementedError

    def model_of(self, request: Received) -> str:
        return str((request.body or {}).get("model", ""))

    def messages_of(self, request: Received) -> list[ChatMessage]:
        """The conversation in a request, as the provider-neutral chat messages."""
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        raise NotImplementedError

    # ``stop``: the finish reason to send instead of the normal one (the cut-off signal).
    cut_off_reason = "length"

    def complete_body(self, request: Received, text: str, reply: Any, stop: str | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def stream_events(self, request: Received, text: str, reply: Any, chunk_size: int, stop: str | None = None) -> list[bytes]:
        raise NotImplementedError

    def stream_error_event(self, message: str) -> bytes:
        raise NotImplementedError

    def auth_error(self) -> tuple[int, str]:
        return 401, "Incorrect API key provided."

    def unknown_model_error(self, model: str) -> tuple[int, str]:
        return 404, f"The model `{model}` does not exist or you do not have access to it."


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients dropping idle keep-alive connections is normal; anything else is printed.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def sse(data: Any, event: str | None = None, newline: str = "\n") -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    head = f"event: {event}{newline}" if event else ""
    return f"{head}data: {text}{newline}{newline}".encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeModelServer

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    # --- low-level writing -------------------------------------------------------

    def _send_head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in {**self._cors_headers(), **headers}.items():
            self.send_header(name, value)
        self.end_headers()

    def _cors_headers(self) -> dict[str, str]:
        """What a browser needs to read the response from another origin (none with cors=False)."""
        if not self.fake.cors:
            return {}
        # A wildcard does not cover Authorization, so the asked-for headers are echoed back.
        asked = self.headers.get("access-control-request-headers")
        headers = {
            "access-control-allow-origin": self.headers.get("origin") or "*",
            "access-control-allow-methods": "GET, POST, OPTIONS",
            "access-control-allow-headers": asked or "authorization, content-type, x-api-key, anthropic-version, x-goog-api-key",
            "access-control-max-age": "600",
            "vary": "Origin",
        }
        if self.headers.get("access-control-request-private-network"):
            headers["access-control-allow-private-network"] = "true"
        return headers

    def _send_whole(self, status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        self._send_head(status, {"content-type": content_type, "content-length": str(len(body)), **(headers or {})})
        self.wfile.write(body)

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout makes close() send a TCP RST.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _wait_for_client_to_leave(self, limit: float = 10.0) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and not self.fake.stopping.is_set():
            readable, _, _ = select.select([self.connection], [], [], 0.02)
            if readable:
                try:
                    if not self.connection.recv(1, socket.MSG_PEEK):
                        self.fake.dropped.set()
                        break
                except OSError:
                    self.fake.dropped.set()
                    break
        self.close_connection = True

    # --- the request --------------------------------------------------------------

    def _send_json(self, status: int, data: Any) -> None:
        self._send_whole(status, "application/json", json.dumps(data, ensure_ascii=False).encode("utf-8"))

    def do_OPTIONS(self) -> None:
        # A CORS preflight; without CORS the server answers as one that knows nothing of it.
        self._send_head(204 if self.fake.cors else 405, {"content-length": "0"})

    def do_GET(self) -> None:
        fake = self.fake
        path = urlsplit(self.path).path
        if path == "/health":
            return self._send_json(200, {"ok": True, "format": fake.name, "base_url": fake.base_url})
        if path == "/_fake/requests":
            return self._send_json(200, [r.to_dict() for r in list(fake.requests)])
        self._send_whole(404, "application/json", b'{"error": {"message": "not found"}}')

    def _control(self, path: str, body: Any) -> None:
        """The ``/_fake/...`` endpoints: script the server over HTTP."""
        fake = self.fake
        try:
            if path == "/_fake/reset":
                fake.reset()
            elif path == "/_fake/replies":
                if not isinstance(body, list):
                    raise ValueError("send a JSON list of replies, e.g. [{\"message\": \"Hi\", \"code\": \"\"}]")
                fake.reply(*body)
            elif path == "/_fake/faults":
                if not isinstance(body, list):
                    raise ValueError("send a JSON list of faults, e.g. [{\"kind\": \"status\", \"status\": 429}]")
                fake.fault(*[Fault.from_dict(f) for f in body])
            else:
                return self._send_json(404, {"error": {"message": f"no control endpoint {path}"}})
        except (TypeError, ValueError) as exc:
            return self._send_json(400, {"error": {"message": str(exc)}})
        self._send_json(200, {"ok": True, "replies": len(fake.replies), "faults": len(fake.faults)})

    def do_POST(self) -> None:
        fake = self.fake
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        parts = urlsplit(self.path)
        if parts.path.startswith("/_fake/"):
            return self._control(parts.path, body)
        request = Received(
            "POST", parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()}, body
        )
        fake.requests.append(request)
        mode = fake.route(request)
        if mode is None:
            return self._json_error(404, "Not found: no such endpoint")
        if not fake.authorized(request):
            return self._json_error(*fake.auth_error())
        model = fake.model_of(request)
        if fake.models is not None and model not in fake.models:
            return self._json_error(*fake.unknown_model_error(model))
        try:
            fault, reply = fake._next(request)
        except Exception as exc:  # noqa: BLE001 - a broken responder must show in the test, not hang it
            return self._json_error(500, f"the fake server's responder failed: {type(exc).__name__}: {exc}")
        try:
            self._answer(request, mode, fault, reply)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            fake.dropped.set()
            self.close_connection = True

    def _json_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(self.fake.error_body(status, message)).encode()
        self._send_whole(status, "application/json", body, headers)

    def _answer(self, request: Received, mode: str, fault: Fault | None, reply: Any) -> None:
        fake = self.fake
        kind = fault.kind if fault else "ok"
        if kind == "status":
            assert fault is not None
            if fault.body is not None:
                return self._send_whole(fault.status, "application/json", fault.body, fault.headers)
            return self._json_error(fault.status, fault.message or f"fault {fault.status}", fault.headers)
        if kind == "html":
            assert fault is not None
            page = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"
            return self._send_whole(fault.status, "text/html", page)
        if kind == "wrong_content_type":
            return self._send_whole(200, "text/plain", b"Hello from a web server that is not a model API")
        if kind == "hang":
            return self._wait_for_client_to_leave()
        if kind == "reset" and fault is not None and fault.after == 0:
            return self._reset()
        if kind == "big":
            assert fault is not None
            reply = {"message": "x" * fault.size, "code": ""}
        text = reply_text(reply)
        stop = None
        if kind == "max_tokens":
            assert fault is not None
            text, reply, stop = text[: fault.keep], text[: fault.keep], fake.cut_off_reason

        if mode == "complete":
            if kind == "invalid_json":
                return self._send_whole(200, "application/json", b'{"choices": [{"message": ')
            cut = {"stop": stop} if stop else {}  # passed only when set: tests may wrap these methods
            body = json.dumps(fake.complete_body(request, text, reply, **cut)).encode("utf-8")
            if kind in ("truncate", "reset", "end_early"):
                self._send_head(200, {"content-type": "application/json", "content-length": str(len(body))})
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                if kind == "reset":
                    return self._reset()
                self.close_connection = True
                return
            if kind == "drip":
                assert fault is not None
                time.sleep(fault.delay)
            return self._send_whole(200, "application/json", body)

        # A big reply comes in big pieces, as a fast model's would after buffering.
        events = fake.stream_events(request, text, reply, 65536 if kind == "big" else fake.chunk_size, **({"stop": stop} if stop else {}))
        if kind == "invalid_json":
            events = events[:1] + [b"data: {not json at all\n\n"] + events[1:]
        self._send_head(200, {"content-type": "text/event-stream", "cache-control": "no-cache", "transfer-encoding": "chunked"})
        after = fault.after if fault else 0
        for index, event in enumerate(events):
            if fake.stopping.is_set():
                return self._reset()
            if fault is not None and index == after:
                if kind == "reset":
                    time.sleep(0.05)  # let the client read what was sent: an RST discards unread data
                    return self._reset()
                if kind == "truncate":
                    self.close_connection = True
                    return  # the server's close leaves the chunked body unfinished
                if kind == "end_early":
                    return self._end_chunks()
                if kind == "stream_error":
                    self._chunk(fake.stream_error_event(fault.message))
                    return self._end_chunks()
                if kind == "hang_mid_stream":
                    return self._wait_for_client_to_leave()
            if kind == "drip" and fault is not None:
                time.sleep(fault.delay)
            self._chunk(event)
        self._end_chunks()


def _text_of(content: Any) -> str:
    """The text of a message's content: a string, or a list of parts with ``text``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _chat(pairs: list[tuple[str, str]]) -> list[ChatMessage]:
    return [ChatMessage("assistant" if role in ("assistant", "model") else "user", text) for role, text in pairs]


# --- OpenAI Chat Completions ------------------------------------------------------


class FakeOpenAI(FakeModelServer):
    """``POST /v1/chat/completions``; ``base_url`` for clients is ``.../v1``."""

    name = "openai"

    @property
    def base_url(self) -> str:
        return super().base_url + "/v1"

    def route(self, request: Received) -> str | None:
        if request.path != "/v1/chat/completions":
            return None
        return "stream" if (request.body or {}).get("stream") else "complete"

    def authorized(self, request: Received) -> bool:
        return self.api_key is None or request.headers.get("authorization") == f"Bearer {self.api_key}"

    def messages_of(self, request: Received) -> list[ChatMessage]:
        messages = (request.body or {}).get("messages") or []
        return _chat([(m.get("role", ""), _text_of(m.get("content"))) for m in messages
                      if isinstance(m, dict) and m.get("role") in ("user", "assistant")])

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        codes = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}
        kind = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
                429: "requests"}.get(status, "server_error")
        if "context length" in message:
            codes[400] = "context_length_exceeded"
        return {"error": {"message": message, "type": kind, "param": None, "code": codes.get(status)}}

    def _usage(self, request: Received, text: str) -> dict[str, int]:
        prompt = rough_tokens((request.body or {}).get("messages"))
        completion = max(1, len(text) // 4)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def complete_body(self, request: Received, text: str, reply: Any, stop: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake1",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_of(request),
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": stop or "stop",
                }
            ],
            "usage": self._usage(request, text),
        }

    def _chunk_json(self, request: Received, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": "chatcmpl-fake1",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model_of(request),
            "system_fingerprint": "fp_fake",
            "choices": choices,
            **extra,
        }

    def stream_events(self, request: Received, text: str, reply: Any, chunk_size: int, stop: str | None = None) -> list[bytes]:
        def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
            return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

        events = [sse(self._chunk_json(request, choice({"role": "assistant", "content": "", "refusal": None})))]
        events += [sse(self._chunk_json(request, choice({"content": p}))) for p in pieces(text, chunk_size)]
        events.append(sse(self._chunk_json(request, choice({}, stop or "stop"))))
        if ((request.body or {}).get("stream_options") or {}).get("include_usage"):
            events.append(sse(self._chunk_json(request, [], usage=self._usage(request, text))))
        events.append(sse("[DONE]"))
        return events

    def stream_error_event(self, message: str) -> bytes:
        return sse({"error": {"message": message, "type": "server_error", "code": 502}})


# --- Anthropic Messages -----------------------------------------------------------


class FakeAnthropic(FakeModelServer):
    """``POST /v1/messages``; ``base_url`` for clients is the origin."""

    name = "anthropic"
    _types = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
              404: "not_found_error", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}

    def route(self, request: Received) -> str | None:
        if request.path != "/v1/messages":
            return None
        return "stream" if (request.body or {}).get("stream") else "complete"

    def authorized(self, request: Received) -> bool:
        # The documented header is x-api-key; the newest official SDK sends a bearer token instead.
        return self.api_key is None or self.api_key in (
            request.headers.get("x-api-key"),
            request.headers.get("authorization", "").removeprefix("Bearer "),
        )

    def auth_error(self) -> tuple[int, str]:
        return 401, "invalid x-api-key"

    def messages_of(self, request: Received) -> list[ChatMessage]:
        messages = (request.body or {}).get("messages") or []
        return _chat([(m.get("role", ""), _text_of(m.get("content"))) for m in messages if isinstance(m, dict)])

    def unknown_model_error(self, model: str) -> tuple[int, str]:
        return 404, f"model: {model}"

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self._types.get(status, "api_error"), "message": message}}

    def _tool(self, request: Received) -> str | None:
        choice = (request.body or {}).get("tool_choice") or {}
        return choice.get("name") if choice.get("type") == "tool" else None

    def _usage(self, request: Received, text: str) -> tuple[int, int]:
        body = request.body or {}
        return rough_tokens([body.get("system"), body.get("messages")]), max(1, len(text) // 4)

    cut_off_reason = "max_tokens"

    def complete_body(self, request: Received, text: str, reply: Any, stop: str | None = None) -> dict[str, Any]:
        tool = self._tool(request)
        prompt, output = self._usage(request, text)
        if tool and not isinstance(reply, str):
            content = [{"type": "tool_use", "id": "toolu_fake1", "name": tool, "input": reply}]
            reason = stop or "tool_use"
        else:
            content = [{"type": "text", "text": text}]
            reason = stop or "end_turn"
        return {
            "id": "msg_fake1",
            "type": "message",
            "role": "assistant",
            "model": self.model_of(request),
            "content": content,
            "stop_reason": reason,
            "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": output},
        }

    def stream_events(self, request: Received, text: str, reply: Any, chunk_size: int, stop: str | None = None) -> list[bytes]:
        tool = self._tool(request)
        prompt, output = self._usage(request, text)
        start = {
            "type": "message_start",
            "message": {
                "id": "msg_fake1", "type": "message", "role": "assistant", "model": self.model_of(request),
                "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": prompt, "output_tokens": 1},
            },
        }
        if tool:
            block = {"type": "tool_use", "id": "toolu_fake1", "name": tool, "input": {}}
            delta_of = lambda p: {"type": "input_json_delta", "partial_json": p}  # noqa: E731
        else:
            block = {"type": "text", "text": ""}
            delta_of = lambda p: {"type": "text_delta", "text": p}  # noqa: E731
        events = [
            sse(start, "message_start"),
            sse({"type": "content_block_start", "index": 0, "content_block": block}, "content_block_start"),
            sse({"type": "ping"}, "ping"),
        ]
        events += [
            sse({"type": "content_block_delta", "index": 0, "delta": delta_of(p)}, "content_block_delta")
            for p in pieces(text, chunk_size)
        ]
        events += [
            sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
            sse(
                {"type": "message_delta", "delta": {"stop_reason": stop or ("tool_use" if tool else "end_turn"), "stop_sequence": None},
                 "usage": {"output_tokens": output}},
                "message_delta",
            ),
            sse({"type": "message_stop"}, "message_stop"),
        ]
        return events

    def stream_error_event(self, message: str) -> bytes:
        return sse({"type": "error", "error": {"type": "overloaded_error", "message": message}}, "error")


# --- Gemini generateContent -----------------------------------------------------------


class FakeGemini(FakeModelServer):
    """``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``."""

    name = "gemini"
    _statuses = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
                 500: "INTERNAL", 503: "UNAVAILABLE"}

    def route(self, request: Received) -> str | None:
        path = request.path
        if not path.startswith("/v1beta/models/") or ":" not in path:
            return None
        method = path.rsplit(":", 1)[1]
        if method == "streamGenerateContent" and request.query.get("alt") == ["sse"]:
            return "stream"
        if method == "generateContent":
            return "complete"
        return None

    def model_of(self, request: Received) -> str:
        return request.path.removeprefix("/v1beta/models/").rsplit(":", 1)[0]

    def messages_of(self, request: Received) -> list[ChatMessage]:
        contents = (request.body or {}).get("contents") or []
        return _chat([(c.get("role", "user"), _text_of(c.get("parts"))) for c in contents if isinstance(c, dict)])

    def authorized(self, request: Received) -> bool:
        return self.api_key is None or request.headers.get("x-goog-api-key") == self.api_key

    def auth_error(self) -> tuple[int, str]:
        return 400, "API key not valid. Please pass a valid API key."

    def unknown_model_error(self, model: str) -> tuple[int, str]:
        return 404, f"models/{model} is not found for API version v1beta, or is not supported for generateContent."

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"error": {"code": status, "message": message, "status": self._statuses.get(status, "UNKNOWN")}}

    def _usage(self, request: Received, text: str) -> dict[str, int]:
        body = request.body or {}
        prompt = rough_tokens([body.get("systemInstruction"), body.get("contents")])
        output = max(1, len(text) // 4)
        return {"promptTokenCount": prompt, "candidatesTokenCount": output, "totalTokenCount": prompt + output}

    def _response(self, request: Received, text: str, finish: str | None, usage: dict[str, int] | None) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        data: dict[str, Any] = {"candidates": [candidate], "modelVersion": self.model_of(request), "responseId": "fake1"}
        if usage:
            data["usageMetadata"] = usage
        return data

    cut_off_reason = "MAX_TOKENS"

    def complete_body(self, request: Received, text: str, reply: Any, stop: str | None = None) -> dict[str, Any]:
        return self._response(request, text, stop or "STOP", self._usage(request, text))

    def stream_events(self, request: Received, text: str, reply: Any, chunk_size: int, stop: str | None = None) -> list[bytes]:
        parts = pieces(text, chunk_size)
        usage = self._usage(request, text)
        # Google ends each event with CRLF CRLF.
        return [
            sse(self._response(request, p, (stop or "STOP") if i == len(parts) - 1 else None,
                               usage if i == len(parts) - 1 else {"promptTokenCount": usage["promptTokenCount"]}),
                newline="\r\n")
            for i, p in enumerate(parts)
        ]

    def stream_error_event(self, message: str) -> bytes:
        return sse({"error": {"code": 503, "message": message, "status": "UNAVAILABLE"}}, newline="\r\n")


FORMATS: dict[str, type[FakeModelServer]] = {"openai": FakeOpenAI, "anthropic": FakeAnthropic, "gemini": FakeGemini}


def free_port() -> int:
    """A loopback port with nothing listening on it (for "connection refused")."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
