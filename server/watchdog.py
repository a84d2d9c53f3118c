"""Reasons for the engine to stop on its own: its parent is gone, or nothing happened for a while."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable

log = logging.getLogger("server.watchdog")


def pid_alive(pid: int) -> bool:
    """True while process `pid` exists and is not a zombie (a dead parent not yet reaped)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        return _pid_alive_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):  # no /proc (macOS): os.kill's answer stands
        return True


def _pid_alive_windows(pid: int) -> bool:
    # os.kill(pid, 0) would terminate the process on Windows; ask the kernel instead.
    import ctypes

    synchronize, wait_timeout = 0x00100000, 0x102
    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(synchronize, False, pid)
    if not handle:
        return False
    try:
        return kernel32.WaitForSingleObject(handle, 0) == wait_timeout
    finally:
        kernel32.CloseHandle(handle)


class Watchdog(threading.Thread):
    """Calls `stop(reason)` once when the parent process is gone or the engine has been idle."""

    def __init__(
        self,
        stop: Callable[[str], None],
        idle_seconds: Callable[[], float | None],
        idle_exit: float | None,
        parent_pid: int | None,
        interval: float = 0.25,
    ) -> None:
        super().__init__(name="watchdog", daemon=True)
        self._stop_fn = stop
        self._idle_seconds = idle_seconds
        self._idle_exit = idle_exit
        self._parent_pid = parent_pid
        self._interval = interval
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(self._interval):
            reason = self.check()
            if reason:
                log.info("stopping: %s", reason)
                self._stop_fn(reason)
                return

    def check(self) -> str | None:
        if self._parent_pid is not None and not pid_alive(self._parent_pid):
            return f"parent process {self._parent_pid} is gone"
        if self._idle_exit is not None:
            idle = self._idle_seconds()
            if idle is not None and idle >= self._idle_exit:
                return f"idle for {idle:.0f} s (--idle-exit {self._idle_exit:g})"
        return None

    def cancel(self) -> None:
        self._done.set()
