"""A small static server for a built site, with the headers a py-agent site needs.

    py-agent serve DIR            (or: python tools/devserver.py --dir DIR, in a checkout)

* The headers of :mod:`py_agent.site.headers` on every response: cross-origin isolation,
  the page's Content-Security-Policy and the worker's strict one. When the site has a
  ``_headers`` file (every build writes one), its rules are used instead, as Netlify and
  Cloudflare Pages would, so what you test locally is what those hosts send.
  ``isolation=False`` leaves out COOP/COEP/CORP (the terminate-and-restore fallback).
* Correct MIME types (.mjs/.js text/javascript, .wasm application/wasm, ...).
* Precompressed ``file.br`` / ``file.gz`` sent with Content-Encoding when the client accepts it.
* Cache-Control: versioned assets (pyodide/, sqljs/, wheels with a version in their name)
  are immutable; everything else is ``no-cache`` with an ETag, so a warm load revalidates
  cheaply (304) and picks up a rebuild at once.

Standard library only.
"""

from __future__ import annotations

import email.utils
import os
import re
import signal
import sys
import threading
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .headers import ISOLATION_HEADERS, headers_for, matching, parse_headers_file

MIME_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".wasm": "application/wasm",
    ".whl": "application/octet-stream",
    ".zip": "application/octet-stream",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".map": "application/json",
    ".db": "application/octet-stream",
    ".sqlite": "application/octet-stream",
    ".gz": "application/gzip",
    ".br": "application/octet-stream",
}
# Preferred first.
ENCODINGS = [("br", ".br"), ("gzip", ".gz")]
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# A wheel whose version pins its content: third-party releases, and the app's own wheel,
# whose version carries a hash of its files (py_agent.site). py_agent's does not.
_PINNED_WHEEL = re.compile(r"^wheels/(?!py_agent-)[^/]+-[^-/]+-[^-/]+-[^-/]+-[^-/]+\.whl$")


def cache_control(path: str) -> str:
    """Long-lived for versioned assets; revalidate for everything that changes per build."""
    rel = path.lstrip("/")
    if rel.startswith(("pyodide/", "sqljs/")):
        return IMMUTABLE
    if _PINNED_WHEEL.match(rel):
        return IMMUTABLE
    return REVALIDATE


def accepted_encodings(header: str | None) -> set[str]:
    """Content codings the client accepts (q=0 excluded)."""
    result = set()
    for part in (header or "").split(","):
        token, _, params = part.strip().partition(";")
        token = token.strip().lower()
        if not token:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            result.add(token)
    return result


class Handler(SimpleHTTPRequestHandler):
    """Static files from `directory` with the site's headers, caching and precompressed bodies."""

    server_version = "py-agent-devserver"
    protocol_version = "HTTP/1.1"
    isolation = True
    verbose = False
    rules: list[tuple[str, list[tuple[str, str]]]] | None = None   # from the site's _headers

    def __init__(self, *args: Any, directory: str, **kwargs: Any) -> None:
        super().__init__(*args, directory=directory, **kwargs)

    # -- headers added to every response (including errors and 304s)
    def end_headers(self) -> None:
        path = urlsplit(self.path).path
        if self.rules is not None:
            headers = [(k, v) for k, v in matching(self.rules, path)
                       if self.isolation or k not in ISOLATION_HEADERS]
        else:
            headers = list(headers_for(path, isolation=self.isolation).items())
        for key, value in headers:
            self.send_header(key, value)
        super().end_headers()

    def guess_type(self, path: Any) -> str:
        return MIME_TYPES.get(Path(str(path)).suffix.lower(), "application/octet-stream")

    def send_head(self) -> Any:
        """Resolve the file (index.html for directories), choose an encoding, send headers."""
        url_path = urlsplit(self.path).path
        fs_path = self.translate_path(self.path)
        if os.path.isdir(fs_path):
            if not url_path.endswith("/"):
                self.send_response(HTTPStatus.MOVED_PERMANENTLY)
                self.send_header("Location", url_path + "/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            fs_path = os.path.join(fs_path, "index.html")
            url_path += "index.html"
        if not os.path.isfile(fs_path):
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None

        accepted = accepted_encodings(self.headers.get("Accept-Encoding"))
        body_path, encoding = fs_path, None
        for coding, suffix in ENCODINGS:
            if coding in accepted and os.path.isfile(fs_path + suffix):
                body_path, encoding = fs_path + suffix, coding
                break
        stat = os.stat(body_path)
        etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}{"-" + encoding if encoding else ""}"'
        has_variants = any(os.path.isfile(fs_path + s) for _, s in ENCODINGS)

        def common_headers() -> None:
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True))
            self.send_header("Cache-Control", cache_control(url_path))
            if has_variants:
                self.send_header("Vary", "Accept-Encoding")

        if etag in [t.strip() for t in (self.headers.get("If-None-Match") or "").split(",")]:
            self.send_response(HTTPStatus.NOT_MODIFIED)
            common_headers()
            self.end_headers()
            return None
        f = open(body_path, "rb")  # noqa: SIM115 - the base class closes it after copying
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", self.guess_type(fs_path))
        self.send_header("Content-Length", str(stat.st_size))
        if encoding:
            self.send_header("Content-Encoding", encoding)
        common_headers()
        self.end_headers()
        return f

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base-class signature
        if self.verbose:
            super().log_message(format, *args)

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        # Quiet: only errors (4xx/5xx) are printed, unless verbose.
        status = getattr(code, "value", code)
        if self.verbose or (isinstance(status, int) and status >= 400):
            sys.stderr.write(f"{self.command} {self.path} -> {status}\n")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class SiteMissing(SystemExit):
    """The directory to serve does not exist."""


def make_server(directory: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 8000,
                isolation: bool = True, verbose: bool = False) -> Server:
    """A server (not yet serving) for `directory`; port 0 picks a free port."""
    directory = str(Path(directory).resolve())
    if not os.path.isdir(directory):
        raise SiteMissing(f"error: {directory} does not exist; build the site first "
                          "(`py-agent build APP --out DIR`, or `python3 build.py build` in a checkout).")
    headers_path = Path(directory) / "_headers"
    rules = parse_headers_file(headers_path.read_text(encoding="utf-8")) if headers_path.is_file() else None
    handler = type("BoundHandler", (Handler,), {"isolation": isolation, "verbose": verbose, "rules": rules})

    def factory(*args: Any, **kwargs: Any) -> Handler:
        return handler(*args, directory=directory, **kwargs)

    return Server((host, port), factory)


def serve(directory: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 8000, isolation: bool = True,
          verbose: bool = False) -> None:
    """Serve until Ctrl-C (or SIGTERM)."""
    server = make_server(directory, host, port, isolation, verbose)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)   # also when started in the background (SIGINT ignored)
    h, p = server.server_address[:2]
    print(f"serving {Path(directory).resolve()} at http://{h}:{p}/ "
          f"({'cross-origin isolated' if isolation else 'no isolation headers'}); Ctrl-C stops",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        server.server_close()


def serve_in_thread(directory: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 0,
                    isolation: bool = True) -> tuple[Server, str]:
    """Start a server on a background thread; returns (server, base_url). Call server.shutdown()."""
    server = make_server(directory, host, port, isolation)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    h, p = server.server_address[:2]
    return server, f"http://{h}:{p}"


__all__ = ["Handler", "IMMUTABLE", "MIME_TYPES", "REVALIDATE", "Server", "accepted_encodings", "cache_control",
           "make_server", "serve", "serve_in_thread"]
