"""Running one job through the engine, and what went wrong in words.

`Runner` is what the worker thread (jobs.JobManager) calls for each job: it takes the model for
the job's device from the pool and runs the analogy function with progress and cancellation
wired to the job, through the out-of-memory fallback (fallback.py) — or, for the other kinds of
job, the job's task (tasks.py) with the same progress and cancellation. `classify` turns whatever a
job raised into its final state and the message a client sees.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from analogy_engine import AnalogyResult, Cancelled, InputError, ParamsError

from .engines import EnginePool
from .fallback import Attempt, run_with_fallback
from .tasks import AnalogyOutput, Context, Output

if TYPE_CHECKING:
    from .jobs import Job

# How PyTorch's CPU allocator words an allocation failure (a RuntimeError, not MemoryError).
OOM_MESSAGES = ("can't allocate memory", "out of memory", "not enough memory")

AnalogyFn = Callable[..., AnalogyResult]


class ModelLoadError(RuntimeError):
    pass


class Outcome(NamedTuple):
    cancelled: bool  # True: the job ends cancelled, else failed
    error: str
    crashed: bool  # an unexpected error, worth a traceback in the log


def classify(exc: BaseException) -> Outcome:
    """The end of a job that raised `exc`."""
    if isinstance(exc, Cancelled):
        return Outcome(True, "cancelled", False)
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return Outcome(False, "out of GPU memory even after falling back; try a smaller working size", False)
    if isinstance(exc, MemoryError):
        return Outcome(False, "out of memory; try a smaller working size or the fast preset", False)
    if isinstance(exc, (InputError, ParamsError, ModelLoadError)):
        return Outcome(False, str(exc), False)
    if isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in OOM_MESSAGES):
        return Outcome(False, f"out of memory: {str(exc).splitlines()[0][:300]}", False)
    return Outcome(False, f"internal error: {type(exc).__name__}: {str(exc)[:500]}", True)


class Runner:
    """`runner(job) -> (output, degraded)`: one job through the engine, on the worker thread."""

    def __init__(self, pool: EnginePool, analogy_fn: AnalogyFn) -> None:
        self.pool = pool
        self.analogy_fn = analogy_fn

    def __call__(self, job: Job) -> tuple[Output, str | None]:
        def cancel() -> bool:
            return job.cancel_requested.is_set()

        def progress(fraction: float, stage: str) -> None:
            if cancel():
                raise Cancelled("cancelled")
            try:
                value = float(fraction)
            except (TypeError, ValueError):
                value = job.progress
            if math.isfinite(value):
                # Monotonic for the client's progress bar, even across an out-of-memory retry.
                job.progress = max(job.progress, min(1.0, max(0.0, value)))
            job.stage = str(stage)[:200]

        if job.task is not None:
            return job.task(Context(job.device, self.engine, progress, cancel)), None

        def on_retry(attempt: Attempt) -> None:
            job.stage = f"retrying: {attempt.degraded}"

        # Only a guided job passes `guidance`, so the analogy function of a plain one is called
        # exactly as before guidance existed.
        guided = {"guidance": job.guidance} if job.guidance is not None else {}

        def run(attempt: Attempt) -> AnalogyResult:
            engine = self.engine(attempt.device)
            assert job.a is not None and job.b_prime is not None
            return self.analogy_fn(
                job.a, job.b_prime, attempt.params, progress=progress, cancel=cancel, engine=engine, **guided
            )

        images = [job.a, job.b_prime, *(job.guidance.references if job.guidance is not None else [])]
        shapes = [image.shape[:2] for image in images if image is not None]
        result, degraded = run_with_fallback(run, job.params, job.device, shapes, on_retry=on_retry)
        return AnalogyOutput(result), degraded

    def engine(self, device: str) -> Any:
        try:
            return self.pool.get(device)
        except Exception as error:
            raise ModelLoadError(f"could not load the model on {device}: {error}") from error
