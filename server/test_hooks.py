"""Test hooks: jobs that fail, run out of memory or hold the worker on request.

Only with DIA_TEST_HOOKS=1 (never in normal use): the engine then accepts a hidden form field
`_test_hook` on POST /v1/jobs (docs/http-api.md) and `install()` wraps the job manager's runner
at start-up. Nothing here is imported by the production path otherwise.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import torch

from analogy_engine import AnalogyResult, Cancelled

if TYPE_CHECKING:
    from .jobs import Job, JobManager

NAMES = ("fail", "cuda_oom", "hold", "memory_error")
HOLD_SECONDS = 60.0


def install(manager: JobManager) -> None:
    """Wrap `manager.runner` (and the analogy function inside it) so jobs with a hook obey it."""
    runner = manager.runner
    inner = runner.analogy_fn  # type: ignore[attr-defined]
    pending = threading.local()  # one worker thread; per-thread for safety

    def analogy_fn(*args: Any, **kwargs: Any) -> AnalogyResult:
        # cuda_oom: the first attempt, once the model is loaded, runs out of GPU memory.
        if getattr(pending, "oom", False):
            pending.oom = False
            raise torch.cuda.OutOfMemoryError("test hook: simulated CUDA out of memory")
        return inner(*args, **kwargs)

    def run(job: Job) -> tuple[AnalogyResult, str | None]:
        if job.hook == "fail":
            raise RuntimeError("test hook: forced failure inside the job")
        if job.hook == "memory_error":
            raise MemoryError("test hook")
        if job.hook == "hold":
            hold(job)
        pending.oom = job.hook == "cuda_oom"
        try:
            return runner(job)
        finally:
            pending.oom = False

    runner.analogy_fn = analogy_fn  # type: ignore[attr-defined]
    manager.runner = run


def hold(job: Job) -> None:
    """A job that runs until cancelled (or HOLD_SECONDS), polling like analogy()."""
    job.stage = "held by test hook"
    deadline = time.monotonic() + HOLD_SECONDS
    while time.monotonic() < deadline:
        if job.cancel_requested.is_set():
            raise Cancelled("cancelled")
        time.sleep(0.02)
