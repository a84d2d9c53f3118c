"""Running one job on the engine for the plug-in: submit, follow progress, fetch the results,
cancel on any failure. One `run_job` for every kind (analogy, painting, animation): a `Job` says
where it goes and what comes back. Standard library only.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dia_contract import frame_name, frame_part
from dia_engine import Notify
from dia_http import Engine, EngineError, RawImage, RawResult, failure_message

POLL_INTERVAL_S = 0.3
# The engine may be busy writing results or briefly unresponsive; only this many consecutive
# connection failures while polling mean that it died.
POLL_FAILURES = 6

# A job's results: images as RawResult, text results (strokes.svg) as str.
Results = dict[str, RawResult | str]


@dataclass(frozen=True)
class Job:
    """One engine job: the route it is posted to, its images by form-part name, its params, and
    what to fetch when it is done (`names` as raw images, `texts` as text)."""

    route: str
    images: tuple[tuple[str, RawImage], ...]
    params: dict[str, Any]
    names: tuple[str, ...]
    texts: tuple[str, ...] = ()
    label: str = "Deep Image Analogy"  # the progress text's prefix


def analogy_job(a: RawImage, b_prime: RawImage, params: dict[str, Any], names: Iterable[str],
                guidance: Iterable[tuple[str, RawImage]] = ()) -> Job:
    """POST /v1/jobs: A′, B and masks, as `names` asks; `guidance` adds image parts by name (region
    maps, the structure mask, more references: dia_contract's GUIDE_PARTS, reference_part, …)."""
    return Job("/v1/jobs", (("a", a), ("b_prime", b_prime), *guidance), params, tuple(names))


def paint_job(image: RawImage, params: dict[str, Any], style: RawImage | None = None) -> Job:
    """POST /v1/paint: the painting (an image) and its strokes (SVG text)."""
    images = (("image", image),) + ((("style", style),) if style is not None else ())
    return Job("/v1/paint", images, params, ("painting",), ("strokes",), "Painting")


def animate_job(b_prime: RawImage, frames: list[RawImage], params: dict[str, Any]) -> Job:
    """POST /v1/animate: one stylised frame a frame, in order (frame_1 = the first)."""
    parts = tuple((frame_part(i), frame) for i, frame in enumerate(frames, start=1))
    names = tuple(frame_name(i) for i in range(1, len(frames) + 1))
    return Job("/v1/animate", (("b_prime", b_prime), *parts), params, names, label="Animation")


def within(notify: Notify | None, start: float, end: float) -> Notify | None:
    """`notify` for one part of a longer run: the job's 0..1 lands on start..end of the bar."""
    if notify is None:
        return None

    def scaled(fraction: float | None, text: str) -> None:
        notify(None if fraction is None else start + (end - start) * fraction, text)

    return scaled


def run_job(engine: Engine, job: Job, notify: Notify | None = None) -> tuple[Results, dict[str, Any]]:
    """Submit, follow progress, fetch every named result; cancel the job on any failure.

    Returns the results and the final job record (report, degraded). Polling also serves as the
    heartbeat: if this process is killed (GIMP's Cancel), the engine abandons the job by itself.
    """
    job_id = engine.submit_to(job.route, job.images, job.params)
    finished = False
    try:
        info = wait_for(engine, job_id, notify, job.label)
        results: Results = {}
        wanted = [(name, False) for name in job.names] + [(name, True) for name in job.texts]
        for count, (name, text) in enumerate(wanted, start=1):
            if notify:
                notify(1.0, f"{job.label}: receiving {name} ({count}/{len(wanted)})")
            results[name] = engine.text(job_id, name) if text else engine.result(job_id, name)
        finished = True
        return results, info
    finally:
        if not finished:
            engine.cancel(job_id)


def wait_for(engine: Engine, job_id: str, notify: Notify | None,
             label: str = "Deep Image Analogy") -> dict[str, Any]:
    failures = 0
    while True:
        try:
            info = engine.status(job_id)
            failures = 0
        except OSError as err:
            failures += 1
            if failures >= POLL_FAILURES:
                raise EngineError(f"The engine stopped answering during the job ({err}); it may "
                                  "have crashed or been closed. Nothing was changed; run the filter "
                                  "again.") from err
            time.sleep(POLL_INTERVAL_S)
            continue
        state = info.get("state")
        if notify:
            notify(float(info.get("progress") or 0.0), stage_text(info, label))
        if state == "done":
            return info
        if state == "failed":
            raise EngineError(failure_message(info.get("error")))
        if state == "cancelled":
            raise EngineError("The job was cancelled in the engine. Nothing was changed.")
        time.sleep(POLL_INTERVAL_S)


def stage_text(info: dict[str, Any], label: str = "Deep Image Analogy") -> str:
    stage = info.get("stage") or info.get("state") or ""
    if info.get("state") == "queued":
        stage = "waiting for the engine"
    elapsed = info.get("elapsed")
    # Time first: GIMP's status bar cuts long texts at the end.
    when = f" {float(elapsed):.0f} s" if isinstance(elapsed, (int, float)) else ""
    return f"{label}{when}: {stage}"
