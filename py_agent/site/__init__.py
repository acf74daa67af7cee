"""Building a static site from an app (``py-agent build``) and serving it (``py-agent serve``).

    from py_agent.site import build_site
    build_site("myapp/models.py", "site/")          # the same as `py-agent build myapp/models.py --out site`

See :mod:`py_agent.site.builder` for what a site holds, :mod:`py_agent.site.kit` for where
its runtime comes from (a release wheel, or a checkout with Node), and
:mod:`py_agent.site.headers` for the headers hosts should send (the site works without them).
"""

from __future__ import annotations

from .builder import SiteReport, build_site
from .common import SiteError
from .kit import Kit, find_kit

__all__ = ["Kit", "SiteError", "SiteReport", "build_site", "find_kit"]
