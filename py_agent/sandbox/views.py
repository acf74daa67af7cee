"""Read-only views of allowed modules, which is what model code gets when it imports.

Allowed modules re-export dangerous ones under ordinary names (``random._os``,
``typing.sys``, ``json.codecs``, ``enum.bltns``) and hold process-wide state (the csv
dialect registry). A :class:`ModuleView` hides private members, the policy's blocked
attributes, the members the module rules hide (``io`` shows only its in-memory buffers),
and passes every value through the run-time layer's value check: a module comes back as
its own view (or is refused), ``operator.attrgetter`` as its checked version, and so on.
A few members are replaced outright (``itertools.count`` by a version the time limit can
stop, ``math.factorial`` by a bounded one).
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import Any

from .policy import ALLOWED_MODULE_MEMBERS, Policy

# check(value, name) -> the value model code gets (or raises AttributeError).
Check = Callable[[Any, str], Any]


class ModuleView(types.ModuleType):
    """A read-only view of an allowed module for model code.

    Attribute lookups go to the real module, except for names the policy refuses. Values
    are cached in the view after their first (checked) lookup.
    """

    def __init__(
        self,
        module: types.ModuleType,
        policy: Policy,
        check: Check,
        replacements: Mapping[tuple[str, str], Any] | None = None,
    ) -> None:
        super().__init__(module.__name__, module.__doc__)
        # Written through the base class because our __setattr__ refuses writes.
        types.ModuleType.__setattr__(self, "_ModuleView__target", (module, policy, check))
        types.ModuleType.__setattr__(self, "_ModuleView__replacements", replacements or {})

    def __getattr__(self, name: str) -> Any:
        # Only called for names not already in the view's own dict (__name__, __doc__,
        # and values cached below).
        module, policy, check = self.__target
        if name == "__all__":
            return self._public_names()
        hidden = self._hidden_reason(name)
        if hidden is not None:
            raise AttributeError(f"{hidden} (module '{module.__name__}')", name=name, obj=self)
        replacement = self.__replacements.get((module.__name__, name))
        if replacement is not None:  # e.g. itertools.count, made interruptible
            value = replacement
        else:
            value = check(getattr(module, name), f"{module.__name__}.{name}")
        # Cache, so later lookups are plain dict hits.
        types.ModuleType.__setattr__(self, name, value)
        return value

    def _hidden_reason(self, name: str) -> str | None:
        """Why model code may not read ``name`` from this module (same rules as the validator)."""
        module, policy, _ = self.__target
        if (module.__name__, name) in ALLOWED_MODULE_MEMBERS:
            return None
        refusal = policy.attribute_refusal(name)
        if refusal is not None:
            return refusal[1]
        return policy.member_refusal(module.__name__, name)

    def _public_names(self) -> list[str]:
        """What ``from module import *`` may bind: public names that the view exposes."""
        module = self.__target[0]
        names = getattr(module, "__all__", None)
        if names is None:
            names = [n for n in vars(module) if not n.startswith("_")]
        result = []
        for name in names:
            if isinstance(name, str) and self._hidden_reason(name) is None:
                try:
                    getattr(self, name)
                except AttributeError:
                    continue  # missing, or a value model code may not have
                result.append(name)
        return result

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"module '{self.__name__}' is read-only for model code")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"module '{self.__name__}' is read-only for model code")

    def __repr__(self) -> str:
        return f"<module '{self.__name__}'>"
