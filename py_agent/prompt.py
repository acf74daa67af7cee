"""The system prompt: a jinja2 template with the slots SCHEMA, SYMBOLS, TOOLS (and IMPORTS).

Prompts are data (``prompts/system.jinja``). A developer may pass their own
template text; a missing slot is allowed but warned about, because a prompt
without the schema or the tool list silently makes the agent worse.
"""

from __future__ import annotations

import pkgutil
import warnings
from functools import lru_cache

import jinja2
import jinja2.meta

SLOTS = ("SCHEMA", "SYMBOLS", "TOOLS")


class PromptWarning(UserWarning):
    """A custom prompt template is missing a slot."""


@lru_cache(maxsize=1)
def default_template() -> str:
    # pkgutil reads through the package's loader (a zip in the browser); importlib.resources
    # would import its readers and adapters first, tens of milliseconds of a browser boot.
    data = pkgutil.get_data("py_agent", "prompts/system.jinja")
    assert data is not None, "py_agent/prompts/system.jinja is missing from the package"
    return data.decode("utf-8")


_ENV = jinja2.Environment(undefined=jinja2.ChainableUndefined, keep_trailing_newline=True, autoescape=False)


@lru_cache(maxsize=8)
def _compiled(source: str) -> jinja2.Template:
    """A template compiled once per text (jinja compiles it to Python: milliseconds, more in Pyodide)."""
    return _ENV.from_string(source)


def missing_slots(template: str) -> list[str]:
    declared = jinja2.meta.find_undeclared_variables(_ENV.parse(template))
    return [slot for slot in SLOTS if slot not in declared]


def render_prompt(
    *, schema: str, symbols: str, tools: str, imports: str, template: str | None = None
) -> tuple[str, list[str]]:
    """Render the system prompt; returns ``(text, warnings)``."""
    source = template if template is not None else default_template()
    notes = []
    if template is not None:
        for slot in missing_slots(template):
            note = (
                f"the custom prompt template has no {{{{ {slot} }}}} slot, so the model will not see "
                f"the {slot.lower()}; add {{{{ {slot} }}}} to the template"
            )
            warnings.warn(note, PromptWarning, stacklevel=3)
            notes.append(note)
    text = _compiled(source).render(SCHEMA=schema, SYMBOLS=symbols, TOOLS=tools, IMPORTS=imports)
    return text.strip() + "\n", notes
