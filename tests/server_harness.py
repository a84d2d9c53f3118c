"""The one engine-process harness: `python -m server` on a free loopback port, and test images.

Used by tests/test_server_*.py directly and by the GIMP tests through tests/gimp/engine.py
(`EngineProcess`, the same process with the plug-in tests' conveniences)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import requests
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
FAST_PARAMS = {"size": 32, "preset": "fast", "seed": 3}


class Engine:
    """`python -m server` in a subprocess; requests go through a Session carrying the token."""

    def __init__(
        self,
        workdir: Path,
        *args: str,
        hooks: bool = False,
        env: dict[str, str] | None = None,
        preexec: Callable[[], None] | None = None,
        runtime_file: Path | None = None,
        log_path: Path | None = None,
        new_session: bool = False,
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.runtime_file = runtime_file or workdir / "engine.json"
        self.log_path = log_path or workdir / "engine.log"
        # Its own session (and process group), as the plug-in starts it: stop() signals the group.
        self.new_session = new_session
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.env.pop("DIA_TEST_HOOKS", None)
        if hooks:
            self.env["DIA_TEST_HOOKS"] = "1"
        self.preexec = preexec  # run in the child before exec (e.g. to lower a resource limit)
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self.session = requests.Session()

    def start(self, timeout: float = 60.0) -> Engine:
        cmd = [
            sys.executable,
            "-m",
            "server",
            "--runtime-file",
            str(self.runtime_file),
            "--port",
            "0",
            *self.args,
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=self.preexec,
                start_new_session=self.new_session,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited with {self.proc.returncode}:\n{self.log()}")
            # is_file: a FIFO or a link to a device planted there is not the engine's file.
            if self.runtime_file.is_file() and not self.runtime_file.is_symlink():
                info = json.loads(self.runtime_file.read_text())
                if info.get("pid") == self.proc.pid:  # not a file left or planted there before
                    self.info = info
                    self.session.headers["X-DIA-Token"] = self.info["token"]
                    return self
            time.sleep(0.05)
        self.proc.kill()  # do not leave it behind (e.g. hung at start)
        self.proc.wait()
        raise RuntimeError(f"engine did not start in {timeout} s:\n{self.log()}")

    @property
    def url(self) -> str:
        return self.info["url"]

    @property
    def port(self) -> int:
        return self.info["port"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 15.0) -> int | None:
        self.session.close()
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def signal(self, sig: int) -> None:
        """To the engine (its whole process group when it runs in its own session)."""
        assert self.proc is not None
        if self.new_session:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)

    # ---- HTTP helpers ----
    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.session.get(self.url + path, timeout=kw.pop("timeout", 30), **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.session.delete(self.url + path, timeout=kw.pop("timeout", 30), **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.session.post(self.url + path, timeout=kw.pop("timeout", 60), **kw)

    def submit(
        self,
        a: np.ndarray,
        b_prime: np.ndarray,
        params: dict | None = None,
        raw: bool = False,
        extra: dict[str, str] | None = None,
    ) -> requests.Response:
        return self.post("/v1/jobs", files=job_form(a, b_prime, params, raw, extra))

    def wait(
        self,
        job_id: str,
        timeout: float = 120.0,
        states: tuple[str, ...] = ("done", "failed", "cancelled"),
        interval: float = 0.05,
    ) -> tuple[dict[str, Any], list[float]]:
        """Poll until the job reaches one of `states`; returns the last status and every progress seen."""
        seen: list[float] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.get(f"/v1/jobs/{job_id}").json()
            seen.append(status["progress"])
            if status["state"] in states:
                return status, seen
            time.sleep(interval)
        raise AssertionError(f"job {job_id} not in {states} after {timeout} s: {status}")

    def wait_idle(self, timeout: float = 30.0) -> float:
        """Poll /v1/health (not a job heartbeat) until no job runs; returns seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            health = self.get("/v1/health").json()
            if health["running"] is None and health["queue_length"] == 0:
                return time.monotonic() - started
            time.sleep(0.02)
        raise AssertionError(f"engine still busy after {timeout} s")


def job_form(
    a: np.ndarray,
    b_prime: np.ndarray,
    params: dict | None = None,
    raw: bool = False,
    extra: dict[str, str] | None = None,
) -> list[tuple[str, Any]]:
    form: list[tuple[str, Any]] = []
    if params is not None:
        form.append(("params", (None, json.dumps(params))))
    for name, image in (("a", a), ("b_prime", b_prime)):
        if raw:
            rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=2)
            form.append((name, (f"{name}.rgba", rgba.tobytes(), "application/octet-stream")))
            form.append((f"{name}_width", (None, str(image.shape[1]))))
            form.append((f"{name}_height", (None, str(image.shape[0]))))
        else:
            form.append((name, (f"{name}.png", png_bytes(image), "image/png")))
    for key, value in (extra or {}).items():
        form.append((key, (None, value)))
    return form


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def make_pair(height: int = 40, width: int = 56, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A: smooth gradient with a disc and a bar; B′: the same scene recoloured, shifted, resized."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(seed)
    a = np.stack([x / width * 255, y / height * 255, (x + y) / (width + height) * 255], axis=2)
    disc = (x - width * 0.35) ** 2 + (y - height * 0.5) ** 2 < (min(height, width) * 0.22) ** 2
    a[disc] = (220, 40, 40)
    a[int(height * 0.7) : int(height * 0.8), int(width * 0.55) : int(width * 0.9)] = (30, 30, 200)
    a = np.clip(a + rng.normal(0, 3, a.shape), 0, 255).astype(np.uint8)
    b = np.roll(a[:, :, ::-1], (3, 5), axis=(0, 1))  # channels swapped, shifted
    b = np.asarray(Image.fromarray(b).resize((width - 8, height + 6), Image.BILINEAR))
    return a, np.ascontiguousarray(b)
