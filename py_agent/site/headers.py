"""The response headers a py-agent site needs, in one place.

Every way a site can be served gets them from here: the development server
(:mod:`py_agent.site.server`), the ``_headers`` file a build writes for Netlify and
Cloudflare Pages, the nginx and Apache snippets of the docs, and the service worker
(``web/app/sw-headers.js``, filled in by the build), which adds them itself on a host
that sends none.

* **Cross-origin isolation** (COOP ``same-origin`` + COEP ``credentialless``): the page
  gets ``SharedArrayBuffer``, so runaway model code is interrupted in place.
  ``credentialless`` rather than ``require-corp``: a ``no-cors`` request to another origin
  is then sent without credentials instead of being blocked, which lets the page tell a
  local model server that runs without CORS from one that does not run (``diagnose.js``).
* **The worker's network wall**: a dedicated worker takes its Content-Security-Policy from
  its own script's response, so ``worker.js`` gets ``connect-src 'self'`` and nothing
  running in it can reach another origin.
* **The page's policy**: scripts from the site only; requests to the site, to any https
  origin and to plain-http servers (local model servers on the network); the fetch shim
  still refuses every origin but the configured model endpoint.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Sequence

COOP = "same-origin"
COEP = "credentialless"
CORP = "same-origin"


def page_csp(embed_origins: Sequence[str] = ()) -> str:
    """The page's policy; ``embed_origins`` may show it in a frame (``*``: any page)."""
    ancestors = "*" if "*" in embed_origins else " ".join(["'self'", *embed_origins])
    return ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self' https: http:; "
            "worker-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
            f"frame-ancestors {ancestors}")


PAGE_CSP = page_csp()
WORKER_CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; "
              "worker-src 'self'; style-src 'none'; img-src 'none'; object-src 'none'; "
              "base-uri 'none'; form-action 'none'")
ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": COOP,
    "Cross-Origin-Embedder-Policy": COEP,
    "Cross-Origin-Resource-Policy": CORP,
}
# Modules other origins may import: the embedding module is self-contained for that reason.
SHARED_SCRIPTS = ("embed.js",)


def is_worker_script(path: str) -> bool:
    """True for the worker scripts that get the strict CSP."""
    name = posixpath.basename(path)
    return name == "worker.js" or name.endswith(".worker.js")


def headers_for(path: str, *, isolation: bool = True, embed_origins: Sequence[str] = ()) -> dict[str, str]:
    """The headers for the file at URL path ``path`` of a site."""
    headers = dict(ISOLATION_HEADERS) if isolation else {}
    headers["Content-Security-Policy"] = WORKER_CSP if is_worker_script(path) else page_csp(embed_origins)
    headers["X-Content-Type-Options"] = "nosniff"
    if posixpath.basename(path) in SHARED_SCRIPTS:
        headers["Access-Control-Allow-Origin"] = "*"
        if isolation:
            headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return headers


def headers_file(embed_origins: Sequence[str] = (), prefix: str = "") -> str:
    """A ``_headers`` file (Netlify, Cloudflare Pages) for a site published at ``prefix`` (e.g. ``/docs/agent``).

    Rules that match one path are combined; two CSPs on ``worker.js`` are both enforced, so
    its effective policy is the stricter one.
    """
    prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
    page = headers_for("/index.html", embed_origins=embed_origins)
    lines = ["# Headers for py-agent (https://github.com/py-agent). Without them the site still works:",
             "# its service worker adds them on the second load. See the README, \"Host it\".",
             f"{prefix}/*"]
    lines += [f"  {k}: {v}" for k, v in page.items()]
    lines += [f"{prefix}/worker.js", f"  Content-Security-Policy: {WORKER_CSP}"]
    for name in SHARED_SCRIPTS:
        lines += [f"{prefix}/{name}", "  Access-Control-Allow-Origin: *", "  Cross-Origin-Resource-Policy: cross-origin"]
    return "\n".join(lines) + "\n"


def parse_headers_file(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """The rules of a ``_headers`` file: ``[(path pattern, [(name, value)])]``."""
    rules: list[tuple[str, list[tuple[str, str]]]] = []
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        if not raw[0].isspace():
            rules.append((raw.strip(), []))
        elif rules and ":" in raw:
            name, _, value = raw.strip().partition(":")
            rules[-1][1].append((name.strip(), value.strip()))
    return rules


def matching(rules: Iterable[tuple[str, list[tuple[str, str]]]], path: str) -> list[tuple[str, str]]:
    """The headers of every rule whose pattern matches ``path`` (``*`` at the end matches the rest)."""
    found: list[tuple[str, str]] = []
    for pattern, headers in rules:
        if pattern == path or (pattern.endswith("*") and path.startswith(pattern[:-1])):
            found.extend(headers)
    return found


def nginx_snippet(embed_origins: Sequence[str] = ()) -> str:
    """The same headers for nginx (``location`` blocks inside the site's ``server``)."""
    page = headers_for("/index.html", embed_origins=embed_origins)
    add = "\n".join(f'    add_header {k} "{v}" always;' for k, v in page.items())
    worker = "\n".join(f'    add_header {k} "{v}" always;' for k, v in headers_for("/worker.js").items())
    return (f"location / {{\n{add}\n}}\n"
            f"location ~ (^|/)worker\\.js$ {{\n{worker}\n}}\n"
            "types { application/wasm wasm; text/javascript mjs; }\n")


def apache_snippet(embed_origins: Sequence[str] = ()) -> str:
    """The same headers for Apache (an ``.htaccess`` in the site's folder; needs mod_headers)."""
    page = headers_for("/index.html", embed_origins=embed_origins)
    lines = [f'Header always set {k} "{v}"' for k, v in page.items()]
    lines += ['<FilesMatch "worker\\.js$">', f'  Header always set Content-Security-Policy "{WORKER_CSP}"', "</FilesMatch>",
              "AddType application/wasm .wasm", "AddType text/javascript .mjs"]
    return "\n".join(lines) + "\n"


__all__ = ["COEP", "COOP", "CORP", "ISOLATION_HEADERS", "PAGE_CSP", "WORKER_CSP", "apache_snippet", "headers_file",
           "headers_for", "is_worker_script", "matching", "nginx_snippet", "page_csp", "parse_headers_file"]
