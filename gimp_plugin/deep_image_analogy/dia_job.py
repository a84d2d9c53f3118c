"""Running one job on the engine for the plug-in: submit, follow progress, fetch the results,
cancel on any failure. Standard library only.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from dia_engine import Notify
from dia_http import Engine, EngineError, RawImage, RawResult, failure_message

POLL_INTERVAL_S = 0.3
# The engine may be busy writing results or briefly unresponsive; only this many consecutive
# connection failures while polling mean that it died.
POLL_FAILURES = 6



def run_job(
    engine: Engine, a: RawImage, b_prime: RawImage, params: dict[str, Any], names: Iterable[str],
    notify: Notify | None = None,
) -> tuple[dict[str, RawResult], dict[str, Any]]:
    """Submit, follow progress, fetch every named result; cancel the job on any failure.

    Returns the results and the final job record (report, degraded). Polling also serves as the
    heartbeat: if this process is killed (GIMP's Cancel), the engine abandons the job by itself.
    """
    job_id = engine.submit(a, b_prime, params)
    finished = False
    try:
        info = wait_for(engine, job_id, notify)
        finished = True
        results = {}
        for name in names:
            if notify:
                notify(1.0, f"Deep Image Analogy: receiving {name}")
            results[name] = engine.result(job_id, name)
        return results, info
    finally:
        if not finished:
            engine.cancel(job_id)


def wait_for(engine: Engine, job_id: str, notify: Notify | None) -> dict[str, Any]:
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
            notify(float(info.get("progress") or 0.0), stage_text(info))
        if state == "done":
            return info
        if state == "failed":
            raise EngineError(failure_message(info.get("error")))
        if state == "cancelled":
            raise EngineError("The job was cancelled in the engine. Nothing was changed.")
        time.sleep(POLL_INTERVAL_S)


def stage_text(info: dict[str, Any]) -> str:
    stage = info.get("stage") or info.get("state") or ""
    if info.get("state") == "queued":
        stage = "waiting for the engine"
    elapsed = info.get("elapsed")
    # Time first: GIMP's status bar cuts long texts at the end.
    when = f" {float(elapsed):.0f} s" if isinstance(elapsed, (int, float)) else ""
    return f"Deep Image Analogy{when}: {stage}"
