"""Checked execution of model-written code: every layer that stands between it and the host.

- ``policy.py``: the rules both code layers apply (:class:`Policy`: allowed modules, refused
  builtins and attributes, layer switches);
- ``validator.py``: the AST layer, run before anything executes (:func:`check`, :func:`check_parsed`);
- ``runtime.py``: the run-time layer: curated builtins, a guarded importer, module views
  (``views.py``), the compile-time rewrite (``rewrite.py``) that routes every attribute read
  of model code through the guards (``guards.py``), and the step guard that keeps model
  functions from running after their step;
- ``limits.py``: time and memory limits of a step;
- ``executor.py``: runs checked code in a persistent namespace, with output captured.

Each layer is tested on its own with the others switched off; none is meant to be the only one.
See SECURITY.md for what each promises and what it does not.
"""

from __future__ import annotations

from .executor import DEFAULT_MAX_OUTPUT, BoundedOutput, Executor, Outcome, model_traceback
from .guards import Refused
from .limits import Deadline, StepTimeout
from .policy import Policy, default_policy
from .runtime import ModuleView, RuntimeLayer, guarded_import, register_unsafe_type, runtime_layer, safe_builtins
from .source import ValidationError, Violation
from .validator import check, check_parsed, validate

__all__ = [
    "DEFAULT_MAX_OUTPUT",
    "BoundedOutput",
    "Deadline",
    "Executor",
    "ModuleView",
    "Outcome",
    "Policy",
    "Refused",
    "RuntimeLayer",
    "StepTimeout",
    "ValidationError",
    "Violation",
    "check",
    "check_parsed",
    "default_policy",
    "guarded_import",
    "model_traceback",
    "register_unsafe_type",
    "runtime_layer",
    "safe_builtins",
    "validate",
]
