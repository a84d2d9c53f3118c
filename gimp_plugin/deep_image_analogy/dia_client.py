"""Client for the Deep Image Analogy engine (docs/http-api.md), standard library only.

Nothing here imports GIMP, so the same code runs in GIMP's Python and in host-side tests. The
client is three modules beside this one, re-exported here:

- `dia_http`: the HTTP API (`Engine`), `RawImage`/`RawResult`, `EngineError` and the messages;
- `dia_engine`: finding or starting the engine (runtime file, engine address, `connect`, `launch`);
- `dia_job`: running one job of any kind (`Job`, `analogy_job`, `paint_job`, `animate_job`,
  `run_job`, `wait_for`).

Every failure becomes `EngineError` whose message says what happened and what to do: the
plug-in shows it as is.
"""

from __future__ import annotations

import dia_engine  # noqa: F401  (the module, for tests that adjust its settings)
from dia_engine import (  # noqa: F401
    ENGINE_CONFIG,
    EXIT_ALREADY_RUNNING,
    LOOPBACK_HOSTS,
    START_TIMEOUT_S,
    Notify,
    connect,
    detach_kwargs,
    engine_from_runtime,
    flatpak_runtime_file,
    in_flatpak,
    launch,
    load_engine_config,
    log_tail,
    parse_address,
    read_runtime_file,
    runtime_file_path,
    start_hint,
)
from dia_http import (  # noqa: F401
    Engine,
    EngineError,
    RawImage,
    RawResult,
    failure_message,
    multipart,
    refusal_message,
)
from dia_job import (  # noqa: F401
    POLL_FAILURES,
    POLL_INTERVAL_S,
    Job,
    Results,
    analogy_job,
    animate_job,
    frame_name,
    paint_job,
    run_job,
    stage_text,
    wait_for,
    within,
)
