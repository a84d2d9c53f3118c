"""Job queue and job states, and the one worker thread that takes jobs off the queue.

One job runs at a time (one GPU). A job ends in exactly one of done/failed/cancelled; whatever
goes wrong inside it (exception, out of memory) ends that job only. Status polls are the client's
heartbeat: GIMP's Cancel kills the plug-in without a word, so a job nobody asks about is
cancelled after `abandon_after` seconds. Finished jobs are dropped after `keep_results` seconds.
Running one job through the engine, and turning what went wrong into a message, is `worker.py`.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analogy_engine import AnalogyParams, Guidance
from analogy_engine.contract import RESULT_PARTS

from .config import ServerConfig
from .engines import EnginePool
from .reports import jsonable
from .tasks import Output, Task
from .worker import AnalogyFn, Runner, classify

log = logging.getLogger("server.jobs")

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
RESULT_NAMES = RESULT_PARTS
# A job runs as `runner(job) -> (output, degraded)`; see worker.Runner.
RunJob = Callable[["Job"], "tuple[Output, str | None]"]


def new_id() -> str:
    return secrets.token_hex(16)


class QueueFull(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("queue full")
        self.retry_after = retry_after


class UnknownJob(KeyError):
    pass


@dataclass(eq=False)
class Job:
    """One job of any kind: an analogy (`a`, `b_prime`, `guidance`, run by worker.Runner with its
    out-of-memory fallback) or a `task` made by its route (painting, animation; tasks.py)."""

    id: str
    params: Any  # AnalogyParams, PaintParams: what the client asked for (to_json() for the log)
    device: str  # where it runs: "cpu" or "cuda"
    a: np.ndarray | None = None
    b_prime: np.ndarray | None = None
    guidance: Guidance | None = None  # region maps, structure mask, more references (guide.py)
    kind: str = "analogy"  # analogy | paint | animate
    task: Task | None = None
    # What the result route will serve once the job is done (known at submission: a name that
    # is not one of these is a 404 whatever the job's state).
    result_names: tuple[str, ...] = RESULT_PARTS
    inputs: str = ""  # the inputs in words, for the log
    hook: str | None = None  # a test hook's name (DIA_TEST_HOOKS=1 only; see test_hooks.py)
    state: str = QUEUED
    progress: float = 0.0
    stage: str = "queued"
    submitted: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    last_seen: float = field(default_factory=time.monotonic)
    error: str | None = None
    degraded: str | None = None
    result: Output | None = None
    report: dict[str, Any] | None = None
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    stopped: threading.Event = field(default_factory=threading.Event)  # the worker let go of it


class Reservation:
    """A queue slot held while an upload is read, so concurrent uploads cannot overfill the queue
    (and memory): the slot is taken before the body is read and given back if the upload fails."""

    def __init__(self, manager: JobManager) -> None:
        self.manager = manager
        self.active = True

    def release(self) -> None:
        if self.active:
            self.active = False
            self.manager._release()

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class JobManager:
    def __init__(self, config: ServerConfig, pool: EnginePool, analogy_fn: AnalogyFn) -> None:
        self.config = config
        self.pool = pool
        self.runner: RunJob = Runner(pool, analogy_fn)  # test_hooks.install() may wrap it
        self._cond = threading.Condition()
        self._jobs: dict[str, Job] = {}
        self._queue: deque[Job] = deque()
        self._finished: deque[Job] = deque()
        self._reserved = 0
        self._running: Job | None = None
        self._closing = False
        self._last_activity = time.monotonic()
        self._durations: deque[float] = deque(maxlen=8)
        self._threads: list[threading.Thread] = []

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        for target, name in ((self._work, "worker"), (self._housekeep, "housekeeper")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Cancel everything and wait for the worker; False if it is still inside a job."""
        with self._cond:
            jobs = [*self._queue, *([self._running] if self._running else [])]
        for job in jobs:
            self.cancel(job.id, "the engine is shutting down")
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    # ---- client side -----------------------------------------------------------------------
    def reserve(self) -> Reservation:
        with self._cond:
            if self._closing or len(self._queue) + self._reserved >= self.config.queue_size:
                raise QueueFull(self._retry_after())
            self._reserved += 1
            self._last_activity = time.monotonic()
            return Reservation(self)

    def _release(self) -> None:
        with self._cond:
            self._reserved -= 1
            self._last_activity = time.monotonic()

    def submit(
        self,
        reservation: Reservation,
        a: np.ndarray,
        b_prime: np.ndarray,
        params: AnalogyParams,
        device: str,
        hook: str | None = None,
    ) -> Job:
        """Queue an analogy of `a` and `b_prime`."""
        inputs = f"A {a.shape[1]}x{a.shape[0]}, B' {b_prime.shape[1]}x{b_prime.shape[0]}"
        job = Job(id=new_id(), params=params, device=device, a=a, b_prime=b_prime, inputs=inputs, hook=hook)
        return self.enqueue(reservation, job)

    def enqueue(self, reservation: Reservation, job: Job) -> Job:
        """Queue a job of any kind, taking over the reservation's queue slot."""
        with self._cond:
            reservation.release()  # re-entrant lock: the slot passes from reservation to job atomically
            self._jobs[job.id] = job
            self._queue.append(job)
            self._cond.notify_all()
        log.info(
            "%s job %s queued: %s, %s on %s%s",
            job.kind,
            job.id,
            job.inputs,
            job.params.to_json(),
            job.device,
            f", test hook {job.hook}" if job.hook else "",
        )
        return job

    def get(self, job_id: str, heartbeat: bool = True) -> Job:
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None:
                raise UnknownJob(job_id)
            if heartbeat:
                job.last_seen = time.monotonic()
            return job

    def cancel(self, job_id: str, reason: str = "cancelled by the client") -> Job:
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None:
                raise UnknownJob(job_id)
            if job.state in FINISHED:
                return job
            job.cancel_requested.set()
            was_queued = job.state == QUEUED
            if was_queued:
                self._queue.remove(job)
                job.stopped.set()
            # Marked cancelled at once: whatever the worker still produces is discarded.
            self._finish(job, CANCELLED, stage="cancelled", error=reason)
            self._cond.notify_all()
        log.info("job %s cancelled (%s)%s", job.id, reason, "" if was_queued else "; stopping the worker")
        return job

    def touch(self) -> None:
        self._last_activity = time.monotonic()

    def idle_seconds(self) -> float | None:
        """Seconds since the last request or job event; None while any job is queued or running."""
        with self._cond:
            if self._queue or self._running is not None or self._reserved:
                return None
            return time.monotonic() - self._last_activity

    def health(self) -> dict[str, Any]:
        with self._cond:
            return {
                "model_loaded": self.pool.loaded,
                "model_error": self.pool.error,
                "queue_length": len(self._queue),
                "uploads": self._reserved,  # uploads being received, each holding a queue slot
                "running": self._running.id if self._running is not None else None,
            }

    def status(self, job: Job) -> dict[str, Any]:
        with self._cond:
            now = time.monotonic()
            elapsed = 0.0 if job.started is None else (job.finished or now) - job.started
            position = None
            if job.state == QUEUED:
                position = next((i for i, queued in enumerate(self._queue) if queued is job), None)
            done = job.state == DONE
            return {
                "id": job.id,
                "state": job.state,
                "progress": round(job.progress, 4),
                "stage": job.stage,
                "elapsed": round(elapsed, 3),
                "error": job.error,
                "degraded": job.degraded,
                "results": list(job.result_names) if done else [],
                "report": job.report if done else None,
                "queue_position": position,
            }

    # ---- internals -------------------------------------------------------------------------
    def _retry_after(self) -> int:
        mean = sum(self._durations) / len(self._durations) if self._durations else 10.0
        return int(min(600, max(1, math.ceil(mean))))

    def _finish(self, job: Job, state: str, stage: str, error: str | None = None) -> None:
        """Caller holds the lock."""
        job.state = state
        job.stage = stage
        job.error = error
        job.finished = time.monotonic()
        if state == DONE:
            job.progress = 1.0
        job.a = job.b_prime = job.guidance = job.task = None  # inputs are not needed any more
        self._finished.append(job)
        self._last_activity = job.finished
        # Results are large (two float32 flows per job); failed and cancelled jobs are small, and
        # must not push out results a client is still about to fetch.
        for keep, limit in (
            (lambda j: j.state == DONE, self.config.max_finished),
            (lambda j: j.state != DONE, 64),
        ):
            group = [j for j in self._finished if keep(j)]
            for old in group[: max(0, len(group) - limit)]:
                self._forget(old)

    def _forget(self, job: Job) -> None:
        """Caller holds the lock."""
        if job in self._finished:
            self._finished.remove(job)
        self._jobs.pop(job.id, None)
        job.result = None

    def _housekeep(self) -> None:
        while True:
            time.sleep(0.2)
            now = time.monotonic()
            with self._cond:
                if self._closing:
                    return
                active = [*self._queue, *([self._running] if self._running else [])]
                expired = [j for j in self._finished if now - (j.finished or now) > self.config.keep_results]
                for job in expired:
                    self._forget(job)
                    log.info("job %s freed after %.0f s", job.id, self.config.keep_results)
            for job in active:
                if job.state in (QUEUED, RUNNING) and now - job.last_seen > self.config.abandon_after:
                    self.cancel(
                        job.id,
                        f"abandoned: no client asked about this job for {self.config.abandon_after:g} s",
                    )

    def _work(self) -> None:
        if not self.config.lazy_model:
            try:
                self.pool.get(self.pool.default_device)
            except Exception:
                log.exception("could not load the model on %s", self.pool.default_device)
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                job = self._queue.popleft()
                job.state = RUNNING
                job.stage = "starting"
                job.started = time.monotonic()
                self._running = job
            try:
                self._run(job)
            except BaseException:  # bookkeeping itself failed: fail the job, keep the worker
                log.exception("job %s: error after the run", job.id)
                with self._cond:
                    if job.state == RUNNING:
                        self._finish(job, FAILED, stage="failed", error="internal error after the run")
            finally:
                with self._cond:
                    self._running = None
                    job.stopped.set()
                    self._last_activity = time.monotonic()
                    self._cond.notify_all()

    def _run(self, job: Job) -> None:
        started = time.perf_counter()
        log.info("job %s started after %.1f s in the queue", job.id, (job.started or 0) - job.submitted)
        state, error, result = FAILED, None, None
        degraded: str | None = None
        try:
            result, degraded = self.runner(job)
            state = DONE
        except BaseException as exc:  # a job must never take the worker down with it
            outcome = classify(exc)
            state, error = (CANCELLED if outcome.cancelled else FAILED), outcome.error
            if outcome.crashed:
                log.error("job %s crashed", job.id, exc_info=exc)
        seconds = time.perf_counter() - started
        with self._cond:
            if job.state != RUNNING:  # cancelled (or abandoned) meanwhile: keep that outcome
                log.info(
                    "job %s stopped %.1f s after it was cancelled",
                    job.id,
                    time.monotonic() - (job.finished or 0),
                )
                return
            if state == DONE and result is not None:
                job.result = result
                job.degraded = degraded
                report = dict(result.report)
                report["server"] = {
                    "device": job.device,
                    "degraded": degraded,
                    "queue_seconds": round((job.started or 0) - job.submitted, 3),
                    "job_seconds": round(seconds, 3),
                }
                job.report = jsonable(report)
                self._durations.append(seconds)
                self._finish(job, DONE, stage="done")
            else:
                self._finish(job, state, stage=state, error=error)
        level = logging.INFO if state == DONE else logging.WARNING
        log.log(
            level,
            "job %s %s in %.2f s%s%s",
            job.id,
            state,
            seconds,
            f" ({error})" if error else "",
            f" [degraded: {degraded}]" if degraded else "",
        )
