"""The runtime file through which the plug-in finds the engine: port, token, pid, version, url.

It holds the token, so it is created 0600 from the start (never chmod-ed after writing) and
swapped into place atomically: a reader sees either no file or a complete one.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

APP_DIR = "deep-image-analogy"
FILE_NAME = "engine.json"


def default_path(environ: dict[str, str] | None = None) -> Path:
    """The path rules of API.md: $DIA_RUNTIME_FILE, $XDG_RUNTIME_DIR, then a per-user cache dir."""
    env = os.environ if environ is None else environ
    if env.get("DIA_RUNTIME_FILE"):
        return Path(env["DIA_RUNTIME_FILE"])
    if sys.platform == "win32":
        base = env.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / APP_DIR / FILE_NAME
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / APP_DIR / FILE_NAME
    return Path.home() / ".cache" / APP_DIR / FILE_NAME


def write(path: Path, info: dict[str, Any]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".engine-", suffix=".tmp", dir=path.parent)  # mkstemp: 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(info, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove_if_ours(path: Path, pid: int, token: str) -> bool:
    """Remove the file only if it still describes this process: a newer engine may own it now."""
    data = read(path)
    if data is None or data.get("pid") != pid or data.get("token") != token:
        return False
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return True
