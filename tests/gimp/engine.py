"""The real engine (`python -m server`) for the plug-in tests: tests/server_harness.py's `Engine`
(the one engine-process harness, which already runs jobs and reads health through the plug-in's
own client) with what these tests add: its runtime file, started in its own session, and a kill
as a crash would do it."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO / "tests"))
from server_harness import Engine  # noqa: E402


class EngineProcess(Engine):
    """One engine on 127.0.0.1 publishing its runtime file at `runtime`, in its own session.

    `run(a, b_prime, params)` (inherited) is the plug-in's run_job over RGBA arrays: the results
    as arrays (images H×W×3, masks H×W); `health()` is the plug-in's health check."""

    def __init__(self, runtime: Path, log: Path, start_timeout: float = 180.0) -> None:
        super().__init__(runtime.parent, runtime_file=runtime, log_path=log, new_session=True)
        self.start(start_timeout)

    @property
    def runtime(self) -> Path:
        return self.runtime_file

    def kill(self) -> None:
        """As a crash would: no cleanup, no goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGKILL)
            self.proc.wait(10)
