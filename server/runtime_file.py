"""The runtime file through which the plug-in finds the engine: port, token, pid, version, url.

It holds the token, so it is created 0600 from the start (never chmod-ed after writing) and
swapped into place atomically: a reader sees either no file or a complete one.

Whatever sits at that path is not trusted: `read` opens it without following a symbolic link
and without blocking (a FIFO), and accepts only a regular file owned by this user with no
permissions for group or others, of at most contract.RUNTIME_FILE_MAX bytes. Which engine owns the path is
decided by a lock (`lock`) on `<runtime file>.lock` beside it, not by the file's contents.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from analogy_engine import contract

# One set of rules for the engine and the plug-in (analogy_engine/contract.py).
default_path = contract.runtime_file_path
read = contract.read_runtime_file
read_trusted = contract.read_trusted
trusted = contract.trusted


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


class Lock:
    """An exclusive lock on `<runtime file>.lock`, held for the engine's lifetime (the kernel
    drops it when the process ends, however it ends). Where flock does not exist (Windows) it
    always succeeds, which leaves the old check on the runtime file's contents as the only one."""

    def __init__(self, runtime: Path) -> None:
        self.path = runtime.with_name(runtime.name + ".lock")
        self._fd: int | None = None
        try:
            import fcntl  # noqa: F401
        except ImportError:
            self.enforced = False
        else:
            self.enforced = True

    def acquire(self) -> bool:
        """True if this process now owns the runtime file's path; False if another engine does."""
        try:
            import fcntl
        except ImportError:
            return True
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.path, flags | getattr(os, "O_NONBLOCK", 0), 0o600)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(f"{self.path} is not a regular file")
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        # The lock file itself stays: removing it would let a third engine lock a new file
        # while a second one still waits on the old one.
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def remove_if_ours(path: Path, pid: int, token: str) -> bool:
    """Remove the file only if it still describes this process: a newer engine may own it now."""
    data = read(path)
    if data is None or data.get("pid") != pid or data.get("token") != token:
        return False
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return True
