"""The app contract: one Python module describes everything py-agent needs for an application.

An *app* is a Python module (a module name, a ``.py`` file or a package folder) that
defines:

``Base`` (required)
    The SQLAlchemy declarative base its mapped classes inherit from (a ``DeclarativeBase``
    subclass or ``declarative_base()``). Every mapped class must be imported by the time the
    module has run: the model sees exactly the classes ``Base`` knows.
``seed(session)`` (optional)
    Fills a new, empty database. py-agent commits after it returns.
``DATA`` (optional, instead of ``seed``)
    Path of a ``.sqlite`` file to start from (relative to the module's folder).
``DEMO`` (optional)
    Path of a recorded demo (``py-agent chat --record FILE``; see :mod:`py_agent.recording`):
    what runs when no model key is set. Its requests are the default suggestions.
``tools``
    A list of functions the model may call (``@tool``-decorated or plain; async is fine).
``allowed_imports``
    Extra modules the model's code may import (blocked modules such as ``os`` stay blocked).
``allowed_packages``
    Requirements (``"python-dateutil==2.9.0.post0"``) of extra pure-Python packages the model's
    code uses; a browser build installs them on demand. List their modules in
    ``allowed_imports`` too: that list alone decides what may be imported.
``prompt``
    Extra instructions appended to the system prompt, or a whole template when it contains
    the ``{{ SCHEMA }}``/``{{ SYMBOLS }}``/``{{ TOOLS }}`` slots (see :mod:`py_agent.prompt`).
``title``, ``description``, ``suggestions``
    What a page shows: a name, a sentence, and example requests (chips).

``load_app(spec)`` imports and checks the module and returns an :class:`App`, a frozen
description. Anything wrong raises :class:`AppError` naming the file and line and saying how
to fix it. From an app you get an agent and a database::

    app = load_app("examples/clinic/clinic")
    engine = app.open_database("sqlite:///clinic.sqlite")   # tables + seed if empty
    agent = app.agent(model="openai:gpt-4.1-mini")           # or Agent(**app.agent_options(model=...))

``open_database`` never changes an existing database: it creates tables and seeds only a
database that has no tables at all.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import re
import sqlite3
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError
from .prompt import default_template
from .recording import Demo, DemoError, RecordedModel
from .tools import Tool, as_tool

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from .loop import Agent

FIELDS = ("Base", "seed", "DATA", "DEMO", "tools", "allowed_imports", "allowed_packages", "prompt",
          "title", "description", "suggestions")
SLOT_PATTERN = re.compile(r"\{\{-?\s*(SCHEMA|SYMBOLS|TOOLS|IMPORTS)\s*-?\}\}")
_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
# A PEP 508 name with extras and version specifiers (no URLs, no markers: a browser build
# resolves these against PyPI for one platform).
_REQUIREMENT = re.compile(
    r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?(\[[\w,\s-]*\])?"
    r"(\s*(===|==|!=|~=|>=|<=|<|>)\s*[\w.*+!-]+(\s*,\s*(===|==|!=|~=|>=|<=|<|>)\s*[\w.*+!-]+)*)?$"
)
BASE_HINT = "define `class Base(DeclarativeBase): pass` and your mapped classes, or import them: `from .models import Base`"


class AppError(ConfigurationError):
    """The app module is wrong; ``file`` and ``line`` say where (when known)."""

    kind = "app"

    def __init__(self, message: str, *, hint: str = "", file: str | Path | None = None, line: int | None = None) -> None:
        self.file = str(file) if file else None
        self.line = line
        where = f"{self.file}:{line}: " if self.file and line else f"{self.file}: " if self.file else ""
        super().__init__(where + message, hint=hint)


@dataclass(frozen=True)
class App:
    """A loaded, checked app module. Build it with :func:`load_app`."""

    name: str
    module: ModuleType = field(repr=False, compare=False)
    source: Path | None
    base: Any = field(repr=False)
    seed: Callable[[Any], Any] | None = field(default=None, repr=False)
    data: Path | None = None
    demo_path: Path | None = None
    tools: tuple[Tool, ...] = ()
    allowed_imports: tuple[str, ...] = ()
    allowed_packages: tuple[str, ...] = ()
    prompt: str | None = field(default=None, repr=False)
    title: str = ""
    description: str = ""
    suggestions: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    # -- the agent ------------------------------------------------------------------------------
    @property
    def prompt_is_template(self) -> bool:
        return self.prompt is not None and SLOT_PATTERN.search(self.prompt) is not None

    def prompt_template(self) -> str | None:
        """The template for ``Agent(prompt_template=...)``: the app's own, or the default plus its instructions."""
        if self.prompt is None or not self.prompt.strip():
            return None
        if self.prompt_is_template:
            return self.prompt
        # The instructions are text, not a template: keep jinja from reading braces in them.
        text = self.prompt.strip().replace("{% endraw %}", "{% endraw %}{{ '{% endraw %}' }}{% raw %}")
        return default_template().rstrip() + "\n\nAbout this application:\n{% raw %}" + text + "{% endraw %}\n"

    def agent_options(self, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for :class:`~py_agent.Agent`; ``overrides`` (model, approve, ...) win."""
        options: dict[str, Any] = {"base": self.base, "tools": list(self.tools)}
        if self.allowed_imports:
            options["allowed_imports"] = list(self.allowed_imports)
        template = self.prompt_template()
        if template is not None:
            options["prompt_template"] = template
        options.update(overrides)
        return options

    def agent(self, model: Any, **overrides: Any) -> "Agent":
        """``Agent(**self.agent_options(model=model, **overrides))``."""
        from .loop import Agent

        return Agent(**self.agent_options(model=model, **overrides))

    def demo(self) -> Demo | None:
        """The recorded demo (``DEMO``), if the app has one."""
        return Demo.load(self.demo_path) if self.demo_path else None

    def recorded_model(self, **options: Any) -> RecordedModel | None:
        """A provider replaying the app's demo (``RecordedModel``), or None without one."""
        demo = self.demo()
        return RecordedModel(demo, **options) if demo else None

    def demo_model(self, **options: Any) -> Any:
        """What answers when no model is configured: the recorded demo, or a provider that
        says there is none and how to set a model (pages and ``py-agent chat`` use it)."""
        recorded = self.recorded_model(**options)
        if recorded is not None:
            return recorded
        from .providers.scripted import FunctionProvider

        message = (f"{self.title} has no recorded demo, so nothing can answer without a model. "
                   "Open Settings, choose a provider and paste your API key (or point it at a local model server).")
        return FunctionProvider(lambda request: {"message": message, "code": ""}, model=f"demo:{self.name}",
                                **{k: v for k, v in options.items() if k in ("chunk_size", "delay")})

    # -- the database -------------------------------------------------------------------------------
    def open_database(self, url: "str | Engine" = "sqlite://", **engine_options: Any) -> "Engine":
        """An engine on ``url`` holding the app's tables.

        An empty database (no tables at all) gets the tables and the seed (or ``DATA``'s rows);
        an existing one is used as it is and never altered, but must have every mapped
        table. ``"sqlite://"`` is one in-memory database shared by the engine's connections.
        """
        from sqlalchemy import Engine

        engine = url if isinstance(url, Engine) else engine_for(url, **engine_options)
        try:
            self.prepare(engine)
        except BaseException:
            if not isinstance(url, Engine):
                engine.dispose()
            raise
        return engine

    def prepare(self, engine: "Engine") -> bool:
        """Create and fill the tables of an empty database; True if it was empty."""
        from sqlalchemy import inspect as sa_inspect
        from sqlalchemy.exc import SQLAlchemyError

        try:
            inspector = sa_inspect(engine)
            existing = inspector.get_table_names()
            tables = self.base.metadata.sorted_tables
            present = [t for t in tables if inspector.has_table(t.name, schema=t.schema)]
        except SQLAlchemyError as exc:
            raise AppError(f"cannot open the database {_safe_url(engine)}: {_first_line(exc)}",
                           hint="check the URL, that the server is running and that you may connect") from None
        if existing or present:
            missing = [t.fullname for t in tables if t not in present]
            if missing:
                raise AppError(
                    f"the database {_safe_url(engine)} is not empty but lacks the app's table(s) {', '.join(missing)}",
                    hint="py-agent never changes an existing database's schema: create them with your migrations, "
                         "or point at an empty database to start from the app's seed",
                )
            return False
        if self.data is not None:
            self._load_data(engine)
        else:
            self.base.metadata.create_all(engine)
            if self.seed is not None:
                self._run_seed(engine)
        return True

    def _run_seed(self, engine: "Engine") -> None:
        from sqlalchemy.orm import Session

        assert self.seed is not None
        try:
            with Session(engine) as session:
                self.seed(session)
                session.commit()
        except Exception as exc:
            # The database was empty before: leave it empty rather than half seeded.
            self.base.metadata.drop_all(engine)
            file, line = _deepest_frame(exc.__traceback__, self.source)
            raise AppError(f"seed() raised {type(exc).__name__}: {_first_line(exc)}", file=file, line=line,
                           hint="fix the seed function; the database was left empty") from exc

    def _load_data(self, engine: "Engine") -> None:
        """Start from DATA: a copy of the file on SQLite, its rows elsewhere."""
        from sqlalchemy import create_engine, insert, select

        assert self.data is not None
        if engine.dialect.name == "sqlite":
            source = sqlite3.connect(f"file:{self.data}?mode=ro", uri=True)
            try:
                with engine.connect() as connection:
                    source.backup(connection.connection.driver_connection)  # type: ignore[arg-type]
            finally:
                source.close()
            self.base.metadata.create_all(engine)  # tables DATA lacks (a newer schema)
            return
        source_engine = create_engine(f"sqlite:///{self.data}")
        try:
            self.base.metadata.create_all(engine)
            with source_engine.connect() as source, engine.begin() as target:
                for table in self.base.metadata.sorted_tables:
                    rows = [dict(row) for row in source.execute(select(table)).mappings()]
                    if rows:
                        target.execute(insert(table), rows)
                if engine.dialect.name == "postgresql":
                    _move_sequences_past_rows(target, self.base.metadata.sorted_tables)
        except Exception:
            self.base.metadata.drop_all(engine)
            raise
        finally:
            source_engine.dispose()

    # -- description -------------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        """The app as JSON-able data: what a page or a site builder needs to know."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "suggestions": list(self.suggestions),
            "tools": [t.name for t in self.tools],
            "allowed_imports": list(self.allowed_imports),
            "allowed_packages": list(self.allowed_packages),
            "has_demo": self.demo_path is not None,
        }


def _move_sequences_past_rows(connection: Any, tables: list[Any]) -> None:
    """PostgreSQL: rows copied with their ids leave each id sequence behind them; move it on."""
    from sqlalchemy import Integer, text

    preparer = connection.dialect.identifier_preparer
    for table in tables:
        key = list(table.primary_key.columns)
        if len(key) == 1 and isinstance(key[0].type, Integer):
            # pg_get_serial_sequence is NULL for a column without a sequence, and setval(NULL) does nothing.
            connection.execute(
                text(f"SELECT setval(pg_get_serial_sequence(:table, :column), COALESCE(MAX({preparer.quote(key[0].name)}), 0) + 1, false) "
                     f"FROM {preparer.format_table(table)}"),
                {"table": table.fullname, "column": key[0].name},
            )


# -- loading ------------------------------------------------------------------------------------------

def load_app(spec: "str | os.PathLike[str] | ModuleType | App", *, overrides: dict[str, Any] | None = None) -> App:
    """Import and check an app: a module name, a ``.py`` file, a package folder, or a module.

    ``overrides`` replace fields of the module, e.g. ``{"DEMO": "other_demo.json"}`` (what
    ``py-agent build --demo`` does). Raises :class:`AppError` with the file and line of what
    is wrong.
    """
    if isinstance(spec, App) and not overrides:
        return spec
    if isinstance(spec, App):
        spec = spec.module
    module = spec if isinstance(spec, ModuleType) else _import(spec)
    return _describe(module, overrides)


# A built site (py_agent.site) packs the app's module into its own wheel, and beside it this
# folder: site.json ({"app": module name, "DATA": file, "DEMO": file}, paths relative to the
# folder) says which data file and recorded demo the site ships, whatever the module says.
SITE_FOLDER = "_py_agent_site"


def load_site_app(name: str) -> App:
    """The app of a built site, as the browser worker opens it (``open {schema}``).

    Like :func:`load_app` of the module ``name``, with ``DATA`` and ``DEMO`` taken from the
    site's own files (``_py_agent_site/site.json`` on ``sys.path``) when the site ships them,
    for instance a demo given with ``py-agent build --demo FILE``. Cached: the boot imports
    the app once (and a boot snapshot keeps it), every later ``open`` reuses it.
    """
    cached = _site_apps.get(name)
    if cached is not None:
        return cached
    module = _import(name)
    overrides: dict[str, Any] = {}
    for entry in sys.path:
        config = Path(entry or ".") / SITE_FOLDER / "site.json"
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("app") == name:
            overrides = {key: str(config.parent / data[key]) for key in ("DATA", "DEMO") if isinstance(data.get(key), str)}
            break
    app = _describe(module, overrides)
    _site_apps[name] = app
    return app


_site_apps: dict[str, App] = {}


def _import(spec: "str | os.PathLike[str]") -> ModuleType:
    text = os.fspath(spec)
    path = Path(text).expanduser()
    looks_like_path = isinstance(spec, os.PathLike) or os.sep in text or "/" in text or text.endswith(".py")
    if not path.exists():
        if looks_like_path or not _MODULE_NAME.match(text):
            raise AppError(f"there is no file or folder {text}",
                           hint="pass a module name (myapp.models), a .py file or a package folder")
        return _import_module(text, None)
    path = path.resolve()
    if path.is_dir():
        if not (path / "__init__.py").exists():
            candidates = sorted(p.name for p in path.glob("*.py"))
            raise AppError(f"the folder {path} is not a Python package (it has no __init__.py)",
                           hint=f"pass the app's .py file instead ({', '.join(candidates[:3]) or 'none here'}) or add __init__.py")
        name, root = path.name, path.parent
    elif path.suffix == ".py":
        name, root = path.stem, path.parent
    else:
        raise AppError(f"{path} is not a .py file or a package folder", hint="pass the module that defines Base")
    if not name.isidentifier():
        raise AppError(f"{path.name} cannot be imported as a module: {name!r} is not a Python identifier",
                       hint="rename it with letters, digits and underscores only (e.g. my_app.py)")
    loaded = sys.modules.get(name)
    if loaded is not None:
        if _module_path(loaded) == path:
            return loaded
        raise AppError(f"a different module named {name!r} is already imported (from {_module_path(loaded) or 'built-in'})",
                       hint=f"rename {path.name} so its name is unique")
    if str(root) not in sys.path:
        # Like `python file.py`: the app's folder is importable, so its own imports work.
        sys.path.insert(0, str(root))
    module = _import_module(name, path)
    if _module_path(module) != path:
        raise AppError(f"importing {name!r} found another module ({_module_path(module)}) instead of {path}",
                       hint=f"rename {path.name} so its name is unique")
    return module


def _module_path(module: ModuleType) -> Path | None:
    file = getattr(module, "__file__", None)
    if not file:
        return None
    p = Path(file).resolve()
    return p.parent if p.name == "__init__.py" else p


def _import_module(name: str, path: Path | None) -> ModuleType:
    try:
        return importlib.import_module(name)
    except SyntaxError as exc:
        raise AppError(f"syntax error: {exc.msg}" + _source_excerpt(exc), file=exc.filename or path, line=exc.lineno,
                       hint="fix the line shown") from None
    except ModuleNotFoundError as exc:
        if path is None and exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise AppError(f"there is no module named {name!r}",
                           hint="pass a .py file or a package folder, or install the module (or run from the folder that holds it)") from None
        file, line = _deepest_frame(exc.__traceback__, path)
        missing = exc.name or "?"
        raise AppError(f"importing the app failed: no module named {missing!r}", file=file, line=line,
                       hint=f"install it (pip install {missing.split('.')[0]}) or remove the import") from None
    except Exception as exc:
        file, line = _deepest_frame(exc.__traceback__, path)
        raise AppError(f"importing the app failed: {type(exc).__name__}: {_first_line(exc)}", file=file, line=line,
                       hint="fix the error at that line") from exc


def _source_excerpt(exc: SyntaxError) -> str:
    if not exc.text:
        return ""
    line = exc.text.rstrip("\n")
    caret = " " * max(0, (exc.offset or 1) - 1 - (len(line) - len(line.lstrip()))) + "^"
    return f"\n    {line.strip()}\n    {caret}"


def _deepest_frame(tb: TracebackType | None, path: Path | None) -> tuple[str | None, int | None]:
    """The last traceback frame inside the app's source (else the last frame outside py-agent)."""
    frames = traceback.extract_tb(tb)
    inside = [f for f in frames if path is not None and _is_within(Path(f.filename), path)]
    if not inside:
        library = Path(__file__).resolve().parent
        inside = [f for f in frames if not _is_within(Path(f.filename), library) and "importlib" not in f.filename]
    if not inside:
        return (str(path) if path else None), None
    return inside[-1].filename, inside[-1].lineno


def _is_within(file: Path, root: Path) -> bool:
    try:
        resolved = file.resolve()
    except OSError:
        return False
    return resolved == root or root in resolved.parents


def _describe(module: ModuleType, overrides: dict[str, Any] | None = None) -> App:
    checker = _Checker(module, overrides)
    base = checker.base()
    seed = checker.callable_field("seed")
    data = checker.path_field("DATA")
    if seed is not None and data is not None:
        raise checker.error("DATA", "defines both `seed` and `DATA`", "keep one: DATA is a .sqlite file to start from, seed() fills an empty database")
    if data is not None:
        with open(data, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                raise checker.error("DATA", f"DATA ({data}) is not a SQLite database file", "point DATA at a .sqlite file")
    demo_path = checker.path_field("DEMO", missing_ok=True)
    demo: Demo | None = None
    if demo_path is not None:
        try:
            demo = Demo.load(demo_path)
        except DemoError as exc:
            raise checker.error("DEMO", exc.message, exc.hint) from None
    suggestions = checker.strings("suggestions")
    if not suggestions and demo is not None:
        suggestions = tuple(demo.requests)
    title = checker.string("title") or module.__name__.rsplit(".", 1)[-1].replace("_", " ").title()
    return App(
        name=module.__name__,
        module=module,
        source=_module_path(module),
        base=base,
        seed=seed,
        data=data,
        demo_path=demo_path,
        tools=checker.tools(),
        allowed_imports=checker.imports(),
        allowed_packages=checker.packages(),
        prompt=checker.prompt(),
        title=title,
        description=checker.string("description") or "",
        suggestions=suggestions,
        warnings=tuple(checker.warnings),
    )


class _Checker:
    """Reads the contract's fields from a module, each error naming the line that set it."""

    def __init__(self, module: ModuleType, overrides: dict[str, Any] | None = None) -> None:
        self.module = module
        self.overrides = dict(overrides or {})
        self.path = _module_path(module)
        self.file = getattr(module, "__file__", None) or module.__name__
        self.folder = Path(self.file).resolve().parent if getattr(module, "__file__", None) else Path.cwd()
        self.lines = _top_level_lines(self.file) if getattr(module, "__file__", None) else {}
        self.warnings: list[str] = []
        for name, line in self.lines.items():
            for wanted in FIELDS:
                if name != wanted and name.lower() == wanted.lower():
                    self.warnings.append(f"{self.file}:{line}: `{name}` is not read by py-agent: did you mean `{wanted}`?")

    def error(self, name: str, message: str, hint: str = "") -> AppError:
        return AppError(message, hint=hint, file=self.file, line=self.lines.get(name))

    def get(self, name: str) -> Any:
        if name in self.overrides:
            return self.overrides[name]
        return getattr(self.module, name, None)

    def wrong_type(self, name: str, expected: str, value: Any) -> AppError:
        return self.error(name, f"`{name}` must be {expected}, not {_describe_value(value)}")

    # -- fields ---------------------------------------------------------------------------------
    def base(self) -> Any:
        from sqlalchemy import MetaData
        from sqlalchemy.orm import registry

        from .schema import SchemaError, mapped_classes, schema_symbols

        base = self.get("Base")
        if base is None:
            raise AppError("the app defines no `Base`", hint=BASE_HINT, file=self.file)
        if not (isinstance(base, type) and isinstance(getattr(base, "registry", None), registry)
                and isinstance(getattr(base, "metadata", None), MetaData)) or "__mapper__" in vars(base):
            what = "a mapped class" if hasattr(base, "__mapper__") else _describe_value(base)
            raise self.error("Base", f"`Base` is {what}, not a SQLAlchemy declarative base", BASE_HINT)
        if not mapped_classes(base):
            raise self.error("Base", "`Base` has no mapped classes",
                             "define classes that inherit from Base (with __tablename__) in this module, "
                             "or import the module that defines them before the app module ends")
        try:
            schema_symbols(base)
        except SchemaError as exc:
            file, line = self.file, self.lines.get("Base")
            named = re.search(r"class (\w+)", str(exc))
            cls = next((c for c in mapped_classes(base) if named and c.__name__ == named.group(1)), None)
            if cls is not None:
                try:
                    file, line = inspect.getsourcefile(cls) or file, inspect.getsourcelines(cls)[1]
                except (OSError, TypeError):
                    pass
            raise AppError(f"the mapped classes cannot be set up: {exc}", file=file, line=line,
                           hint="fix the class named in the message") from None
        return base

    def callable_field(self, name: str) -> Callable[..., Any] | None:
        value = self.get(name)
        if value is None:
            return None
        if not callable(value):
            raise self.wrong_type(name, "a function taking the session", value)
        if inspect.iscoroutinefunction(value):
            raise self.error(name, f"`{name}` is async; it must be a plain function", f"write `def {name}(session):`")
        try:
            inspect.signature(value).bind(object())
        except TypeError:
            raise self.error(name, f"`{name}` must take exactly one argument, the session",
                             f"write `def {name}(session): ...`") from None
        except ValueError:  # no signature (a builtin): trust it
            pass
        return value  # type: ignore[no-any-return]

    def path_field(self, name: str, *, missing_ok: bool = False) -> Path | None:
        value = self.get(name)
        if value is None:
            return None
        if not isinstance(value, (str, os.PathLike)):
            raise self.wrong_type(name, "a path (str or pathlib.Path)", value)
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = self.folder / path
        if not path.is_file():
            if missing_ok:  # a demo not recorded yet: `py-agent chat --record` makes it
                self.warnings.append(f"{self.file}:{self.lines.get(name, '?')}: `{name}` names {path}, which does not "
                                     "exist yet: record it with `py-agent chat --app APP --record FILE`")
                return None
            raise self.error(name, f"`{name}` names {path}, which does not exist", "paths are relative to the app module's folder")
        return path.resolve()

    def string(self, name: str) -> str | None:
        value = self.get(name)
        if value is not None and not isinstance(value, str):
            raise self.wrong_type(name, "a string", value)
        return value

    def strings(self, name: str, pattern: re.Pattern[str] | None = None, what: str = "") -> tuple[str, ...]:
        value = self.get(name)
        if value is None:
            return ()
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise self.wrong_type(name, "a list of strings", value)
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise self.error(name, f"`{name}[{index}]` must be a non-empty string, not {_describe_value(item)}")
            if pattern is not None and not pattern.match(item.strip()):
                raise self.error(name, f"`{name}[{index}]` ({item!r}) is not {what}")
        return tuple(item.strip() for item in value)

    def imports(self) -> tuple[str, ...]:
        from .sandbox.validator import Policy

        names = self.strings("allowed_imports", _MODULE_NAME, "a module name such as 'statistics' or 'dateutil.parser'")
        policy = Policy()
        for name in names:
            if policy.is_blocked_module(name):
                self.warnings.append(f"{self.file}:{self.lines.get('allowed_imports', '?')}: `{name}` in allowed_imports "
                                     "stays blocked (it reaches outside the sandbox)")
        return names

    def packages(self) -> tuple[str, ...]:
        return self.strings("allowed_packages", _REQUIREMENT, "a requirement such as 'tabulate' or 'python-dateutil==2.9.0.post0'")

    def tools(self) -> tuple[Tool, ...]:
        value = self.get("tools")
        if value is None:
            return ()
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise self.wrong_type("tools", "a list of functions", value)
        tools: dict[str, Tool] = {}
        for index, item in enumerate(value):
            try:
                found = as_tool(item)
            except TypeError:
                raise self.error("tools", f"`tools[{index}]` is {_describe_value(item)}, not a function",
                                 "list the functions themselves: tools = [my_tool]") from None
            if found.name in tools:
                raise self.error("tools", f"two tools are named {found.name!r}", "give one a different name with @tool(name=...)")
            tools[found.name] = found
        return tuple(tools.values())

    def prompt(self) -> str | None:
        import jinja2

        value = self.string("prompt")
        if value is not None and SLOT_PATTERN.search(value):
            try:
                jinja2.Environment().parse(value)
            except jinja2.TemplateSyntaxError as exc:
                raise self.error("prompt", f"the prompt template has a syntax error on its line {exc.lineno}: {exc.message}",
                                 "fix the template (it is jinja2), or drop the {{ SLOT }}s to make it plain instructions") from None
        return value


def _top_level_lines(file: str) -> dict[str, int]:
    """Where each top-level name of a module's source is bound (the last binding: the one in effect)."""
    try:
        tree = ast.parse(Path(file).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return {}
    lines: dict[str, int] = {}

    def bind(name: str, line: int) -> None:
        lines[name] = line

    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bind(node.name, node.lineno)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        bind(name.id, node.lineno)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
            bind(node.target.id, node.lineno)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bind((alias.asname or alias.name).split(".")[0], node.lineno)
    return lines


def _describe_value(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, type):
        return f"the class {value.__name__}"
    if isinstance(value, ModuleType):
        return f"the module {value.__name__}"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _safe_url(engine: "Engine") -> str:
    return engine.url.render_as_string(hide_password=True)


def engine_for(url: str, **options: Any) -> "Engine":
    """A SQLAlchemy engine for ``url``; a bad URL or a missing driver is an :class:`AppError` saying what to do."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError
    from sqlalchemy.pool import StaticPool

    if url in ("sqlite://", "sqlite:///:memory:"):
        # One in-memory database shared by every connection of the engine, from any thread.
        options = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}, **options}
    try:
        engine = create_engine(url, **options)
    except (NoSuchModuleError, ImportError) as exc:  # before ArgumentError: NoSuchModuleError is one
        hint = 'pip install "py-agent[postgres]"' if url.startswith("postgres") else "install the database driver named in the URL"
        raise AppError(f"no driver for {url.split(':', 1)[0]!r}: {_first_line(exc)}", hint=hint) from None
    except ArgumentError as exc:
        raise AppError(f"{url!r} is not a database URL: {_first_line(exc)}",
                       hint="write it as sqlite:///path/to/file.sqlite or postgresql+psycopg://user@host/dbname") from None
    if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        folder = Path(engine.url.database).expanduser().resolve().parent  # type: ignore[arg-type]
        if not folder.is_dir():
            engine.dispose()
            raise AppError(f"the folder {folder} of the SQLite database does not exist", hint="create it, or choose another path")
    return engine


__all__ = ["App", "AppError", "FIELDS", "SITE_FOLDER", "engine_for", "load_app", "load_site_app"]
