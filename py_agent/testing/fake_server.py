"""A fake model server as a command, for a Playwright config's ``webServer`` or a shell.

    python -m py_agent.testing.fake_server --format openai --port 47999 --script replies.json

``--script`` is a JSON list of replies (``{"message": ..., "code": ...}`` objects, or raw
strings sent verbatim), served in order, or a recorded demo (``py-agent chat --record``),
whose steps are chosen from each request's conversation like the page's demo model.
When the script runs out every request gets ``{"message": "Done.", "code": ""}``.
A test scripts the running server over HTTP (``POST /_fake/replies``, ``/_fake/faults``,
``/_fake/reset``; ``GET /_fake/requests``); ``GET /health`` answers 200 once it listens,
which is what Playwright's ``webServer.url`` waits for::

    webServer: {
      command: "python -m py_agent.testing.fake_server --format openai --port 47999 --no-auth",
      url: "http://127.0.0.1:47999/health",
    }

The base URL to configure in the app is printed on the first line of output
(``.../v1`` for OpenAI, the origin for Anthropic and Gemini).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .servers import FORMATS, FakeModelServer, Fault, Received


def _load_script(path: Path, server: FakeModelServer) -> str:
    """Queue the replies of ``path``, or answer from the recorded demo it holds; says which."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"fake_server: cannot read the script {path}: {exc}")
    if isinstance(data, list):
        server.reply(*data)
        return f"{len(data)} scripted replies"
    from ..recording import Demo, DemoError, RecordedModel

    try:
        demo = Demo.from_dict(data, source=str(path))
    except DemoError as exc:
        raise SystemExit(f"fake_server: {exc.message} (a script is a JSON list of replies or a recorded demo)")
    model = RecordedModel(demo)

    def respond(request: Received) -> Any:
        return model.reply_to(server.messages_of(request))

    server.responder = respond
    return f"the recorded demo's {len(demo.turns)} request(s)"


def _fault(text: str) -> Fault:
    """``KIND`` or ``KIND:ARG`` (status code, events before the fault, or seconds) or a JSON object."""
    if text.startswith("{"):
        return Fault.from_dict(json.loads(text))
    kind, _, arg = text.partition(":")
    if kind == "status":
        return Fault.http(int(arg or 500))
    if kind in ("reset", "truncate", "end_early", "hang_mid_stream", "stream_error"):
        return Fault.from_dict({"kind": kind, **({"after": int(arg)} if arg else {})})
    if kind == "drip":
        return Fault.drip(float(arg or 0.1))
    return Fault.from_dict({"kind": kind})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m py_agent.testing.fake_server",
                                     description="A loopback model server speaking a real wire format, for tests.")
    parser.add_argument("--format", choices=sorted(FORMATS), default="openai", help="wire format (default openai)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one, printed)")
    parser.add_argument("--script", type=Path, metavar="FILE", help="JSON list of replies, or a recorded demo")
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument("--api-key", default="test-key", help="the key requests must carry (default test-key)")
    auth.add_argument("--no-auth", action="store_true", help="accept requests without a key (as a local server does)")
    parser.add_argument("--no-cors", action="store_true", help="send no CORS headers (to test a page's diagnosis)")
    parser.add_argument("--chunk-size", type=int, default=8, help="characters per streamed event (default 8)")
    parser.add_argument("--fault", action="append", default=[], metavar="KIND[:ARG]",
                        help="queue a fault for the next request: status:429, reset:2, truncate, hang, drip:0.5, "
                             "big, html, invalid_json, wrong_content_type, stream_error, or a JSON object")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    server = FORMATS[args.format](api_key=None if args.no_auth else args.api_key, chunk_size=args.chunk_size,
                                  cors=not args.no_cors, host=args.host, port=args.port)
    what = _load_script(args.script, server) if args.script else "no script"
    try:
        server.fault(*[_fault(f) for f in args.fault])
    except (ValueError, TypeError) as exc:
        raise SystemExit(f"fake_server: bad --fault: {exc}")

    def stop(signum: int, frame: Any) -> None:
        server.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.start()
    key = "no key" if args.no_auth else f"key {args.api_key!r}"
    print(f"fake {args.format} model server at {server.base_url} ({what}; {key}; "
          f"CORS {'off' if args.no_cors else 'on'})", flush=True)
    try:
        while not server.stopping.wait(0.2):  # a timed wait lets the signal handler run
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
