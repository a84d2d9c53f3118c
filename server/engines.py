"""The loaded VGG-19 per device, owned by the worker thread; loaded once and reused."""

from __future__ import annotations

import logging
import threading
import time

from analogy_engine import Engine
from analogy_engine.devices import resolve_device as engine_device

log = logging.getLogger("server.engines")


def resolve_device(name: str) -> str:
    """auto|cpu|cuda → cpu|cuda, by the engine's own rule; ValueError (ParamsError) when CUDA is
    asked for but absent or the name is unknown."""
    return engine_device(name).type


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
