"""The HTTP API in this process: `create_app` over a real JobManager, served by uvicorn on a free
loopback port in a thread, with a fake analogy function instead of the model (no VGG, no torch
work). Same HTTP helpers as the engine-process harness (server_harness.Engine), so API, jobs and
bad-input tests read alike in both tiers; what only a real process shows (start-up, signals, the
runtime file, the real algorithm) stays with server_harness."""

from __future__ import annotations

import dataclasses
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from server_harness import Engine

from analogy_engine import AnalogyParams, AnalogyResult, Cancelled
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


class InProcessApi(Engine):
    """The API over `analogy_fn` in this process; test hooks on unless `hooks=False`."""

    def __init__(self, analogy_fn: Any, hooks: bool = True, pool: Any = None, **config: Any) -> None:
        super().__init__(Path("."))
        self.config = dataclasses.replace(
            ServerConfig(device="cpu", lazy_model=True, max_body=64 << 20, test_hooks=hooks), **config
        )
        # `pool`: a real model for the jobs that need one (animation); the fake one otherwise.
        self.manager = JobManager(self.config, pool or FakePool(), analogy_fn)  # type: ignore[arg-type]
        if hooks:
            from server import test_hooks

            test_hooks.install(self.manager)
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> InProcessApi:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        token = secrets.token_urlsafe(16)
        stopping = threading.Event()
        app = create_app(self.config, self.manager, token=token, port=port, device="cpu", stopping=stopping)
        self.server = uvicorn.Server(uvicorn.Config(
            app, log_config=None, log_level="warning", access_log=False, lifespan="off",
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            http=GuardedH11Protocol.configured(self.config.header_timeout, self.config.max_connections),
        ))
        self.manager.start()
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("in-process API did not start")
            time.sleep(0.01)
        self.info = {"port": port, "token": token, "url": f"http://127.0.0.1:{port}"}
        self.session.headers["X-DIA-Token"] = token
        return self

    def stop(self, timeout: float = 15.0) -> int | None:
        self.session.close()
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout)
        self.manager.shutdown(timeout)
        return 0

    def log(self) -> str:
        return ""

    def __enter__(self) -> InProcessApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
