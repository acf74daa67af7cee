"""Checked execution of model-written code: every layer that stands between it and the host.

- ``validator.py``: the AST layer, run before anything executes (:func:`check`, :class:`Policy`);
- ``runtime.py``: the run-time layer: curated builtins, a guarded importer, read-only module views;
- ``limits.py``: time (and memory) limits of a step;
- ``executor.py``: runs checked code in a persistent namespace, with output captured.

Each layer is tested on its own with the others switched off; none is meant to be the only one.
See SECURITY.md for what each promises and what it does not.
"""

from __future__ import annotations

from .executor import DEFAULT_MAX_OUTPUT, BoundedOutput, Executor, Outcome, model_traceback
from .limits import Deadline, StepTimeout
from .runtime import ModuleView, guarded_import, safe_builtins
from .validator import Policy, ValidationError, Violation, check, check_parsed, validate

__all__ = [
    "DEFAULT_MAX_OUTPUT",
    "BoundedOutput",
    "Deadline",
    "Executor",
    "ModuleView",
    "Outcome",
    "Policy",
    "StepTimeout",
    "ValidationError",
    "Violation",
    "check",
    "check_parsed",
    "guarded_import",
    "model_traceback",
    "safe_builtins",
    "validate",
]
