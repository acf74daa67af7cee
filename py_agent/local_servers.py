"""Model servers on the user's own machine, and how to fix a page that cannot reach one.

Ollama, llama.cpp's ``llama-server``, vLLM and LM Studio speak the OpenAI chat-completions
format. From CPython (``py-agent chat``) they only need to be running. From the browser
three more things must hold, and a failed ``fetch()`` does not say which one broke:

1. **CORS**: the server must answer the page's origin with ``Access-Control-Allow-Origin``
   (and allow the ``Authorization`` and ``Content-Type`` headers in its preflight).
2. **Mixed content**: a page served over ``https`` may call plain ``http`` only on
   ``localhost``/``127.0.0.1``; a server elsewhere on the network needs ``https`` (a reverse
   proxy), or the site must be opened over ``http`` from that network.
3. **The page's own policy**: its Content-Security-Policy lists the origins it may call.
   (Chromium may also ask the person to allow a public site to reach the local network.)

:data:`SERVERS` holds, per server, its default address, how to start it, whether it allows
browser origins by default, and the exact fix; :func:`diagnose` turns "the request failed"
into the message and hint a person should see. ``python -m py_agent.local_servers`` prints
the table as JSON for the page (``--markdown`` for the docs).
"""

from __future__ import annotations

import ipaddress
import json
import sys
from dataclasses import asdict, dataclass
from typing import Literal
from urllib.parse import urlsplit

Failure = Literal["unreachable", "cors", "blocked", "mixed_content", "local_network", "unauthorized"]
"""What went wrong: nothing listens; it answered without CORS; the page's policy refused
the request; an https page called plain http off this machine; the server wants a key."""


@dataclass(frozen=True)
class LocalServer:
    """One kind of local model server and how to make it usable from a page."""

    id: str              # the model-id prefix (ollama:llama3.2) and the provider presets' key
    label: str
    base_url: str        # where it listens by default (OpenAI-compatible path)
    start: str           # how to start it
    cors_default: str    # what it allows out of the box
    cors_fix: str        # the exact fix, with {origin} for the page's origin
    key: str             # whether it wants an API key, and where it is set
    docs: str


SERVERS: tuple[LocalServer, ...] = (
    LocalServer(
        id="ollama",
        label="Ollama",
        base_url="http://localhost:11434/v1",
        start="ollama serve (or open the Ollama app), then `ollama pull llama3.2`",
        cors_default="allows pages on localhost, 127.0.0.1 and 0.0.0.0 (any port) only; it answers "
                     "other origins with 403 and no CORS headers",
        cors_fix="set OLLAMA_ORIGINS={origin} in the server's environment and restart it: "
                 "`OLLAMA_ORIGINS={origin} ollama serve`; macOS app: `launchctl setenv OLLAMA_ORIGINS \"{origin}\"` "
                 "then quit and reopen Ollama; Linux service: `sudo systemctl edit ollama` and add "
                 "`Environment=\"OLLAMA_ORIGINS={origin}\"` under [Service], then `sudo systemctl restart ollama`; "
                 "Windows: set the user environment variable OLLAMA_ORIGINS and restart Ollama",
        key="no key (leave the API key empty)",
        docs="https://docs.ollama.com/faq#how-can-i-allow-additional-web-origins-to-access-ollama",
    ),
    LocalServer(
        id="llamacpp",
        label="llama.cpp server",
        base_url="http://localhost:8080/v1",
        start="llama-server -m model.gguf --port 8080",
        cors_default="allows every origin by default; builds with --cors-origins restrict it (and limit it to "
                     "localhost when server tools are on)",
        cors_fix="restart it with `--cors-origins {origin}` (builds from mid-2026 on), or drop a --cors-origins "
                 "that does not list this page",
        key="no key unless started with --api-key KEY: then enter the same KEY as the API key",
        docs="https://github.com/ggml-org/llama.cpp/tree/master/tools/server",
    ),
    LocalServer(
        id="vllm",
        label="vLLM",
        base_url="http://localhost:8000/v1",
        start="vllm serve MODEL --port 8000",
        cors_default="allows every origin by default (--allowed-origins defaults to [\"*\"])",
        cors_fix="start it with `--allowed-origins '[\"{origin}\"]'` (or leave the option out)",
        key="no key unless started with --api-key KEY: then enter the same KEY as the API key",
        docs="https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html",
    ),
    LocalServer(
        id="lmstudio",
        label="LM Studio",
        base_url="http://localhost:1234/v1",
        start="start the server in LM Studio's Developer tab, or `lms server start`",
        cors_default="sends no CORS headers unless CORS is switched on",
        cors_fix="switch on \"Enable CORS\" in the Developer tab's server settings, or start it with "
                 "`lms server start --cors`",
        key="no key (leave the API key empty)",
        docs="https://lmstudio.ai/docs/cli/server-start",
    ),
)

_DEFAULT_PORTS = {urlsplit(s.base_url).port: s for s in SERVERS}


def find_server(base_url: str, provider: str = "") -> LocalServer | None:
    """The local server a base URL (or a provider prefix such as ``ollama``) most likely is."""
    for server in SERVERS:
        if provider == server.id:
            return server
    return _DEFAULT_PORTS.get(urlsplit(base_url).port)


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Diagnosis:
    """What to tell the person: ``message`` (what happened) and ``hint`` (what to do)."""

    failure: Failure
    message: str
    hint: str
    server: str | None = None  # the LocalServer id, when known


def diagnose(base_url: str, failure: Failure | None, *, page_origin: str = "", provider: str = "") -> Diagnosis:
    """The message and fix for a request to ``base_url`` that failed.

    ``failure`` is what the page could tell; ``None`` means "fetch failed and it could not
    tell why", which names both likely causes. ``page_origin`` (e.g. ``https://me.github.io``)
    goes into the fixes; mixed content and loopback are worked out from it.
    """
    parts = urlsplit(base_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    server = find_server(base_url, provider)
    page = page_origin or "this page's origin"
    name = server.label if server else origin
    page_scheme = urlsplit(page_origin).scheme if page_origin else ""
    if failure is None and page_scheme == "https" and parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        failure = "mixed_content"

    if failure == "mixed_content":
        return Diagnosis(failure, f"This page is served over https, so the browser does not let it call {origin} over plain http.",
                         "use the server on this machine (http://localhost:PORT), put it behind https "
                         "(a reverse proxy with a certificate), or open this site over http", server and server.id)
    if failure == "local_network":
        return Diagnosis(failure, f"The browser did not let this page reach {origin}: a site on the internet needs your "
                         "permission to reach this computer or your local network (Chromium's local network access).",
                         "allow local network access for this site (the icon at the left of the address bar, or the "
                         "site's settings) and send again; or open the app from this machine (http://localhost:PORT)",
                         server and server.id)
    if failure == "blocked":
        return Diagnosis(failure, f"This page's security policy does not allow requests to {origin}.",
                         "use a server on localhost or 127.0.0.1, or an https address; plain-http servers "
                         "elsewhere need the site's Content-Security-Policy to list them", server and server.id)
    if failure == "unauthorized":
        key = server.key if server else "the server's API key"
        return Diagnosis(failure, f"{name} at {origin} refused the request: it wants an API key.",
                         f"enter the key in Settings ({key})", server and server.id)

    start = f"start it: {server.start}" if server else "check the base URL and that the server is running"
    cors = (server.cors_fix.format(origin=page) if server
            else f"make it send Access-Control-Allow-Origin: {page} (and allow the Authorization and Content-Type "
                 "headers), or put a proxy in front of it that does")
    if failure == "unreachable":
        return Diagnosis(failure, f"Nothing answered at {origin}: {name} does not seem to be running there.",
                         f"{start}; check the port in the base URL ({base_url})", server and server.id)
    if failure == "cors":
        default = f" ({server.label} {server.cors_default})" if server else ""
        return Diagnosis(failure, f"{name} at {origin} is running but does not allow requests from {page}{default}.",
                         cors, server and server.id)
    return Diagnosis("unreachable", f"Could not reach {name} at {origin}: either it is not running, or it does not "
                     f"allow requests from {page} (the browser reports both the same way).",
                     f"if it is not running, {start}; if it is, {cors}", server and server.id)


def table() -> list[dict[str, str]]:
    """The servers as JSON-able rows (for the page and the docs)."""
    return [asdict(s) for s in SERVERS]


def markdown() -> str:
    """The table for the README: server, default address, CORS out of the box, the fix, the key."""
    lines = ["| server | default base URL | from a page, out of the box | fix for another origin | API key |",
             "| --- | --- | --- | --- | --- |"]
    for s in SERVERS:
        fix = s.cors_fix.format(origin="https://your.site")
        lines.append(f"| {s.label} | `{s.base_url}` | {s.cors_default} | {fix} | {s.key} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    sys.stdout.write((markdown() if "--markdown" in args else json.dumps(table(), indent=2)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
