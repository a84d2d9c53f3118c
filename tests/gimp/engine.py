"""The real engine (`python -m server`) for the plug-in tests: tests/server_harness.py's `Engine`
(the one engine-process harness) with what these tests use: its runtime file, health, a whole
job as arrays, and a kill as a crash would do it."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO / "tests"))
from server_harness import Engine  # noqa: E402


class EngineProcess(Engine):
    """One engine on 127.0.0.1 publishing its runtime file at `runtime`, in its own session."""

    def __init__(self, runtime: Path, log: Path, start_timeout: float = 180.0) -> None:
        super().__init__(runtime.parent, runtime_file=runtime, log_path=log, new_session=True)
        self.start(start_timeout)

    @property
    def runtime(self) -> Path:
        return self.runtime_file

    @property
    def token(self) -> str:
        return self.info["token"]

    def health(self) -> dict[str, Any] | None:
        try:
            r = self.get("/v1/health", timeout=3)
        except requests.RequestException:
            return None
        return r.json() if r.status_code == 200 else None

    def job(self, route: str, images: dict[str, np.ndarray], params: dict[str, Any],
            timeout: float = 600) -> str:
        """Post raw RGBA `images` (form part → H×W×4) and params to `route`; the finished job's id."""
        files = {name: (f"{name}.rgba", array.tobytes(), "application/octet-stream")
                 for name, array in images.items()}
        data: dict[str, Any] = {"params": json.dumps(params)}
        for name, array in images.items():
            data[f"{name}_width"], data[f"{name}_height"] = array.shape[1], array.shape[0]
        r = self.post(route, files=files, data=data)
        assert r.status_code == 201, r.text
        job = r.json()["id"]
        end = time.monotonic() + timeout
        while True:
            state = self.get(f"/v1/jobs/{job}", timeout=10).json()
            if state["state"] == "done":
                return job
            assert state["state"] in ("queued", "running"), state
            assert time.monotonic() < end, "engine job timed out"
            time.sleep(0.2)

    def raw(self, job: str, name: str) -> np.ndarray:
        """A result as an array (images H×W×3, masks H×W)."""
        r = self.get(f"/v1/jobs/{job}/result/{name}", params={"format": "raw"})
        assert r.status_code == 200, r.text
        shape = (int(r.headers["X-Height"]), int(r.headers["X-Width"]), int(r.headers["X-Channels"]))
        array = np.frombuffer(r.content, np.uint8).reshape(shape)
        return array[..., 0] if shape[2] == 1 else array

    def run(self, a: np.ndarray, b_prime: np.ndarray, params: dict[str, Any],
            timeout: float = 600) -> dict[str, np.ndarray]:
        """The engine's analogy results for raw RGBA inputs, as arrays (images H×W×3, masks H×W)."""
        job = self.job("/v1/jobs", {"a": a, "b_prime": b_prime}, params, timeout)
        return {name: self.raw(job, name) for name in ("a_prime", "b", "mask_a_prime", "mask_b")}

    def paint(self, image: np.ndarray, params: dict[str, Any]) -> tuple[np.ndarray, str]:
        """The engine's painting (H×W×3) and strokes.svg for an RGBA image."""
        job = self.job("/v1/paint", {"image": image}, params)
        r = self.get(f"/v1/jobs/{job}/result/strokes")
        assert r.status_code == 200, r.text
        return self.raw(job, "painting"), r.text

    def animate(self, b_prime: np.ndarray, frames: list[np.ndarray],
                params: dict[str, Any]) -> list[np.ndarray]:
        """The engine's stylised frames (H×W×3 each) for RGBA frames."""
        images = {"b_prime": b_prime} | {f"frame_{i}": f for i, f in enumerate(frames, start=1)}
        job = self.job("/v1/animate", images, params)
        return [self.raw(job, f"frame_{i:04d}") for i in range(1, len(frames) + 1)]

    def kill(self) -> None:
        """As a crash would: no cleanup, no goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGKILL)
            self.proc.wait(10)
