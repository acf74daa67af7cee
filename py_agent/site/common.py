"""What the site builder's modules share: errors, logging, commands, hashes, where things live."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import PyAgentError


class SiteError(PyAgentError):
    """A site could not be built; the message says what and the hint what to do."""

    kind = "site"


Log = Callable[[str], None]


def print_log(message: str) -> None:
    print(message, flush=True)


def quiet_log(message: str) -> None:
    pass


def checkout_root() -> Path | None:
    """The py-agent checkout this package runs from (an editable install), or None.

    A checkout has the page's sources (web/app/) and the npm lock file; a site can then be
    built from them, with Node. An installed wheel carries a prebuilt kit instead.
    """
    root = Path(__file__).resolve().parents[2]
    if (root / "web" / "app" / "index.html").is_file() and (root / "package.json").is_file() and (root / "build.py").is_file():
        return root
    return None


def cache_dir() -> Path:
    """Where downloads and compiled wheels are kept: .cache/ in a checkout, else the user's cache."""
    if os.environ.get("PY_AGENT_CACHE"):
        return Path(os.environ["PY_AGENT_CACHE"]).expanduser().resolve()
    root = checkout_root()
    if root is not None:
        return root / ".cache"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "py-agent"


def run(cmd: Sequence[Any], *, cwd: Path | None = None, env: dict[str, str] | None = None, log: Log = print_log,
        what: str = "") -> subprocess.CompletedProcess[str]:
    """Run a command quietly; on failure raise SiteError with the end of its output."""
    log("  $ " + " ".join(str(c) for c in cmd))
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip())[-3000:]
        raise SiteError(f"{what or 'a command'} failed (exit code {proc.returncode}): {' '.join(map(str, cmd[:4]))} …\n{tail}",
                        hint="read the output above; run the command yourself to see all of it")
    return proc


def node() -> str | None:
    """The ``node`` executable, if Node.js (20 or newer) is installed."""
    return shutil.which("node")


def run_node_tool(script: Path, job: object, *, log: Log = print_log, env: dict[str, str] | None = None) -> None:
    """Run a Node script of the build with its job description in a temporary JSON file."""
    executable = node()
    if executable is None:
        raise SiteError("Node.js is needed for this step and `node` is not on PATH",
                        hint="install Node.js 20 or newer (https://nodejs.org, or `apt-get install nodejs`)")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(job, f)
    try:
        run([executable, script, f.name], log=log, env=env, what=f"node {script.name}")
    finally:
        os.unlink(f.name)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def human(n: float) -> str:
    """Bytes as a short human string."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} GB"


def link_or_copy(src: Path, dst: Path) -> None:
    """A hard link when possible (same file system; the build never writes to it), else a copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() and os.path.samefile(src, dst):
        return  # linked already (the same files precompressed twice)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def python() -> str:
    return sys.executable


__all__ = ["Log", "SiteError", "cache_dir", "checkout_root", "human", "link_or_copy", "node", "print_log", "quiet_log",
           "run", "run_node_tool", "sha256_bytes", "sha256_file"]
