"""The real engine (`python -m server`) for tests: start, call with requests, stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

REPO = Path(__file__).resolve().parent.parent.parent


class EngineProcess:
    """One engine on 127.0.0.1 publishing its runtime file at `runtime`."""

    def __init__(self, runtime: Path, log: Path, start_timeout: float = 180.0) -> None:
        self.runtime = runtime
        self.log_path = log
        env = {**os.environ, "DIA_RUNTIME_FILE": str(runtime)}
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "server", "--port", "0"], cwd=REPO, env=env,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        end = time.monotonic() + start_timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited with {self.proc.returncode}: {self.log()}")
            info = self.info()
            if info and self.health(info) is not None:
                self.url = f"http://127.0.0.1:{info['port']}"
                self.token = info["token"]
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"engine did not start in {start_timeout} s: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def info(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.runtime.read_text())
        except (OSError, ValueError):
            return None

    def health(self, info: dict[str, Any] | None = None) -> dict[str, Any] | None:
        info = info or self.info()
        try:
            r = requests.get(f"http://127.0.0.1:{info['port']}/v1/health",
                             headers={"X-DIA-Token": info["token"]}, timeout=3)
        except (requests.RequestException, TypeError, KeyError):
            return None
        return r.json() if r.status_code == 200 else None

    def run(self, a: np.ndarray, b_prime: np.ndarray, params: dict[str, Any],
            timeout: float = 600) -> dict[str, np.ndarray]:
        """The engine's results for raw RGBA inputs, as arrays (images H×W×3, masks H×W)."""
        headers = {"X-DIA-Token": self.token}
        files = {
            "a": ("a.rgba", a.tobytes(), "application/octet-stream"),
            "b_prime": ("b_prime.rgba", b_prime.tobytes(), "application/octet-stream"),
        }
        data = {"params": json.dumps(params), "a_width": a.shape[1], "a_height": a.shape[0],
                "b_prime_width": b_prime.shape[1], "b_prime_height": b_prime.shape[0]}
        r = requests.post(f"{self.url}/v1/jobs", files=files, data=data, headers=headers, timeout=60)
        assert r.status_code == 201, r.text
        job = r.json()["id"]
        end = time.monotonic() + timeout
        while True:
            state = requests.get(f"{self.url}/v1/jobs/{job}", headers=headers, timeout=10).json()
            if state["state"] == "done":
                break
            assert state["state"] in ("queued", "running"), state
            assert time.monotonic() < end, "engine job timed out"
            time.sleep(0.2)
        results = {}
        for name in ("a_prime", "b", "mask_a_prime", "mask_b"):
            r = requests.get(f"{self.url}/v1/jobs/{job}/result/{name}", params={"format": "raw"},
                             headers=headers, timeout=60)
            assert r.status_code == 200, r.text
            shape = (int(r.headers["X-Height"]), int(r.headers["X-Width"]), int(r.headers["X-Channels"]))
            array = np.frombuffer(r.content, np.uint8).reshape(shape)
            results[name] = array[..., 0] if shape[2] == 1 else array
        return results

    def kill(self) -> None:
        """As a crash would: no cleanup, no goodbye."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
