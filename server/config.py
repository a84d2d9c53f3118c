"""Server settings, filled from the command line (see __main__.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from analogy_engine.contract import MAX_INPUT_PIXELS

# All the images of one analogy job together (A, B′, region maps, structure mask, more
# references): as many pixels as two images at the single-image limit, so a guided job costs
# the engine no more memory to receive and decode than the largest two-image job always did.
MAX_JOB_PIXELS = 2 * MAX_INPUT_PIXELS


def default_max_body() -> int:
    """A job's images as raw RGBA at the pixel limit plus room for the small fields: any input
    the engine accepts fits, so a plug-in never meets this limit with a valid request."""
    return MAX_JOB_PIXELS * 4 + (1 << 20)


@dataclass(frozen=True)
class ServerConfig:
    port: int = 0
    device: str = "auto"  # auto | cpu | cuda, as asked on the command line
    queue_size: int = 4  # jobs waiting behind the running one
    abandon_after: float = 30.0  # cancel a queued/running job nobody asked about for this long
    keep_results: float = 600.0  # seconds a finished job (and its results) stays fetchable
    max_finished: int = 4  # jobs whose results are kept at most; results are large (float32 flows)
    max_body: int = 512 << 20
    idle_exit: float | None = None
    parent_pid: int | None = None
    runtime_file: Path | None = None
    lazy_model: bool = False  # load the network on the first job instead of at start
    # Slow-client guards (see protocol.py and app.py): request line and headers must arrive within
    # header_timeout; an upload may pause at most body_timeout and must average BODY_MIN_RATE
    # beyond that; at most max_connections connections are open at once.
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 64
    test_hooks: bool = False  # DIA_TEST_HOOKS=1 only; enables the hidden `_test_hook` form field


BODY_MIN_RATE = 1 << 20  # bytes per second an upload must average beyond body_timeout
KEEP_ALIVE_SECONDS = 5  # an idle connection between requests is closed after this long


def test_hooks_enabled() -> bool:
    return os.environ.get("DIA_TEST_HOOKS") == "1"
