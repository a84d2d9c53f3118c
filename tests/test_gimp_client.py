"""The plug-in's engine client (standard library only) on the host, and install.sh.

The client is the same file GIMP runs; here it talks to the real engine: through the runtime
file, by starting the engine the way the plug-in does, and with the messages users see.
"""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent / "gimp"))
import photos  # noqa: E402
from plugin_client import load_plugin_client  # noqa: E402
from server_harness import Engine  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PLUGIN_DIR = REPO / "gimp_plugin" / "deep_image_analogy"


def load_client(folder: Path = PLUGIN_DIR) -> ModuleType:
    """dia_client from `folder` (its engine.json is the one next to it)."""
    return load_plugin_client(folder)


client = load_client()


def install(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / "install.sh"), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "GIMP_CONFIG_DIR": str(config)}, check=True)


# ---------------------------------------------------------------------------------------------
# Pure client logic


def test_runtime_file_rules_match_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from server import runtime_file

    monkeypatch.delenv("FLATPAK_ID", raising=False)
    for env in ({"DIA_RUNTIME_FILE": "/x/e.json"}, {"XDG_RUNTIME_DIR": "/run/user/7"}, {}):
        assert client.runtime_file_path(env) == runtime_file.default_path(env)


def test_flatpak_uses_a_folder_visible_from_both_sides() -> None:
    path = client.runtime_file_path({"FLATPAK_ID": "org.gimp.GIMP", "XDG_RUNTIME_DIR": "/run/user/7"})
    assert path == Path.home() / ".var/app/org.gimp.GIMP/cache/deep-image-analogy/engine.json"


@pytest.mark.parametrize("address, expected", [
    ("", (None, None, None)),
    ("http://127.0.0.1:8123", ("http://127.0.0.1:8123", None, None)),
    ("http://localhost:8123/#abc", ("http://localhost:8123", "abc", None)),
    ("/tmp/engine.json", (None, None, Path("/tmp/engine.json"))),
])
def test_parse_address(address: str, expected: tuple) -> None:
    assert client.parse_address(address) == expected


@pytest.mark.parametrize("address", ["http://example.com:80", "https://127.0.0.1:8123", "http://127.0.0.1"])
def test_parse_address_refuses_what_cannot_be_the_engine(address: str) -> None:
    with pytest.raises(client.EngineError, match="not usable"):
        client.parse_address(address)


def test_messages_say_what_to_do() -> None:
    assert "smaller working size" in client.failure_message("CUDA out of memory. Tried to allocate 2 GiB")
    assert "Scale the layers down" in client.refusal_message(413, {"detail": "too many pixels"})
    assert "busy" in client.refusal_message(429, {"detail": "queue full"})
    assert "another engine" in client.refusal_message(401, {"detail": "bad token"})
    assert client.refusal_message(422, {"detail": "size must be …"}).endswith("size must be …")


def test_no_engine_and_no_config_gives_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIA_RUNTIME_FILE", str(tmp_path / "none.json"))
    monkeypatch.delenv("FLATPAK_ID", raising=False)
    monkeypatch.setattr(client.dia_engine, "ENGINE_CONFIG", tmp_path / "missing-engine.json")
    with pytest.raises(client.EngineError) as err:
        client.connect("")
    assert "no engine configuration" in str(err.value)
    assert "-m server --port 0" in str(err.value)
    with pytest.raises(client.EngineError, match="No Deep Image Analogy engine is running"):
        client.connect("", start=False)


# ---------------------------------------------------------------------------------------------
# Against the real engine


@pytest.fixture
def engine(engine_process: Engine) -> Iterator[Engine]:
    """The session's engine process (conftest.py), left idle after each test."""
    yield engine_process
    engine_process.wait_idle()


@pytest.mark.slow  # over 20 s on 2 cores
def test_job_through_the_runtime_file(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIA_RUNTIME_FILE", str(engine.runtime_file))
    monkeypatch.delenv("FLATPAK_ID", raising=False)
    a, b_prime = photos.photo(40, 32), photos.painting(36, 30)
    params = {"mode": "photo-to-style", "preset": "fast", "size": 32, "device": "cpu"}
    seen: list[tuple] = []
    connected = client.connect("")
    results, info = client.run_job(
        connected, client.RawImage(40, 32, a.tobytes()), client.RawImage(36, 30, b_prime.tobytes()),
        params, ["a_prime", "b", "mask_a_prime", "mask_b"], notify=lambda f, t: seen.append((f, t)))
    assert info["state"] == "done"
    assert (results["a_prime"].width, results["a_prime"].height, results["a_prime"].channels) == (40, 32, 3)
    assert (results["b"].width, results["b"].height, results["b"].channels) == (36, 30, 3)
    assert results["mask_b"].channels == 1 and len(results["mask_b"].data) == 36 * 30
    assert seen and all(t.startswith("Deep Image Analogy") for _f, t in seen)
    # The same as what a plain HTTP client gets for a PNG upload of the same pixels (PNG result).
    answer = engine.submit(a, b_prime, params)
    assert answer.status_code == 201, answer.text
    status, _ = engine.wait(answer.json()["id"], timeout=600)
    assert status["state"] == "done", status
    png = engine.get(f"/v1/jobs/{status['id']}/result/a_prime")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(png.content)) as image:
        want = np.asarray(image)
    got = np.frombuffer(results["a_prime"].data, np.uint8).reshape(32, 40, 3)
    np.testing.assert_array_equal(got, want)


def test_explicit_address_with_token(engine: Engine) -> None:
    connected = client.connect(f"{engine.url}#{engine.token}", start=False)
    assert connected.health()["version"]
    with pytest.raises(client.EngineError, match="refused the job"):
        client.run_job(connected, client.RawImage(8, 8, b"\0" * 256), client.RawImage(8, 8, b"\0" * 256),
                       {"mode": "no-such-mode"}, ["a_prime"])


def test_bad_token_is_explained(engine: Engine) -> None:
    wrong = client.Engine(engine.url, "not-the-token")
    assert wrong.health() is None
    with pytest.raises(client.EngineError, match="token"):
        wrong.submit(client.RawImage(8, 8, b"\0" * 256), client.RawImage(8, 8, b"\0" * 256), {})


@pytest.mark.slow  # an engine process of its own, started by the installed plug-in
def test_plugin_starts_the_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No engine running: the installed plug-in starts `python -m server` and waits for it."""
    install(tmp_path / "GIMP", "--plugin-only")
    folder = tmp_path / "GIMP" / "3.0" / "plug-ins" / "deep_image_analogy"
    installed = load_client(folder)
    runtime = tmp_path / "run" / "engine.json"
    monkeypatch.setenv("DIA_RUNTIME_FILE", str(runtime))
    monkeypatch.delenv("FLATPAK_ID", raising=False)
    messages: list[str] = []
    started = time.monotonic()
    connected = installed.connect("", notify=lambda _f, text: messages.append(text))
    try:
        assert connected.health() is not None
        assert messages and messages[0].startswith("Starting the Deep Image Analogy engine")
        info = json.loads(runtime.read_text())
        # Detached: its own session, so GIMP's Cancel (which kills the plug-in) leaves it alone.
        assert os.getsid(info["pid"]) == info["pid"]
        assert stat.S_IMODE(runtime.stat().st_mode) == 0o600
        print(f"engine started by the client in {time.monotonic() - started:.1f} s")
        # A second connect finds the running engine instead of starting another.
        assert installed.connect("", start=False).url == connected.url
    finally:
        info = json.loads(runtime.read_text()) if runtime.exists() else None
        if info:
            os.kill(info["pid"], signal.SIGTERM)


# ---------------------------------------------------------------------------------------------
# install.sh


def test_install_sh_plugin_idempotent_and_uninstall(tmp_path: Path) -> None:
    config = tmp_path / "GIMP"
    first = install(config, "--plugin-only")
    assert "restart GIMP" in first.stdout
    target = config / "3.0" / "plug-ins" / "deep_image_analogy"
    main = target / "deep_image_analogy.py"
    assert main.stat().st_mode & stat.S_IXUSR
    assert main.read_text().startswith("#!/usr/bin/env python3")
    assert {p.name for p in target.iterdir()} >= {"dia_client.py", "dia_http.py", "dia_engine.py",
                                                   "dia_job.py", "dia_layers.py", "dia_options.py",
                                                   "dia_ui.py", "dia_contract.py", "engine.json"}
    # The contract arrives as a file (the checkout's link resolved), so the folder can move.
    contract = target / "dia_contract.py"
    assert not contract.is_symlink()
    assert contract.read_bytes() == (REPO / "analogy_engine" / "contract.py").read_bytes()
    recorded = json.loads((target / "engine.json").read_text())
    assert recorded["python"] == str(REPO / ".venv" / "bin" / "python")
    # Every 3.x profile, and a second run changes nothing but refreshes the files.
    (config / "3.2").mkdir()
    (target / "stale_module.py").write_text("old")
    install(config, "--plugin-only")
    assert (config / "3.2" / "plug-ins" / "deep_image_analogy" / "deep_image_analogy.py").exists()
    assert not (target / "stale_module.py").exists()
    # Someone else's plug-in stays.
    other = config / "3.0" / "plug-ins" / "other" / "other.py"
    other.parent.mkdir()
    other.write_text("x")
    gone = install(config, "--uninstall")
    assert "removed" in gone.stdout
    assert not target.exists() and not (config / "3.2" / "plug-ins" / "deep_image_analogy").exists()
    assert other.exists()
    assert "not installed" in install(config, "--uninstall").stdout
