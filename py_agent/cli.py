"""The ``py-agent`` command (also ``python -m py_agent``).

    py-agent chat --app APP [--db URL] [--model ID]   the agent in a terminal
    py-agent check APP                                 load an app and report what py-agent sees
    py-agent conversations                             the logged chats, newest first
    py-agent build APP --out DIR                       a static site of the app (any static host)
    py-agent serve APP_OR_DIR                          build if needed, then serve it locally

APP is a module name, a ``.py`` file or a package folder (see :mod:`py_agent.app`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from . import __version__
from .errors import PyAgentError

EPILOG = """\
examples:
  py-agent chat --app examples/clinic/clinic              recorded demo (no key needed)
  OPENAI_API_KEY=... py-agent chat --app myapp/models.py --db postgresql+psycopg://me@localhost/shop
  py-agent chat -c                                         continue the last conversation
  py-agent check examples/bookshop/bookshop.py
  py-agent build examples/clinic/clinic --out site/       then host site/ anywhere (see _headers)
  py-agent serve examples/clinic/clinic                    build and open http://127.0.0.1:8000

environment: OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY (model keys), PY_AGENT_APP (default
--app), PY_AGENT_MODEL (default --model), PY_AGENT_HOME (where the conversation log and default
databases live; else ~/.local/share/py-agent)."""

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="py-agent",
        description="A language-model agent over your SQLAlchemy schema: it writes Python, py-agent checks and runs it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"py-agent {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    chat = sub.add_parser("chat", help="talk to an app's data in the terminal",
                          description="The agent in a terminal, on CPython, against any SQLAlchemy database. "
                                      "Replies and code stream as they arrive; each change to the data asks first "
                                      "(y = save, a = save from now on, n = roll back).",
                          epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    chat.add_argument("--app", metavar="APP", help="the app: a module name, a .py file or a package folder "
                                                   "(default: $PY_AGENT_APP, or the continued conversation's app)")
    chat.add_argument("--db", metavar="URL", help="SQLAlchemy database URL; an empty database gets the app's tables and "
                                                  "seed, an existing one is never altered (default: a SQLite file per app "
                                                  "in $PY_AGENT_HOME/databases/; sqlite:// for a throwaway one)")
    chat.add_argument("--model", metavar="ID", help="provider:model, e.g. openai:gpt-4.1-mini, anthropic:claude-sonnet-4-5, "
                                                    "gemini:gemini-2.5-flash, ollama:llama3.2; 'demo' replays the app's "
                                                    "recorded demo (default: $PY_AGENT_MODEL, a model whose key is set, else the demo)")
    chat.add_argument("--base-url", metavar="URL", help="the server of an OpenAI-compatible model (vLLM, llama.cpp, LM Studio, a proxy)")
    which = chat.add_mutually_exclusive_group()
    which.add_argument("-c", "--continue", dest="continue_last", action="store_true", help="continue the last conversation (of --app, if given)")
    which.add_argument("--cid", metavar="ID", help="continue the conversation with this id (a unique prefix is enough)")
    chat.add_argument("--log", metavar="FILE", type=Path, help="the conversation log (default: $PY_AGENT_HOME/conversations.sqlite)")
    chat.add_argument("--no-log", action="store_true", help="do not log this conversation")
    chat.add_argument("--record", metavar="FILE", type=Path, help="also save the conversation as a demo (JSON) that replays without a model")
    chat.add_argument("-y", "--yes", action="store_true", help="save every change without asking")
    chat.add_argument("-m", "--message", metavar="TEXT", action="append", help="send this request (repeatable), then leave")
    chat.add_argument("--max-loops", type=int, default=20, metavar="N", help="steps per request at most (default 20)")
    chat.add_argument("--timeout", type=float, default=30.0, metavar="S", help="seconds one step's code may run (default 30)")
    color = chat.add_mutually_exclusive_group()
    color.add_argument("--color", dest="color", action="store_true", default=None, help="colour the output even when not a terminal")
    color.add_argument("--no-color", dest="color", action="store_false", help="no colours")

    check = sub.add_parser("check", help="load an app and report what py-agent sees (tables, rows, tools, demo)",
                           description="Load an app module, check it, create its tables in a scratch database (or --db), "
                                       "run its seed, and print what the model will be given.")
    check.add_argument("app", metavar="APP", help="a module name, a .py file or a package folder")
    check.add_argument("--db", metavar="URL", default="sqlite://", help="database to open (default: a scratch in-memory one)")
    check.add_argument("--prompt", action="store_true", help="print the whole system prompt too")

    convs = sub.add_parser("conversations", help="list the logged conversations, newest first")
    convs.add_argument("--app", metavar="APP", help="only this app's")
    convs.add_argument("--log", metavar="FILE", type=Path, help="the conversation log (default: $PY_AGENT_HOME/conversations.sqlite)")
    convs.add_argument("-n", type=int, default=20, metavar="N", help="how many (default 20)")

    build = sub.add_parser("build", help="build a static site of an app: the agent in a browser tab, on any static host",
                           description="Build a self-contained static site for an app: Pyodide, the wheels (the app's "
                                       "module in its own), sql.js, the page and its service worker. No CDN; it works "
                                       "offline after the first visit. Host the folder anywhere: with the headers of its "
                                       "_headers file, or without (the service worker adds them). Building needs Node.js "
                                       "only to precompile the app's module (without it the module ships as source).",
                           epilog=SITE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    build.add_argument("app", metavar="APP", help="a module name, a .py file or a package folder")
    build.add_argument("--out", "-o", metavar="DIR", required=True, type=Path,
                       help="the site's folder (replaced as a whole when the build succeeds; untouched when it fails)")
    _site_options(build)

    serve = sub.add_parser("serve", help="serve an app (built first) or a built site locally, with the headers it needs",
                           description="Serve a site for development: APP_OR_DIR is a built site's folder, or an app "
                                       "(built first into --out, or a folder in py-agent's cache). The server sends "
                                       "the site's _headers (cross-origin isolation and the worker's CSP).")
    serve.add_argument("target", metavar="APP_OR_DIR", help="a built site's folder, or an app to build first")
    serve.add_argument("--out", "-o", metavar="DIR", type=Path, help="where to build an app (default: in py-agent's cache)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--no-isolation", action="store_true", help="leave out COOP/COEP (to try the fallback without them)")
    serve.add_argument("--verbose", action="store_true", help="log every request")
    _site_options(serve)
    return parser


SITE_EPILOG = """examples:
  py-agent build examples/clinic/clinic --out site/
  py-agent build myapp/models.py --out docs/agent --demo recorded.json --embed-origin https://docs.example.com
  python3 -m http.server -d site 8000          any static server works (the service worker adds the headers)"""


def _site_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--demo", metavar="FILE", type=Path,
                        help="a recorded demo (py-agent chat --record FILE, or the page's Save as demo) to replay when "
                             "no model is set (default: the app's DEMO)")
    parser.add_argument("--embed-origin", metavar="ORIGIN", action="append", default=[],
                        help="another origin whose pages may show the site in a frame, e.g. https://docs.example.com "
                             "(repeatable; '*' for any)")
    parser.add_argument("--compress", action="store_true", help="also write .gz/.br files beside the large ones "
                                                                "(for servers that send precompressed files)")
    parser.add_argument("--headers-prefix", metavar="PATH", default="",
                        help="the path the site is published under, for the _headers file (e.g. /docs/agent)")


def main(argv: Sequence[str] | None = None, *, stdin: TextIO | None = None, stdout: TextIO | None = None,
         stderr: TextIO | None = None) -> int:
    """Run the command; returns the exit status (0 ok, 1 failed, 2 wrong usage or set-up)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(out)
        return 2
    try:
        if args.command == "chat":
            return chat(args, stdin=stdin, stdout=out)
        if args.command == "check":
            return check(args, stdout=out)
        if args.command == "build":
            return build(args, stdout=out)
        if args.command == "serve":
            return serve(args, stdout=out)
        return conversations(args, stdout=out)
    except PyAgentError as exc:
        err.write(f"py-agent {args.command}: error: {exc.message}\n")
        if exc.hint:
            err.write(f"  {exc.hint}\n")
        return 2
    except KeyboardInterrupt:
        err.write("\n")
        return 130


# -- chat ------------------------------------------------------------------------------------------

def _app_key(spec: str) -> str:
    """How an app is named in the log: an absolute path for files and folders, else the module name."""
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.exists() else spec


def _log_path(args: argparse.Namespace) -> Path:
    from .chat.log import data_dir

    return args.log or data_dir() / "conversations.sqlite"


def chat(args: argparse.Namespace, *, stdin: TextIO | None, stdout: TextIO) -> int:
    from .app import AppError, engine_for, load_app
    from .chat import ChatSession, ConversationLog, data_dir, default_model

    if args.no_log and (args.continue_last or args.cid):
        raise AppError("--no-log cannot continue a conversation", hint="drop --no-log, or start a new conversation")
    log = None if args.no_log else ConversationLog(_log_path(args))
    conversation = None
    app_spec = args.app or ""
    if log is not None and (args.continue_last or args.cid):
        try:
            conversation = log.get(args.cid) if args.cid else log.last(_app_key(app_spec) if app_spec else None)
        except KeyError as exc:
            raise AppError(str(exc.args[0]), hint="`py-agent conversations` lists them") from None
        if conversation is None:
            raise AppError(f"there is no conversation to continue in {log.path}", hint="start one without -c")
        app_spec = app_spec or conversation.app
    app_spec = app_spec or os.environ.get("PY_AGENT_APP", "")
    if not app_spec:
        raise AppError("which app? no --app was given",
                       hint="pass --app with a module name, a .py file or a package folder "
                            "(e.g. --app examples/clinic/clinic), or set PY_AGENT_APP")
    app = load_app(app_spec)
    for warning in app.warnings:
        stdout.write(f"warning: {warning}\n")

    url = args.db or (conversation.db_url if conversation else "")
    if conversation and not args.db and "***" in url:
        raise AppError("the continued conversation's database URL had a password, which is not logged",
                       hint=f"pass it again: --db '{url}' with the password")
    if not url:
        folder = data_dir() / "databases"
        folder.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{folder / (app.name.replace('.', '_') + '.sqlite')}"
    engine = engine_for(url)
    try:
        created = app.prepare(engine)
        label = engine.url.render_as_string(hide_password=True)
        if not created:
            what = "existing"
        else:
            what = "new: tables created" + (" from DATA" if app.data else " and seeded" if app.seed else "")
        model = args.model or (conversation.model if conversation else "") or default_model(app)
        provider_options: dict[str, Any] = {"base_url": args.base_url} if args.base_url else {}
        session = ChatSession(
            app, engine, model=model, stdin=stdin, stdout=stdout, approve="auto" if args.yes else "ask",
            db_label=f"{label} ({what})", log=log, conversation=conversation, record=args.record,
            provider_options=provider_options, agent_options={"max_loops": args.max_loops, "timeout": args.timeout},
            color=args.color, app_spec=_app_key(app_spec),
        )
        return session.run(args.message)
    finally:
        engine.dispose()
        if log is not None:
            log.close()


# -- check -------------------------------------------------------------------------------------------

def check(args: argparse.Namespace, *, stdout: TextIO) -> int:
    from sqlalchemy import func, select

    from .app import engine_for, load_app

    app = load_app(args.app)
    write = stdout.write
    write(f"{app.title}: {app.name} ({app.source or 'no source file'})\n")
    if app.description:
        write(f"  {app.description}\n")
    engine = engine_for(args.db)
    try:
        created = app.prepare(engine)
        source = "DATA" if app.data else "seed()" if app.seed else "no seed"
        write(f"database {engine.url.render_as_string(hide_password=True)}: "
              f"{'created, filled by ' + source if created else 'existing, not changed'}\n")
        with engine.connect() as connection:
            for table in app.base.metadata.sorted_tables:
                count = connection.scalar(select(func.count()).select_from(table))
                write(f"  {table.fullname:<28} {count:>8,} rows\n")
        agent = app.agent("scripted:check")
        write(f"tools: {', '.join(t.name for t in app.tools) or '(none)'}\n")
        write(f"extra imports: {', '.join(app.allowed_imports) or '(none)'}\n")
        if app.allowed_packages:
            write(f"extra packages: {', '.join(app.allowed_packages)}\n")
        demo = app.demo()
        write(f"demo: {len(demo.turns)} recorded request(s) from {app.demo_path}\n" if demo else "demo: (none)\n")
        for suggestion in app.suggestions:
            write(f"  suggestion: {suggestion}\n")
        kind = " (the app's own template)" if app.prompt_is_template else " (with the app's instructions)" if app.prompt else ""
        write(f"system prompt: {len(agent.system_prompt):,} characters{kind}\n")
        for warning in [*app.warnings, *agent.prompt_warnings]:
            write(f"warning: {warning}\n")
        if args.prompt:
            write("\n" + agent.system_prompt)
    finally:
        engine.dispose()
    return 0


# -- build and serve ---------------------------------------------------------------------------------

def _site_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"demo": args.demo, "embed_origins": args.embed_origin, "compress": args.compress,
            "headers_prefix": args.headers_prefix}


def build(args: argparse.Namespace, *, stdout: TextIO) -> int:
    from .site import build_site

    def log(message: str) -> None:
        stdout.write(message + "\n")
        stdout.flush()

    report = build_site(args.app, args.out, log=log, **_site_kwargs(args))
    stdout.write(f"\nhost the folder {report.out} on any static server, e.g.: python3 -m http.server -d {report.out} 8000\n"
                 "(its _headers file has the headers for Netlify and Cloudflare Pages; elsewhere the site adds them itself)\n")
    return 0


def serve(args: argparse.Namespace, *, stdout: TextIO) -> int:
    from .site import build_site
    from .site.common import cache_dir
    from .site.server import serve as serve_site

    target = Path(args.target).expanduser()
    if target.is_dir() and (target / "build.json").is_file():
        folder = target
    else:
        name = target.stem if target.suffix == ".py" else target.name or str(target)
        folder = args.out or cache_dir() / "serve" / name.replace(".", "_")

        def log(message: str) -> None:
            stdout.write(message + "\n")
            stdout.flush()

        build_site(args.target, folder, log=log, **_site_kwargs(args))
    serve_site(folder, host=args.host, port=args.port, isolation=not args.no_isolation, verbose=args.verbose)
    return 0


# -- conversations -----------------------------------------------------------------------------------

def conversations(args: argparse.Namespace, *, stdout: TextIO) -> int:
    from .chat import ConversationLog

    path = _log_path(args)
    if not path.exists():
        stdout.write(f"no conversations yet ({path} does not exist)\n")
        return 0
    with ConversationLog(path) as log:
        rows = log.recent(_app_key(args.app) if args.app else None, limit=args.n)
    if not rows:
        stdout.write("no conversations yet\n")
        return 0
    for c in rows:
        app = Path(c.app).name if os.sep in c.app else c.app
        stdout.write(f"{c.id}  {c.updated_at[:16].replace('T', ' ')}  {app:<14} {c.model:<28} {c.title[:60]}\n")
    stdout.write(f"continue one with: py-agent chat --cid ID   (log: {path})\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
