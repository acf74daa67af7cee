"""The page of a site: web/app/index.html with the app's name, description and suggestions.

The page's HTML carries them in elements marked with data attributes, so the page is right
before any script runs (and without one). A marker that is missing means index.html changed
shape: the build stops and says where to look, rather than shipping a page about another app.
"""

from __future__ import annotations

import html
import re
from typing import Any

from .common import SiteError

_SCHEMA = re.compile(r'(<meta name="py-agent-schema" content=")[^"]*(")')
_TITLE = re.compile(r"(<title>)[^<]*(</title>)")
_APP_TITLE = re.compile(r"(<[a-z0-9]+ [^>]*data-app-title[^>]*>)[^<]*(</)")
_APP_DESCRIPTION = re.compile(r"(<[a-z0-9]+ [^>]*data-app-description[^>]*>)[^<]*(</)")
_PLACEHOLDER = re.compile(r'(<textarea [^>]*placeholder=")[^"]*("[^>]*data-input)')
_SUGGESTIONS = re.compile(r"(<div [^>]*data-suggestions[^>]*>)(.*?)(\n\s*</div>)", re.S)


def _sub(pattern: re.Pattern[str], replacement: Any, text: str, what: str) -> str:
    new, count = pattern.subn(replacement, text, count=1)
    if count != 1:
        raise SiteError(f"web/app/index.html has no {what}", hint="the page changed shape: update py_agent/site/page.py to match it")
    return new


def app_page(template: str, *, module: str, title: str, description: str, suggestions: list[str]) -> str:
    """index.html for an app."""
    text = _sub(_SCHEMA, lambda m: m.group(1) + html.escape(module) + m.group(2), template, '<meta name="py-agent-schema">')
    text = _sub(_TITLE, lambda m: m.group(1) + html.escape(title) + m.group(2), text, "<title>")
    text = _sub(_APP_TITLE, lambda m: m.group(1) + html.escape(title) + m.group(2), text, "element with data-app-title")
    if description:
        text = _sub(_APP_DESCRIPTION, lambda m: m.group(1) + html.escape(description) + m.group(2), text,
                    "element with data-app-description")

    example = f"Ask something, e.g. “{suggestions[0]}”" if suggestions else "Ask something"
    text = _sub(_PLACEHOLDER, lambda m: m.group(1) + html.escape(example) + m.group(2), text, "composer <textarea data-input>")

    def chips(m: re.Match[str]) -> str:
        indent = re.search(r"\n(\s*)", m.group(3))
        pad = (indent.group(1) if indent else "") + "  "
        buttons = "".join(f'\n{pad}<button type="button" class="chip" data-suggestion>{html.escape(s)}</button>'
                          for s in suggestions)
        return m.group(1) + buttons + m.group(3)

    return _sub(_SUGGESTIONS, chips, text, '<div data-suggestions> for the suggestion chips')


__all__ = ["app_page"]
