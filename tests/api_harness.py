"""The HTTP API in this process: `create_app` over a real JobManager, served by uvicorn on a free
loopback port in a thread with the engine's own protocol guards, and a fake analogy function
instead of the model (no VGG, no torch work). It is a server_harness.EngineApi like the engine
process (the plug-in's client for well-formed calls, raw HTTP for the rest), so API, jobs,
bad-input and fuzz tests read alike in both tiers; what only a real process shows (start-up,
signals, the runtime file, file limits, the real algorithm) stays with server_harness.Engine."""

from __future__ import annotations

import dataclasses
import logging
import secrets
import socket
import threading
import time
from typing import Any

import numpy as np
import uvicorn
from server_harness import EngineApi

from analogy_engine import AnalogyParams, AnalogyResult, Cancelled
from server.__main__ import EngineServer
from server.app import create_app
from server.config import KEEP_ALIVE_SECONDS, ServerConfig
from server.jobs import JobManager
from server.protocol import GuardedH11Protocol


class FakePool:
    """EnginePool's face without a model: `get` hands out a placeholder."""

    def __init__(self, default_device: str = "cpu") -> None:
        self.default_device = default_device
        self.error: str | None = None
        self.loaded = True

    def get(self, device: str) -> object:
        return f"fake model on {device}"


class ModelPool:
    """EnginePool's face over one loaded model (the session's CPU `engine` fixture), for the
    in-process API running the real analogy function."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.default_device = "cpu"
        self.error: str | None = None
        self.loaded = True

    def get(self, device: str) -> Any:
        return self.model


class FakeAnalogy:
    """analogy()'s signature and contract (progress, cancel, result shapes) in a few milliseconds.

    A′ is B′'s mean colour over A's shape, B is A's mean colour over B′'s shape; flows are the
    identity scaled to the other image; `calls` records the params of every call."""

    def __init__(self, steps: int = 5, step_seconds: float = 0.0) -> None:
        self.steps = steps
        self.step_seconds = step_seconds
        self.calls: list[AnalogyParams] = []

    def __call__(self, a: np.ndarray, b_prime: np.ndarray, params: AnalogyParams, *, progress: Any = None,
                 cancel: Any = None, engine: Any = None) -> AnalogyResult:
        self.calls.append(params)
        for step in range(self.steps):
            if cancel is not None and cancel():
                raise Cancelled("cancelled")
            if progress is not None:
                progress(step / self.steps, f"fake step {step + 1}/{self.steps}")
            time.sleep(self.step_seconds)
        (ha, wa), (hb, wb) = a.shape[:2], b_prime.shape[:2]
        a_prime = np.broadcast_to(b_prime.reshape(-1, 3).mean(0).astype(np.uint8), (ha, wa, 3)).copy()
        b = np.broadcast_to(a.reshape(-1, 3).mean(0).astype(np.uint8), (hb, wb, 3)).copy()
        return AnalogyResult(
            a_prime=a_prime,
            b=b,
            flow_ab=flow(ha, wa, hb, wb),
            flow_ba=flow(hb, wb, ha, wa),
            confidence_a_prime=np.full((ha, wa), 0.5, np.float32),
            confidence_b=np.full((hb, wb), 0.5, np.float32),
            report={"fake": True, "size": [wa, ha]},
        )


def flow(h: int, w: int, to_h: int, to_w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([x * (to_w - 1) / max(1, w - 1), y * (to_h - 1) / max(1, h - 1)], axis=2)


class LogRecorder(logging.Handler):
    """The engine's log lines (its loggers, uvicorn's), formatted with tracebacks, as the
    process writes them to its log file; `InProcessApi.log()` reads them back."""

    LOGGERS = ("server", "uvicorn.error")

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []
        self.levels: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def attach(self) -> None:
        for name in self.LOGGERS:
            logger = logging.getLogger(name)
            self.levels[name] = logger.level
            logger.setLevel(logging.INFO)  # the engine logs at info by default (--log-level)
            logger.addHandler(self)

    def detach(self) -> None:
        for name, level in self.levels.items():
            logger = logging.getLogger(name)
            logger.removeHandler(self)
            logger.setLevel(level)


class InProcessApi(EngineApi):
    """The API over `analogy_fn` in this process; test hooks on unless `hooks=False`; `config`
    overrides ServerConfig fields (queue_size, max_body, header_timeout, …) as the engine's
    command-line options would."""

    def __init__(self, analogy_fn: Any, hooks: bool = True, pool: Any = None, **config: Any) -> None:
        super().__init__()
        self.config = dataclasses.replace(
            ServerConfig(device="cpu", lazy_model=True, max_body=64 << 20, test_hooks=hooks), **config
        )
        # `pool`: a real model for the jobs that need one; the fake one otherwise.
        self.manager = JobManager(self.config, pool or FakePool(), analogy_fn)  # type: ignore[arg-type]
        if hooks:
            from server import test_hooks

            test_hooks.install(self.manager)
        self.recorder = LogRecorder()
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> InProcessApi:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        token = secrets.token_urlsafe(32)
        stopping = threading.Event()
        app = create_app(self.config, self.manager, token=token, port=port, device="cpu", stopping=stopping)
        self.recorder.attach()  # before uvicorn.Config, which sets its loggers' levels
        # The uvicorn settings of server.__main__.serve, so that what the protocol layer does
        # (timeouts, the connection cap, JSON errors, no Server header) is the engine's.
        # EngineServer tells the app (`stopping`) when shutdown begins, as in the engine.
        self.server = EngineServer(uvicorn.Config(
            app, log_config=None, log_level="info", access_log=False, lifespan="off",
            proxy_headers=False, server_header=False, timeout_graceful_shutdown=3,
            timeout_keep_alive=KEEP_ALIVE_SECONDS, backlog=self.config.max_connections,
            http=GuardedH11Protocol.configured(self.config.header_timeout, self.config.max_connections),
        ), on_ready=lambda: None, stopping=stopping)
        self.manager.start()
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("in-process API did not start")
            time.sleep(0.01)
        self._connected({"port": port, "token": token, "url": f"http://127.0.0.1:{port}"})
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        """Like the engine's shutdown; 0 when the server thread and the worker both ended."""
        self.session.close()
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout)
        stopped = self.manager.shutdown(timeout)
        self.recorder.detach()
        alive = self.thread is not None and self.thread.is_alive()
        return 0 if stopped and not alive else 1

    def log(self) -> str:
        return "\n".join(self.recorder.lines)

    def __enter__(self) -> InProcessApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
