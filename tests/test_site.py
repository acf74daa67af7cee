"""`py-agent build`: what a site holds, how a broken app fails, the headers, and the page's
JavaScript helpers that mirror Python (demo.js ↔ DemoRecorder, diagnose.js ↔ local_servers).

The browser side (the site booting on a plain static server, embedding, Save as demo) is in
tests/e2e/site.spec.ts and embed.spec.ts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import uuid
import zipfile
from pathlib import Path

import pytest

from py_agent.app import load_site_app
from py_agent.local_servers import diagnose
from py_agent.recording import Demo, DemoRecorder
from py_agent.site import SiteError, build_site
from py_agent.site.common import checkout_root, quiet_log
from py_agent.site.headers import WORKER_CSP, headers_file, matching, parse_headers_file
from py_agent.site.page import app_page
from py_agent.site.server import serve_in_thread

pytestmark = pytest.mark.cpython_only   # subprocesses, Node, sockets

ROOT = Path(__file__).resolve().parent.parent
HAS_NODE = shutil.which("node") is not None


def write_app(folder: Path, body: str, name: str | None = None) -> Path:
    """A one-file app with a unique module name (two apps of one name cannot share a process)."""
    name = name or f"throwaway_{uuid.uuid4().hex[:8]}"
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return path


GOOD_APP = '''
    """A throwaway app: notes with a priority, one tool, a seed."""
    import enum
    from sqlalchemy import Enum, String
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
    from py_agent import tool
    import helpers_{tag}

    class Priority(enum.Enum):
        LOW = "low"
        HIGH = "high"

    class Base(DeclarativeBase):
        pass

    class Note(Base):
        __tablename__ = "notes"
        id: Mapped[int] = mapped_column(primary_key=True)
        text: Mapped[str] = mapped_column(String(200))
        priority: Mapped[Priority] = mapped_column(Enum(Priority), default=Priority.LOW)

    def seed(session):
        session.add_all([Note(text="buy milk"), Note(text="call Ada", priority=Priority.HIGH)])

    @tool
    def shout(text: str) -> str:
        """The text in capitals."""
        return helpers_{tag}.upper(text)

    title = "Notes"
    description = "A list of notes."
    tools = [shout]
    allowed_imports = ["tabulate"]
    allowed_packages = ["tabulate==0.10.0"]
    DEMO = "notes_demo.json"
'''

DEMO = {"format": "py-agent-demo", "version": 1, "app": "notes", "model": "scripted", "recorded_at": "",
        "turns": [{"request": "How many notes are there?",
                   "steps": [{"reply": {"message": "Counting.", "code": "print(session.query(Note).count())"}, "failed": False},
                             {"reply": {"message": "There are 2 notes.", "code": ""}}]}]}


def test_page_gets_the_apps_title_description_and_suggestions() -> None:
    template = (ROOT / "web" / "app" / "index.html").read_text()
    page = app_page(template, module="clinic", title="Clinic <&>", description="Patients & visits.",
                    suggestions=["Who is <b>due</b>?", "Book a visit"])
    assert '<meta name="py-agent-schema" content="clinic">' in page
    assert "<title>Clinic &lt;&amp;&gt;</title>" in page
    assert ">Patients &amp; visits.</p>" in page
    assert page.count("data-suggestion>") == 2 and "Who is &lt;b&gt;due&lt;/b&gt;?" in page
    assert "Add Tolkien" not in page
    with pytest.raises(SiteError, match="the page changed shape"):
        app_page("<meta name=\"py-agent-schema\" content=\"x\"><title>t</title><h1 data-app-title>x</h1>",
                 module="a", title="b", description="", suggestions=[])


def test_headers_file_round_trips_and_the_dev_server_applies_it(tmp_path: Path) -> None:
    text = headers_file(["https://docs.example.com"])
    rules = parse_headers_file(text)
    page = dict(matching(rules, "/index.html"))
    assert page["Cross-Origin-Embedder-Policy"] == "credentialless"
    assert "frame-ancestors 'self' https://docs.example.com" in page["Content-Security-Policy"]
    worker = [v for k, v in matching(rules, "/worker.js") if k == "Content-Security-Policy"]
    assert WORKER_CSP in worker   # (the page's too: both are enforced, the stricter wins)
    (tmp_path / "_headers").write_text(text)
    for name in ("index.html", "worker.js", "embed.js"):
        (tmp_path / name).write_text("x")
    server, base = serve_in_thread(tmp_path)
    try:
        import urllib.request

        with urllib.request.urlopen(f"{base}/worker.js") as response:
            assert WORKER_CSP in response.headers.get_all("Content-Security-Policy")
        with urllib.request.urlopen(f"{base}/embed.js") as response:
            assert response.headers["Access-Control-Allow-Origin"] == "*"
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- broken apps

@pytest.mark.parametrize("body, expected", [
    ("from sqlalchemy.orm import DeclarativeBase\nclass Base(DeclarativeBase):\n    pass\nx = (\n", ("syntax error", ":4")),
    ("x = 1\n", ("defines no `Base`",)),
    ("""from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
class Base(DeclarativeBase):
    pass
class T(Base):
    __tablename__ = "t"
    id: Mapped[int] = mapped_column(primary_key=True)
def seed(session):
    session.add(T(id=1))
    raise ValueError("no more rows")
""", ("seed() raised ValueError: no more rows", ":9")),
    ("""import extlib_{tag}
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
class Base(DeclarativeBase):
    pass
class T(Base):
    __tablename__ = "t"
    id: Mapped[int] = mapped_column(primary_key=True)
""", ("imports extlib_", "which the browser site does not have", ":1")),
])
def test_a_broken_app_stops_the_build_and_leaves_the_site_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   body: str, expected: tuple[str, ...]) -> None:
    tag = uuid.uuid4().hex[:8]
    elsewhere = tmp_path / "elsewhere"   # a module that exists here but is not in the browser
    elsewhere.mkdir()
    (elsewhere / f"extlib_{tag}.py").write_text("VALUE = 1\n")
    monkeypatch.setenv("PYTHONPATH", str(elsewhere))
    (tmp_path / "app").mkdir()
    app = write_app(tmp_path / "app", body.replace("{tag}", tag))
    out = tmp_path / "site"
    out.mkdir()
    (out / "build.json").write_text('{"version": "previous"}')   # a site built before
    with pytest.raises(SiteError) as failure:
        build_site(app, out, log=quiet_log)
    text = f"{failure.value.message} {failure.value.hint}"
    for part in expected:
        assert part in text
    assert failure.value.hint
    assert (out / "build.json").read_text() == '{"version": "previous"}'
    assert [p.name for p in tmp_path.iterdir() if "staging" in p.name] == []


def test_the_build_refuses_to_replace_a_folder_that_is_not_a_site(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SiteError, match="is not a py-agent site"):
        build_site(write_app(tmp_path, "x = 1\n"), tmp_path, log=quiet_log)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_packages_without_a_browser_wheel_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from py_agent.site import wheels

    def no_wheel(requirements, dest, log):
        raise SiteError("pip found nothing")

    monkeypatch.setattr(wheels, "_pip_download", no_wheel)
    with pytest.raises(SiteError, match="has no wheel that runs in the browser"):
        wheels.resolve_on_demand(["numpy"], {}, tmp_path)

    def compiled_only(requirements, dest, log):
        wheels.write_wheel(dest, "fastthing", {"fastthing/__init__.py": b""})
        built = next(dest.glob("fastthing-*.whl"))
        built.rename(dest / built.name.replace("py3-none-any", "cp314-cp314-pyemscripten_2026_0_wasm32"))

    monkeypatch.setattr(wheels, "_pip_download", compiled_only)
    with pytest.raises(SiteError, match="only as a compiled wheel"):
        wheels.resolve_on_demand(["fastthing"], {}, tmp_path / "other")
    with pytest.raises(SiteError, match="already has"):
        wheels.resolve_on_demand(["SQLAlchemy"], {"sqlalchemy": "2.1.9"}, tmp_path)


# --------------------------------------------------------------------------- a whole site

needs_kit = pytest.mark.skipif(checkout_root() is None or not (ROOT / "node_modules" / "pyodide").is_dir() or not HAS_NODE,
                               reason="building a site here needs the checkout's node_modules (npm ci) and Node")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("app")
    tag = uuid.uuid4().hex[:8]
    (folder / f"helpers_{tag}.py").write_text("def upper(text):\n    return text.upper()\n")
    (folder / "notes_demo.json").write_text(json.dumps({**DEMO, "turns": [{**DEMO["turns"][0], "request": "From the module"}]}))
    app = write_app(folder, GOOD_APP.replace("{tag}", tag))
    recorded = folder / "recorded.json"
    recorded.write_text(json.dumps(DEMO))
    out = tmp_path_factory.mktemp("sites") / "site"
    report = build_site(app, out, demo=recorded, embed_origins=["https://docs.example.com"], log=quiet_log)
    return {"out": out, "report": report, "module": app.stem, "tag": tag}


@needs_kit
def test_a_site_holds_the_runtime_the_app_and_its_description(built: dict) -> None:
    out, module = built["out"], built["module"]
    manifest = json.loads((out / "wheels" / "manifest.json").read_text())
    wheel = manifest["app"]["wheel"]
    assert manifest["app"]["name"] == module and wheel in manifest["boot"]["unpack"]
    assert wheel.startswith(f"{module}-0+site.") and (out / "wheels" / wheel).is_file()
    with zipfile.ZipFile(out / "wheels" / wheel) as z:
        names = set(z.namelist())
        assert all(info.compress_type == zipfile.ZIP_STORED for info in z.infolist())   # boot.js reads stored zips
        site = json.loads(z.read("_py_agent_site/site.json"))
    tag = built["tag"]
    assert {f"{module}.py", f"helpers_{tag}.py", "_py_agent_site/demo.json"} <= names   # the sibling module came along
    assert site == {"app": module, "DEMO": "demo.json"}
    assert [e["name"] for e in manifest["on_demand"]] == ["tabulate"]
    config = json.loads((out / "app.json").read_text())
    assert config["title"] == "Notes" and config["tools"] == ["shout"]
    assert config["suggestions"] == ["How many notes are there?"]   # the --demo's requests, not the module's DEMO
    assert config["enums"] == {"notes": {"priority": {"LOW": "low", "HIGH": "high"}}}
    index = (out / "index.html").read_text()
    assert f'content="{module}"' in index and "<title>Notes</title>" in index and "How many notes are there?" in index
    assert "frame-ancestors 'self' https://docs.example.com" in (out / "_headers").read_text()
    sw_headers = (out / "sw-headers.js").read_text()
    assert "build: headers" not in sw_headers and "connect-src 'self';" in sw_headers
    assert [row["id"] for row in json.loads((out / "local-servers.json").read_text())][:2] == ["ollama", "llamacpp"]
    files = json.loads((out / "build.json").read_text())["files"]
    integrity = (out / "sw.js").read_text()
    for name in ("app.json", f"wheels/{wheel}", "index.html", "worker.js"):
        assert name in files and f'"{name}"' in integrity


@needs_kit
def test_the_worker_opens_the_packed_app_with_the_sites_demo(built: dict, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """What the browser worker does (load_site_app on the unpacked wheel), on CPython."""
    out, module = built["out"], built["module"]
    wheel = json.loads((out / "wheels" / "manifest.json").read_text())["app"]["wheel"]
    with zipfile.ZipFile(out / "wheels" / wheel) as z:
        z.extractall(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    app = load_site_app(module)
    assert app.title == "Notes" and [t.name for t in app.tools] == ["shout"]
    assert app.demo_path == tmp_path / "_py_agent_site" / "demo.json"
    assert app.suggestions == ("How many notes are there?",)
    assert load_site_app(module) is app   # cached: the boot and every `open` share it
    engine = app.open_database("sqlite://")
    try:
        from py_agent import State, UserMessage

        state = State(engine=engine)
        state.messages.append(UserMessage("How many notes are there?"))
        events = [e.to_dict() for e in app.agent(app.demo_model(), approve=True).run(state)]
    finally:
        engine.dispose()
    assert [e["output"] for e in events if e["type"] == "execution_result"] == ["2\n"]
    assert events[-1]["type"] == "turn_end" and events[-1]["reason"] == "done"


@needs_kit
def test_the_kit_provides_what_the_builder_assumes() -> None:
    from py_agent.site.builder import provided_imports
    from py_agent.site.kit import PROVIDED_IMPORTS, find_kit

    assert provided_imports(find_kit(log=quiet_log)) == set(PROVIDED_IMPORTS)


# --------------------------------------------------------------------------- the page's JavaScript twins

def node_eval(script: str) -> object:
    proc = subprocess.run(["node", "--input-type=module", "-e", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.skipif(not HAS_NODE, reason="needs Node")
def test_save_as_demo_in_the_page_writes_what_the_python_recorder_writes() -> None:
    events = [
        {"type": "user_message", "content": "Add a tag"},
        {"type": "assistant_reply", "step": 1, "message": "Adding.", "code": "session.add(Tag(name=1))", "model": "openai:x",
         "extensions": {"confidence": 0.9}},
        {"type": "execution_result", "step": 1, "output": "", "error": "IntegrityError: ..."},
        {"type": "assistant_reply", "step": 2, "message": "Fixed.", "code": "session.add(Tag(name='a'))", "model": "openai:x"},
        {"type": "execution_result", "step": 2, "output": "", "error": None},
        {"type": "assistant_reply", "step": 3, "message": "Done.", "code": "", "model": "openai:x"},
        {"type": "turn_end", "reason": "done"},
        {"type": "user_message", "content": "Nothing comes of this"},
        {"type": "malformed_reply", "step": 4, "problem": "not JSON"},
        {"type": "user_message", "content": "Then refuse"},
        {"type": "assistant_reply", "step": 5, "message": "Trying.", "code": "import os", "model": "openai:x"},
        {"type": "validation_failed", "step": 5, "message": "os is blocked"},
    ]
    script = (f"import {{ demoFromEvents }} from './web/app/demo.js';\n"
              f"console.log(JSON.stringify(demoFromEvents({json.dumps(events)}, {{ app: 'shop', recordedAt: new Date(0) }})));")
    from_page = node_eval(script)
    recorder = DemoRecorder(app="shop")
    for event in events:
        recorder.observe(event)
    from_python = recorder.demo().to_dict()
    assert {**from_page, "recorded_at": ""} == {**from_python, "recorded_at": ""}
    assert Demo.from_dict(from_page).requests == ["Add a tag", "Then refuse"]


@pytest.mark.skipif(not HAS_NODE, reason="needs Node")
def test_the_pages_diagnosis_of_local_servers_matches_python() -> None:
    from py_agent.local_servers import table

    cases = [
        ("http://localhost:11434/v1", "cors", "http://127.0.0.1:8000", ""),
        ("http://localhost:11434/v1", "unreachable", "https://me.github.io", ""),
        ("http://127.0.0.1:9999/v1", "cors", "http://127.0.0.1:8000", ""),
        ("http://192.168.1.20:8080/v1", None, "https://me.github.io", ""),
        ("http://127.0.0.1:4321/v1", None, "http://127.0.0.1:8000", "lmstudio"),
        ("http://127.0.0.1:4321/v1", "unreachable", "", ""),
    ]
    script = (f"import {{ describeFailure }} from './web/app/diagnose.js';\nconst table = {json.dumps(table())};\n"
              f"console.log(JSON.stringify({json.dumps(cases)}.map(([url, failure, pageOrigin, provider]) => "
              f"describeFailure(table, url, failure, {{ pageOrigin, provider }}))));")
    from_page = node_eval(script)
    for (url, failure, page, provider), js in zip(cases, from_page):
        py = diagnose(url, failure, page_origin=page, provider=provider)
        assert (js["kind"], js["message"], js["hint"], js["server"]) == (py.failure, py.message, py.hint, py.server), url
