"""Finding or starting the engine for the plug-in: the runtime file (read as the engine checks
it), the user's engine address, and starting `python -m server` detached. Standard library only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dia_contract as contract
from dia_contract import flatpak_runtime_file, in_flatpak, runtime_file_path  # noqa: F401
from dia_http import Engine, EngineError

# notify(fraction or None for "busy", text): the plug-in maps it onto GIMP's progress bar.
Notify = Callable[[float | None, str], None]

ENGINE_CONFIG = Path(__file__).resolve().with_name("engine.json")  # written by install.sh
START_TIMEOUT_S = 180.0  # first start imports torch and loads VGG-19 weights
LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
EXIT_ALREADY_RUNNING = 3  # the engine's exit code when another engine owns the runtime file


def read_runtime_file(path: Path) -> dict[str, Any] | None:
    """The engine's port and token, from a file trusted as the engine trusts it (dia_contract)."""
    info = contract.read_runtime_file(path)
    if info is None or not isinstance(info.get("port"), int) or not info.get("token"):
        return None
    return info


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
