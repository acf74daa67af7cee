"""The Panel app asks nothing of another origin: no CDN, so it works offline.

Two halves: the page ``panel serve`` sends links only same-origin resources, and the
app never creates a Bokeh model that loads something from a CDN by itself (an icon
given by name makes Bokeh fetch Tabler's web font from jsdelivr). The browser check,
with every other origin blocked, is in tests/e2e/panel.spec.ts.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from bokeh.document import Document
from bokeh.models import TablerIcon

from py_agent import ScriptedProvider
from py_agent.panel_app import AgentChat
from test_panel_app import KEY_VARIABLES, turn

pytestmark = [pytest.mark.cpython_only, pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")]

ROOT = Path(__file__).resolve().parent.parent

SHOW = {
    "message": "Here they are, and a tag.",
    "code": "rows = session.execute(select(Book.title, Book.stock)).all()\nshow(rows, title='Stock')\n"
            "chart(rows, x='title', y='stock', kind='bar', title='Stock per title')\nsession.add(Tag(name='shown'))",
}


def tabler_icons(layout) -> list[TablerIcon]:
    root = layout.get_root(Document())
    return [model for model in root.references() if isinstance(model, TablerIcon)]


def test_no_model_of_the_app_loads_an_icon_font():
    async def scenario() -> None:
        app = AgentChat(model=ScriptedProvider([SHOW, {"message": "done", "code": ""}]), approve=None)
        await turn(app.chat, "show the stock")  # a table, a chart, an approval card and its buttons
        assert app.state.pending is not None
        app.chat.send("typed while waiting", respond=False)  # a message of the person's, with its icons
        assert tabler_icons(app.layout) == []
        app.close()

    asyncio.run(scenario())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


RESOURCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


def test_panel_serve_serves_the_app_from_its_own_origin(tmp_path):
    port = free_port()
    log = open(tmp_path / "serve.log", "w+")
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARIABLES}
    process = subprocess.Popen(
        [sys.executable, "-m", "panel", "serve", "py_agent/panel_app.py", "--port", str(port), "--address", "127.0.0.1"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    page = f"http://127.0.0.1:{port}/panel_app"
    try:
        deadline = time.monotonic() + 60
        status, body = None, ""
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(page, timeout=20) as response:
                    status, body = response.status, response.read().decode("utf-8", "replace")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        log.seek(0)
        assert status == 200, f"no page from panel serve; its log:\n{log.read()}"
        assert "<html" in body.lower() and "bokeh" in body.lower()
        resources = [urljoin(page, url) for url in RESOURCE.findall(body)]
        assert any("tabulator" in url for url in resources) and any("vega" in url for url in resources)
        foreign = [url for url in resources if urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc != f"127.0.0.1:{port}"]
        assert foreign == []
        for url in resources:  # and each of them is there
            if urlsplit(url).scheme in ("http", "https"):
                with urllib.request.urlopen(url, timeout=20) as response:
                    assert response.status == 200, url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
