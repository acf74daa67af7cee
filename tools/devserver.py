#!/usr/bin/env python3
"""Serve a built py-agent site with the headers it needs (a checkout's shortcut).

    python tools/devserver.py --port 8000 --dir web/dist [--host 127.0.0.1] [--no-isolation]

The server itself is :mod:`py_agent.site.server` (``py-agent serve DIR`` does the same);
this file keeps the checkout's command and the names the tests import.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from py_agent.site.headers import PAGE_CSP, WORKER_CSP, headers_for, is_worker_script  # noqa: E402,F401
from py_agent.site.server import (  # noqa: E402,F401
    IMMUTABLE, MIME_TYPES, REVALIDATE, Handler, Server, accepted_encodings, cache_control, make_server, serve,
    serve_in_thread,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a built py-agent site.")
    parser.add_argument("--dir", default=str(ROOT / "web" / "dist"))
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--no-isolation", action="store_true", help="omit COOP/COEP/CORP")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    serve(args.dir, args.host, args.port, not args.no_isolation, args.verbose)


if __name__ == "__main__":
    main()
