"""The loaded VGG-19 per device, owned by the worker thread; loaded once and reused."""

from __future__ import annotations

import logging
import threading
import time

import torch

from analogy_engine import Engine

log = logging.getLogger("server.engines")


def resolve_device(name: str) -> str:
    """auto|cpu|cuda → cpu|cuda; ValueError when CUDA is asked for but absent."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but PyTorch sees no CUDA GPU here; use auto or cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda (got {name!r})")
    return name


class EnginePool:
    def __init__(self, default_device: str) -> None:
        self.default_device = default_device
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()
        self.error: str | None = None

    @property
    def loaded(self) -> bool:
        return self.default_device in self._engines

    def get(self, device: str) -> Engine:
        with self._lock:
            engine = self._engines.get(device)
            if engine is None:
                started = time.perf_counter()
                try:
                    engine = Engine.load(device)
                except Exception as error:
                    if device == self.default_device:
                        self.error = f"{type(error).__name__}: {error}"
                    raise
                self._engines[device] = engine
                if device == self.default_device:
                    self.error = None
                log.info("model loaded on %s in %.1f s", engine.device, time.perf_counter() - started)
            return engine
