#!/usr/bin/env python3
"""A small static server for web/dist/ with the headers the py-agent site needs.

    python tools/devserver.py --port 8000 --dir web/dist [--host 127.0.0.1] [--no-isolation]

* Cross-origin isolation (COOP same-origin, COEP require-corp, CORP same-origin) on every
  response, so the page gets SharedArrayBuffer (Pyodide's interrupt buffer).
* A Content-Security-Policy on every response; worker scripts (`worker.js`, `*.worker.js`)
  get a stricter one whose connect-src is 'self' only: in Chromium a dedicated worker takes
  its CSP from its own script response, so code inside the worker cannot reach any other
  origin.
* Correct MIME types (.mjs/.js text/javascript, .wasm application/wasm, .whl/.zip
  application/octet-stream, .json application/json).
* Precompressed `file.br` / `file.gz` sent with Content-Encoding when the client accepts it.
* Cache-Control: versioned assets (pyodide/, sqljs/, wheels with a version in their name)
  are immutable; everything else is `no-cache` with an ETag, so a warm load revalidates
  cheaply (304) and picks up a rebuild at once.

Standard library only; importable (`serve()`, `make_server()`) for build.py and tests.
"""
from __future__ import annotations

import argparse
import email.utils
import os
import posixpath
import signal
import sys
import threading
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

PAGE_CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
            "connect-src 'self' https: http://127.0.0.1:* http://localhost:*; worker-src 'self'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:")
WORKER_CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; "
              "worker-src 'self'; style-src 'none'; img-src 'none'; object-src 'none'; "
              "base-uri 'none'; form-action 'none'")
ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}
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


def is_worker_script(path: str) -> bool:
    """True for the worker scripts that get the strict CSP."""
    name = posixpath.basename(path)
    return name == "worker.js" or name.endswith(".worker.js")


def cache_control(path: str) -> str:
    """Long-lived for versioned assets; revalidate for everything that changes per build."""
    rel = path.lstrip("/")
    if rel.startswith(("pyodide/", "sqljs/")):
        return IMMUTABLE
    if rel.startswith("wheels/") and rel.endswith(".whl") and not rel.startswith("wheels/py_agent-"):
        return IMMUTABLE   # third-party wheels: name and version pin the content
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
    """Static files from `directory` with isolation, CSP, caching and precompressed bodies."""

    server_version = "py-agent-devserver"
    protocol_version = "HTTP/1.1"
    isolation = True
    verbose = False

    def __init__(self, *args, directory: str, **kwargs):
        super().__init__(*args, directory=directory, **kwargs)

    # -- headers added to every response (including errors and 304s)
    def end_headers(self) -> None:
        path = urlsplit(self.path).path
        if self.isolation:
            for key, value in ISOLATION_HEADERS.items():
                self.send_header(key, value)
        self.send_header("Content-Security-Policy", WORKER_CSP if is_worker_script(path) else PAGE_CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def guess_type(self, path) -> str:
        return MIME_TYPES.get(Path(str(path)).suffix.lower(), "application/octet-stream")

    def send_head(self):
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
        f = open(body_path, "rb")
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", self.guess_type(fs_path))
        self.send_header("Content-Length", str(stat.st_size))
        if encoding:
            self.send_header("Content-Encoding", encoding)
        common_headers()
        self.end_headers()
        return f

    def log_message(self, format, *args) -> None:   # noqa: A002 - base-class signature
        if self.verbose:
            super().log_message(format, *args)

    def log_request(self, code="-", size="-") -> None:
        # Quiet: only errors (4xx/5xx) are printed, unless --verbose.
        status = getattr(code, "value", code)
        if self.verbose or (isinstance(status, int) and status >= 400):
            sys.stderr.write(f"{self.command} {self.path} -> {status}\n")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_server(directory: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000,
                isolation: bool = True, verbose: bool = False) -> Server:
    """A server (not yet serving) for `directory`; port 0 picks a free port."""
    directory = str(Path(directory).resolve())
    if not os.path.isdir(directory):
        raise SystemExit(f"error: {directory} does not exist; run `python build.py build` first.")
    handler = type("BoundHandler", (Handler,), {"isolation": isolation, "verbose": verbose})

    def factory(*args, **kwargs):
        return handler(*args, directory=directory, **kwargs)

    return Server((host, port), factory)


def serve(directory, host: str = "127.0.0.1", port: int = 8000, isolation: bool = True,
          verbose: bool = False) -> None:
    """Serve until Ctrl-C (or SIGTERM)."""
    server = make_server(directory, host, port, isolation, verbose)

    def stop(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)   # also when started in the background (SIGINT ignored)
    h, p = server.server_address[:2]
    print(f"serving {directory} at http://{h}:{p}/ "
          f"({'cross-origin isolated' if isolation else 'no isolation headers'}); Ctrl-C stops",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        server.server_close()


def serve_in_thread(directory, host: str = "127.0.0.1", port: int = 0, isolation: bool = True):
    """Start a server on a background thread; returns (server, base_url). Call server.shutdown()."""
    server = make_server(directory, host, port, isolation)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    h, p = server.server_address[:2]
    return server, f"http://{h}:{p}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve web/dist/ for py-agent.")
    parser.add_argument("--dir", default=str(Path(__file__).resolve().parent.parent / "web" / "dist"))
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--no-isolation", action="store_true", help="omit COOP/COEP/CORP")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    serve(args.dir, args.host, args.port, not args.no_isolation, args.verbose)


if __name__ == "__main__":
    main()
