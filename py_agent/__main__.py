"""``python -m py_agent``: the ``py-agent`` command."""

import sys

from .cli import main

sys.exit(main())
