"""The one engine-process harness: `python -m server` on a free loopback port, and test images.

Every engine under test (this process-backed `Engine`, and api_harness.InProcessApi, the API in
the test process) is an `EngineApi`: well-formed operations (health, submit, status, wait, results,
cancel, a whole job) go through the plug-in's own client (gimp_plugin/deep_image_analogy/dia_client.py,
loaded by tests/plugin_client.py), so the tests exercise the code GIMP runs; raw HTTP over a
`requests` session (get/post/delete/submit) stays for what the plug-in cannot send: PNG uploads,
hidden test-hook fields, wrong headers and malformed forms.

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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import requests
from PIL import Image
from plugin_client import load_plugin_client

REPO = Path(__file__).resolve().parents[1]
FAST_PARAMS = {"size": 32, "preset": "fast", "seed": 3}
# What the plug-in fetches (raw 8-bit); flows are float32 and only come as .npy or raw floats.
IMAGE_RESULTS = ("a_prime", "b", "mask_a_prime", "mask_b")
FINAL_STATES = ("done", "failed", "cancelled")

dia_client = load_plugin_client()


def raw_image(image: np.ndarray) -> Any:
    """(H, W, 3) or (H, W, 4) uint8 → the plug-in's RawImage (RGBA rows; opaque if no alpha)."""
    if image.shape[2] == 3:
        image = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return dia_client.RawImage(image.shape[1], image.shape[0], np.ascontiguousarray(image).tobytes())


def raw_array(result: Any) -> np.ndarray:
    """The plug-in's RawResult → (H, W, C) uint8, or (H, W) for a one-channel mask."""
    array = np.frombuffer(result.data, np.uint8).reshape(result.height, result.width, result.channels)
    return array[..., 0] if result.channels == 1 else array


class EngineApi:
    """An engine that answers on 127.0.0.1: the plug-in's client for what the plug-in does, a
    token-carrying `requests` session for raw HTTP. Subclasses call `_connected(info)` once
    the engine listens (info: port, token, url as in the runtime file)."""

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}
        self.session = requests.Session()
        self.client: Any = None  # dia_client.Engine, once connected

    def _connected(self, info: dict[str, Any]) -> None:
        self.info = info
        self.session.headers["X-DIA-Token"] = info["token"]
        self.client = dia_client.Engine(info["url"], info["token"])

    @property
    def url(self) -> str:
        return self.info["url"]

    @property
    def port(self) -> int:
        return self.info["port"]

    @property
    def token(self) -> str:
        return self.info["token"]

    # ---- through the plug-in's client ----
    def health(self) -> dict[str, Any] | None:
        """The health record, or None when the engine does not answer (the plug-in's test)."""
        return self.client.health()

    def job(self, a: np.ndarray, b_prime: np.ndarray, params: dict[str, Any] | None = None) -> str:
        """Submit as the plug-in does (raw RGBA); the job's id. A refusal raises EngineError."""
        return self.client.submit(raw_image(a), raw_image(b_prime), params or {})

    def status(self, job_id: str) -> dict[str, Any]:
        return self.client.status(job_id)

    def result(self, job_id: str, name: str) -> np.ndarray:
        """An image or mask result as the plug-in receives it (raw, size checked)."""
        return raw_array(self.client.result(job_id, name))

    def cancel(self, job_id: str) -> None:
        self.client.cancel(job_id)

    def run(
        self,
        a: np.ndarray,
        b_prime: np.ndarray,
        params: dict[str, Any],
        names: Iterable[str] = IMAGE_RESULTS,
    ) -> dict[str, Any]:
        """A whole analogy through the plug-in's own `run_job` (submit, poll, fetch, cancel on any
        failure): each named result as an array (images H×W×3, masks H×W), and under "status"
        the final job record."""
        job = dia_client.analogy_job(raw_image(a), raw_image(b_prime), params, names)
        results, info = dia_client.run_job(self.client, job)
        arrays: dict[str, Any] = {name: raw_array(result) for name, result in results.items()}
        arrays["status"] = info
        return arrays

    def paint(self, image: np.ndarray, params: dict[str, Any]) -> tuple[np.ndarray, str]:
        """A painting job through the plug-in's client: the painting (H×W×3) and strokes.svg."""
        results, _ = dia_client.run_job(self.client, dia_client.paint_job(raw_image(image), params))
        return raw_array(results["painting"]), results["strokes"]

    def animate(
        self, b_prime: np.ndarray, frames: list[np.ndarray], params: dict[str, Any]
    ) -> list[np.ndarray]:
        """An animation job through the plug-in's client: the stylised frames (H×W×3 each)."""
        job = dia_client.animate_job(raw_image(b_prime), [raw_image(f) for f in frames], params)
        results, _ = dia_client.run_job(self.client, job)
        return [raw_array(results[dia_client.frame_name(i)]) for i in range(1, len(frames) + 1)]

    def wait(
        self,
        job_id: str,
        timeout: float = 120.0,
        states: tuple[str, ...] = FINAL_STATES,
        interval: float = 0.05,
    ) -> tuple[dict[str, Any], list[float]]:
        """Poll (the plug-in's status call, faster than its 0.3 s) until the job reaches one of
        `states`; returns the last status and every progress seen."""
        seen: list[float] = []
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = self.status(job_id)
            seen.append(status["progress"])
            if status["state"] in states:
                return status, seen
            time.sleep(interval)
        raise AssertionError(f"job {job_id} not in {states} after {timeout} s: {status}")

    def wait_idle(self, timeout: float = 30.0) -> float:
        """Poll the health record (not a job heartbeat) until no job runs; seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            health = self.health()
            assert health is not None, "the engine stopped answering"
            if health["running"] is None and health["queue_length"] == 0:
                return time.monotonic() - started
            time.sleep(0.02)
        raise AssertionError(f"engine still busy after {timeout} s")

    # ---- raw HTTP, for what the plug-in never sends ----
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
        """POST /v1/jobs by hand: PNG (or raw) parts and any extra form field (`_test_hook`)."""
        return self.post("/v1/jobs", files=job_form(a, b_prime, params, raw, extra))

    def log(self) -> str:
        return ""


class Engine(EngineApi):
    """`python -m server` in a subprocess."""

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
        super().__init__()
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
            # Read as the plug-in reads it (a FIFO, a link or a shared file is not the engine's).
            info = dia_client.read_runtime_file(self.runtime_file)
            if info is not None and info.get("pid") == self.proc.pid:  # not one left or planted
                self._connected(info)
                return self
            time.sleep(0.05)
        self.proc.kill()  # do not leave it behind (e.g. hung at start)
        self.proc.wait()
        raise RuntimeError(f"engine did not start in {timeout} s:\n{self.log()}")

    def attach(self, info: dict[str, Any]) -> Engine:
        """Talk to an engine started some other way (info as in its runtime file)."""
        self._connected(info)
        return self

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
