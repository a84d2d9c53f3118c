"""HTTP client for the Deep Image Analogy engine (docs/http-api.md), standard library only.

Nothing here imports GIMP, so the same code runs in GIMP's Python and in host-side tests.
Every failure becomes `EngineError` whose message says what happened and what to do: the
plug-in shows it as is.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# notify(fraction or None for "busy", text): the plug-in maps it onto GIMP's progress bar.
Notify = Callable[[float | None, str], None]

ENGINE_CONFIG = Path(__file__).resolve().with_name("engine.json")  # written by install.sh
START_TIMEOUT_S = 180.0  # first start imports torch and loads VGG-19 weights
POLL_INTERVAL_S = 0.3
# The engine may be busy writing results or briefly unresponsive; only this many consecutive
# connection failures while polling mean that it died.
POLL_FAILURES = 6
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
RUNTIME_FILE_MAX = 4096  # a real runtime file is about 150 bytes
EXIT_ALREADY_RUNNING = 3  # the engine's exit code when another engine owns the runtime file


class EngineError(Exception):
    """A failure explained for the user: cause and what to do."""


@dataclass(frozen=True)
class RawImage:
    """8-bit RGBA rows, top to bottom."""

    width: int
    height: int
    rgba: bytes


@dataclass(frozen=True)
class RawResult:
    width: int
    height: int
    channels: int
    data: bytes


def runtime_file_path(env: dict[str, str] | None = None) -> Path:
    """Where the engine publishes its port and token (docs/http-api.md), seen from this process."""
    env = dict(os.environ) if env is None else env
    if env.get("DIA_RUNTIME_FILE"):
        return Path(env["DIA_RUNTIME_FILE"]).expanduser()
    if sys.platform == "win32":
        base = env.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "deep-image-analogy" / "engine.json"
    if in_flatpak(env):
        # The sandbox has its own private XDG_RUNTIME_DIR and ~/.cache; this folder is the
        # same path inside and outside, so an engine started on the host can publish here.
        return flatpak_runtime_file(env)
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "deep-image-analogy" / "engine.json"
    return Path.home() / ".cache" / "deep-image-analogy" / "engine.json"


def in_flatpak(env: dict[str, str] | None = None) -> bool:
    env = dict(os.environ) if env is None else env
    return bool(env.get("FLATPAK_ID")) or os.path.exists("/.flatpak-info")


def flatpak_runtime_file(env: dict[str, str]) -> Path:
    app = env.get("FLATPAK_ID") or "org.gimp.GIMP"
    return Path.home() / ".var" / "app" / app / "cache" / "deep-image-analogy" / "engine.json"


def read_runtime_file(path: Path) -> dict[str, Any] | None:
    """The engine's port and token, from a file we can trust (as the engine checks it): a
    regular file, not a symbolic link, owned by this user, private (no group or other
    permissions) and small. Opened without blocking, so a FIFO there cannot hang GIMP."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        if hasattr(os, "geteuid") and (st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) & 0o077):
            return None
        data = os.read(fd, RUNTIME_FILE_MAX + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    if len(data) > RUNTIME_FILE_MAX:
        return None
    try:
        info = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("port"), int) or not info.get("token"):
        return None
    return info


class Engine:
    """One engine at `url` (http://127.0.0.1:PORT), authenticated with its launch token."""

    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        # Never through a proxy: http_proxy in GIMP's environment must not capture loopback
        # traffic (and the token with it).
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
        timeout: float | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body; 4xx answers are returned, connection problems raise OSError."""
        req = urllib.request.Request(self.url + path, data=body, method=method)
        req.add_header("X-DIA-Token", self.token)
        if content_type:
            req.add_header("Content-Type", content_type)
        try:
            with self._opener.open(req, timeout=timeout or self.timeout) as resp:
                return resp.status, dict(resp.headers.items()), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers.items()), err.read()

    def json(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        status, _headers, body = self.request(method, path, **kwargs)
        try:
            return status, json.loads(body.decode("utf-8")) if body else None
        except ValueError:
            return status, {"detail": body[:200].decode("utf-8", "replace")}

    def health(self, timeout: float = 3.0) -> dict[str, Any] | None:
        """The health record, or None when nothing (or something else) answers."""
        try:
            status, info = self.json("GET", "/v1/health", timeout=timeout)
        except OSError:
            return None
        return info if status == 200 and isinstance(info, dict) else None

    def submit(self, a: RawImage, b_prime: RawImage, params: dict[str, Any]) -> str:
        fields: list[tuple[str, str | None, str, bytes]] = [
            ("params", None, "application/json", json.dumps(params).encode()),
        ]
        for name, image in (("a", a), ("b_prime", b_prime)):
            fields.append((name, f"{name}.rgba", "application/octet-stream", image.rgba))
            fields.append((f"{name}_width", None, "text/plain", str(image.width).encode()))
            fields.append((f"{name}_height", None, "text/plain", str(image.height).encode()))
        body, content_type = multipart(fields)
        try:
            status, info = self.json("POST", "/v1/jobs", body=body, content_type=content_type, timeout=300)
        except OSError as err:
            raise EngineError(f"The engine at {self.url} stopped answering while the images were sent "
                              f"({err}). Nothing was changed; run the filter again.") from err
        if status in (200, 201) and isinstance(info, dict) and info.get("id"):
            return str(info["id"])
        raise EngineError(refusal_message(status, info))

    def status(self, job_id: str) -> dict[str, Any]:
        status, info = self.json("GET", f"/v1/jobs/{job_id}", timeout=15)
        if status == 404:
            raise EngineError("The engine no longer knows this job (was it restarted?). Nothing was "
                              "changed; run the filter again.")
        if status != 200 or not isinstance(info, dict):
            raise EngineError(refusal_message(status, info))
        return info

    def result(self, job_id: str, name: str) -> RawResult:
        try:
            status, headers, body = self.request("GET", f"/v1/jobs/{job_id}/result/{name}?format=raw",
                                                 timeout=120)
        except OSError as err:
            raise EngineError(f"The engine stopped while sending the results ({err}). Nothing was "
                              "changed; run the filter again.") from err
        if status != 200:
            try:
                info = json.loads(body.decode("utf-8"))
            except ValueError:
                info = None
            raise EngineError(refusal_message(status, info))
        headers = {k.lower(): v for k, v in headers.items()}
        try:
            width, height = int(headers["x-width"]), int(headers["x-height"])
            channels = int(headers.get("x-channels", "1"))
        except (KeyError, ValueError) as err:
            raise EngineError(f"The engine sent result '{name}' without its size; is the engine "
                              "the same version as the plug-in? Re-run install.sh.") from err
        if len(body) != width * height * channels:
            raise EngineError(f"The engine sent {len(body)} bytes for result '{name}', expected "
                              f"{width}×{height}×{channels}. Nothing was changed; run the filter again.")
        return RawResult(width, height, channels, body)

    def cancel(self, job_id: str) -> None:
        """Best effort: the engine also cancels jobs whose client stops polling."""
        try:
            self.request("DELETE", f"/v1/jobs/{job_id}", timeout=5)
        except OSError:
            pass


def multipart(fields: Iterable[tuple[str, str | None, str, bytes]]) -> tuple[bytes, str]:
    """multipart/form-data body from (name, filename or None, content type, bytes)."""
    boundary = "dia-" + uuid.uuid4().hex
    chunks: list[bytes] = []
    for name, filename, ctype, data in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        chunks.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
                      f"Content-Type: {ctype}\r\n\r\n".encode())
        chunks.append(data)
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def refusal_message(status: int, info: Any) -> str:
    detail = info.get("detail") if isinstance(info, dict) else None
    if not isinstance(detail, str):
        detail = json.dumps(detail) if detail is not None else f"HTTP {status}"
    if status == 401:
        return ("The engine refused the plug-in's token: the engine's runtime file belongs to "
                "another engine. Quit the old engine (or remove the runtime file) and try again.")
    if status == 413:
        return f"The engine refused the images as too large: {detail}. Scale the layers down."
    if status == 429:
        return f"The engine is busy with other jobs ({detail}). Try again when they are done."
    return f"The engine refused the job: {detail}"


def failure_message(error: str | None) -> str:
    text = error or "unknown error"
    low = text.lower()
    if "out of memory" in low or "memoryerror" in low or "oom" in low.split():
        return (f"The engine ran out of memory: {text}. Choose a smaller working size, the "
                "'Fast' preset or the CPU device, and run the filter again. Nothing was changed.")
    return f"The engine failed: {text}. Nothing was changed."


# ---------------------------------------------------------------------------------------------
# Finding or starting the engine


def parse_address(address: str) -> tuple[str | None, str | None, Path | None]:
    """User's 'engine address' → (url, token, runtime file); '' means automatic."""
    address = address.strip()
    if not address:
        return None, None, None
    if "://" not in address:
        return None, None, Path(address).expanduser()
    parts = urllib.parse.urlsplit(address)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS or not parts.port:
        raise EngineError(f"Engine address '{address}' is not usable: the engine only listens on "
                          "this computer, e.g. http://127.0.0.1:8123 (optionally #TOKEN). Leave "
                          "it empty to find or start the engine automatically.")
    return f"http://{parts.hostname}:{parts.port}", parts.fragment or None, None


def engine_from_runtime(path: Path) -> Engine | None:
    info = read_runtime_file(path)
    if info is None:
        return None
    engine = Engine(f"http://127.0.0.1:{info['port']}", str(info["token"]))
    return engine if engine.health() is not None else None


def connect(address: str = "", notify: Notify | None = None, start: bool = True) -> Engine:
    """An engine that answers: the given address, the published one, or one started now."""
    url, token, runtime = parse_address(address)
    if url is not None:
        if token is None:
            info = read_runtime_file(runtime_file_path())
            if info and info.get("port") == urllib.parse.urlsplit(url).port:
                token = str(info["token"])
        if token is None:
            raise EngineError(f"No token for the engine at {url}: add it as {url}#TOKEN (the "
                              f"'token' in the engine's runtime file {runtime_file_path()}).")
        engine = Engine(url, token)
        if engine.health() is None:
            raise EngineError(f"No Deep Image Analogy engine answers at {url}. Start it, or leave "
                              "the engine address empty to start one automatically.")
        return engine
    path = runtime or runtime_file_path()
    engine = engine_from_runtime(path)
    if engine is not None:
        return engine
    if not start:
        raise EngineError(f"No Deep Image Analogy engine is running ({path} is missing or stale). "
                          + start_hint(path))
    return launch(path, notify)


def load_engine_config(path: Path = ENGINE_CONFIG) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def start_hint(runtime: Path) -> str:
    """The exact command that starts the engine by hand, for messages."""
    python = load_engine_config().get("python") or "/path/to/deep-image-analogy/.venv/bin/python"
    env = f"DIA_RUNTIME_FILE={runtime} " if in_flatpak() else ""
    return (f"Start the engine in a terminal with:\n  {env}{python} -m server --port 0\n"
            "and run the filter again (install it first with ./install.sh from the project's "
            "folder if that Python does not exist).")


def launch(runtime: Path, notify: Notify | None = None, timeout: float = START_TIMEOUT_S) -> Engine:
    """Start the engine detached, as install.sh recorded it, and wait until it answers."""
    if in_flatpak():
        raise EngineError("GIMP runs as a Flatpak, which cannot start programs outside its sandbox. "
                          + start_hint(runtime))
    python = load_engine_config().get("python")
    if not python or not Path(python).exists():
        why = (f"the engine's Python {python} does not exist" if python
               else f"the plug-in has no engine configuration ({ENGINE_CONFIG})")
        raise EngineError(f"Could not start the Deep Image Analogy engine: {why}. " + start_hint(runtime))
    runtime.parent.mkdir(parents=True, exist_ok=True)
    log_path = runtime.with_name("engine.log")
    cmd = [python, "-m", "server", "--port", "0", "--idle-exit", "600", "--parent-pid", str(os.getppid())]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}  # GIMP's, not the venv's
    env["DIA_RUNTIME_FILE"] = str(runtime)
    cwd = load_engine_config().get("root")
    with open(log_path, "ab") as log:
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                cwd=cwd if cwd and Path(cwd).is_dir() else None, close_fds=True,
                **detach_kwargs(),
            )
        except OSError as err:
            raise EngineError(f"Could not start the engine ({err}). " + start_hint(runtime)) from err
    started = time.monotonic()
    while True:
        waited = time.monotonic() - started
        if notify:
            notify(None, f"Starting the Deep Image Analogy engine… {waited:.0f} s")
        engine = engine_from_runtime(runtime)
        if engine is not None:
            return engine
        code = proc.poll()
        if code == EXIT_ALREADY_RUNNING and waited <= timeout:
            # Another engine took the runtime file first (two filters started at once): it
            # publishes the file once it is ready; keep waiting for that one.
            time.sleep(0.5)
            continue
        if code is not None:
            raise EngineError(f"The engine exited at start (code {code}): {log_tail(log_path)}\n"
                              + start_hint(runtime))
        if waited > timeout:
            raise EngineError(f"The engine did not answer within {timeout:.0f} s (log: {log_path}). "
                              + start_hint(runtime))
        time.sleep(0.5)


def detach_kwargs() -> dict[str, Any]:
    """Let the engine outlive this plug-in process (GIMP ends it when the filter returns)."""
    if sys.platform == "win32":
        flags = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        return {"creationflags": flags}
    return {"start_new_session": True}


def log_tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.strip().splitlines()[-lines:]) or "(empty log)"


# ---------------------------------------------------------------------------------------------
# Running one job


def run_job(
    engine: Engine, a: RawImage, b_prime: RawImage, params: dict[str, Any], names: Iterable[str],
    notify: Notify | None = None,
) -> tuple[dict[str, RawResult], dict[str, Any]]:
    """Submit, follow progress, fetch every named result; cancel the job on any failure.

    Returns the results and the final job record (report, degraded). Polling also serves as the
    heartbeat: if this process is killed (GIMP's Cancel), the engine abandons the job by itself.
    """
    job_id = engine.submit(a, b_prime, params)
    finished = False
    try:
        info = wait_for(engine, job_id, notify)
        finished = True
        results = {}
        for name in names:
            if notify:
                notify(1.0, f"Deep Image Analogy: receiving {name}")
            results[name] = engine.result(job_id, name)
        return results, info
    finally:
        if not finished:
            engine.cancel(job_id)


def wait_for(engine: Engine, job_id: str, notify: Notify | None) -> dict[str, Any]:
    failures = 0
    while True:
        try:
            info = engine.status(job_id)
            failures = 0
        except OSError as err:
            failures += 1
            if failures >= POLL_FAILURES:
                raise EngineError(f"The engine stopped answering during the job ({err}); it may "
                                  "have crashed or been closed. Nothing was changed; run the filter "
                                  "again.") from err
            time.sleep(POLL_INTERVAL_S)
            continue
        state = info.get("state")
        if notify:
            notify(float(info.get("progress") or 0.0), stage_text(info))
        if state == "done":
            return info
        if state == "failed":
            raise EngineError(failure_message(info.get("error")))
        if state == "cancelled":
            raise EngineError("The job was cancelled in the engine. Nothing was changed.")
        time.sleep(POLL_INTERVAL_S)


def stage_text(info: dict[str, Any]) -> str:
    stage = info.get("stage") or info.get("state") or ""
    if info.get("state") == "queued":
        stage = "waiting for the engine"
    elapsed = info.get("elapsed")
    # Time first: GIMP's status bar cuts long texts at the end.
    when = f" {float(elapsed):.0f} s" if isinstance(elapsed, (int, float)) else ""
    return f"Deep Image Analogy{when}: {stage}"
