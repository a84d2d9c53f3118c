"""Shared fixtures and the test tiers (markers in pyproject.toml; README "Tests").

- `slow`: over about 20 s on 2 CPU cores, or an engine process / torch-importing CLI run of its
  own; `gimp`: inside a real GIMP; `gpu`: needs CUDA (skipped here without a CUDA device).
  Quick loop: `pytest -m "not slow and not gimp"`.
- `engine`: one model (VGG-19 loaded once) for the whole session, on the CPU unless
  DIA_TEST_DEVICE names another device (`DIA_TEST_DEVICE=cuda pytest -m slow …` runs the whole-engine
  tests on a GPU with the same thresholds); test files that define their own `engine` fixture
  (the in-process API, an engine process) use theirs.
- `engine_process`: one real `python -m server` for the whole session, started on first use
  (tests/gimp/engine.py's EngineProcess: model loaded, no test hooks, its own session as the
  plug-in starts it), shared by the tests that only need a process to talk to (wiring, a real
  job); tests that end or configure a process start their own (tests/server_harness.py).
- Every engine under test (server_harness.EngineApi) speaks through the plug-in's own engine
  client (tests/plugin_client.py loads it).
- `fake_analogy`, `api`: the HTTP application in this process (server.app.create_app over a
  real JobManager, served as the engine serves it) with a fake analogy function, for API, jobs,
  bad-input and defect tests that need no model (tests/api_harness.py).
- CLI tests run `main(argv)` in this process through tests/cli_runner.py.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def engine() -> Any:
    """The model on the CPU (or DIA_TEST_DEVICE), loaded once per session (analogy_engine.Engine)."""
    import os

    from analogy_engine import Engine

    return Engine.load(os.environ.get("DIA_TEST_DEVICE", "cpu"))


@pytest.fixture(scope="session")
def engine_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The session's engine process: tests/gimp/engine.py's EngineProcess (a server_harness.Engine
    in its own session), the very class the real-GIMP tests use, so the host tiers keep it working."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "gimp"))
    from engine import EngineProcess

    folder = tmp_path_factory.mktemp("engine-process")
    # Its own session as the plug-in starts it; imports torch and loads VGG-19 before it publishes.
    server = EngineProcess(folder / "engine.json", folder / "engine.log")
    yield server
    assert server.stop() == 0, server.log()  # SIGTERM to its process group: a clean exit
    assert not server.runtime_file.exists(), "the engine left its runtime file behind"


@pytest.fixture
def fake_analogy() -> Any:
    from api_harness import FakeAnalogy

    return FakeAnalogy()


@pytest.fixture
def api(tmp_path: Any, fake_analogy: Any) -> Iterator[Any]:
    """The API in this process over a fake analogy function, test hooks enabled."""
    from api_harness import InProcessApi

    with InProcessApi(fake_analogy) as app:
        yield app
