"""Server settings, filled from the command line (see __main__.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def default_max_body() -> int:
    """Two raw RGBA images at the pixel limit plus room for the small fields: any input the
    engine accepts fits, so a plug-in never meets this limit with a valid request."""
    from analogy_engine.params import MAX_INPUT_PIXELS  # imports torch: only once really starting

    return 2 * MAX_INPUT_PIXELS * 4 + (1 << 20)


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
    test_hooks: bool = False  # DIA_TEST_HOOKS=1 only; enables the hidden `_test_hook` form field


def test_hooks_enabled() -> bool:
    return os.environ.get("DIA_TEST_HOOKS") == "1"
