"""The plug-in's engine client (standard library only) on the host, and install.sh.

The client is the same file GIMP runs; here it talks to the real engine: through the runtime
file, by starting the engine the way the plug-in does, and with the messages users see.
"""

from __future__ import annotations

import io
import json
import os
import re
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


def load_strokes() -> ModuleType:
    """dia_strokes.py as GIMP loads it (standard library only, beside the plug-in)."""
    sys.path.insert(0, str(PLUGIN_DIR))
    try:
        import dia_strokes
    finally:
        sys.path.remove(str(PLUGIN_DIR))
    return dia_strokes


def engine_svg(counts: list[int], width: int = 40, height: int = 30) -> tuple[str, list[list[float]]]:
    """The engine's own strokes.svg for strokes in stages of `counts`, and the strokes' points."""
    import torch

    from analogy_engine.paint import Strokes, to_svg

    n = sum(counts)
    points = torch.rand(n, 3, 2, generator=torch.Generator().manual_seed(1)) * torch.tensor([width, height])
    stage = torch.tensor([k for k, c in enumerate(counts) for _ in range(c)], dtype=torch.long)
    strokes = Strokes(points, torch.full((n,), 2.0), torch.rand(n, 3), torch.full((n,), 0.9), stage)
    return to_svg(strokes, width, height), points.tolist()


def test_strokes_become_one_path_text_per_stage() -> None:
    import xml.etree.ElementTree as ET

    strokes = load_strokes()
    svg, points = engine_svg([1, 4, 9])
    width, height, stages = strokes.parse_strokes(svg)
    assert (width, height) == (40, 30)
    assert [s.number for s in stages] == [1, 2, 3]
    assert [len(s.paths) for s in stages] == [1, 4, 9]
    assert [strokes.path_name(s, 3) for s in stages][1] == "Painting strokes 2/3 (4)"
    # Painting order kept: the second stage's first path is the engine's second stroke.
    start = [float(v) for v in stages[1].paths[0].split()[1:3]]
    assert start == pytest.approx(points[1][0], abs=0.006)
    text = strokes.stage_svg(stages[1], 100, 80, 10, -3)
    root = ET.fromstring(text)
    assert root.get("viewBox") == "0 0 100 80" and root.get("width") == "100"
    group = root.find("{http://www.w3.org/2000/svg}g")
    assert group.get("transform") == "translate(10,-3)"
    written = [p.get("d") for p in group]
    # Last first: GIMP's importer reverses a merged path's strokes (3.0.4, 3.2.6).
    assert written == list(reversed(stages[1].paths))
    assert "background" not in text and "rect" not in text


@pytest.mark.parametrize("svg, words", [
    ("not svg <", "not valid SVG"),
    ('<html xmlns="http://www.w3.org/1999/xhtml"/>', "not SVG"),
    ('<svg xmlns="http://www.w3.org/2000/svg"><g><path d="M 1 1 Q 2 2 3 3"/></g></svg>', "viewBox"),
])
def test_bad_strokes_are_refused(svg: str, words: str) -> None:
    strokes = load_strokes()
    with pytest.raises(strokes.StrokesError, match=words):
        strokes.parse_strokes(svg)


def test_no_strokes_no_stages() -> None:
    svg, _points = engine_svg([])
    assert load_strokes().parse_strokes(svg) == (40, 30, [])


def test_raw_rgb_to_rgba() -> None:
    result = client.RawResult(2, 1, 3, bytes([1, 2, 3, 4, 5, 6]))
    assert result.rgba() == bytes([1, 2, 3, 255, 4, 5, 6, 255])
    assert result.rgba(bytes([7, 0])) == bytes([1, 2, 3, 7, 4, 5, 6, 0])
    assert result.image() == client.RawImage(2, 1, bytes([1, 2, 3, 255, 4, 5, 6, 255]))
    with pytest.raises(ValueError, match="RGB"):
        client.RawResult(2, 1, 1, b"ab").rgba()


def test_jobs_name_their_parts_as_the_api_does() -> None:
    """docs/http-api.md: frame_1 … frame_N in, frame_0001 … out; image (+ style) in, painting and
    strokes out."""
    image = client.RawImage(8, 8, b"\0" * 256)
    job = client.animate_job(image, [image] * 3, {"preset": "fast"})
    assert job.route == "/v1/animate"
    assert [name for name, _ in job.images] == ["b_prime", "frame_1", "frame_2", "frame_3"]
    assert job.names == ("frame_0001", "frame_0002", "frame_0003") and job.texts == ()
    job = client.paint_job(image, {"strokes": 10})
    assert (job.route, [n for n, _ in job.images], job.names, job.texts) == (
        "/v1/paint", ["image"], ("painting",), ("strokes",))
    assert [n for n, _ in client.paint_job(image, {}, style=image).images] == ["image", "style"]
    job = client.analogy_job(image, image, {}, ["a_prime"])
    assert (job.route, [n for n, _ in job.images], job.names) == ("/v1/jobs", ["a", "b_prime"], ("a_prime",))


def test_within_maps_a_job_onto_part_of_the_bar() -> None:
    seen: list[tuple] = []
    notify = client.within(lambda f, t: seen.append((f, t)), 0.6, 1.0)
    notify(0.0, "a")
    notify(0.5, "b")
    notify(None, "c")
    assert seen == [(0.6, "a"), (pytest.approx(0.8), "b"), (None, "c")]
    assert client.within(None, 0, 1) is None


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
    job = client.analogy_job(client.RawImage(40, 32, a.tobytes()), client.RawImage(36, 30, b_prime.tobytes()),
                             params, ["a_prime", "b", "mask_a_prime", "mask_b"])
    results, info = client.run_job(connected, job, notify=lambda f, t: seen.append((f, t)))
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
        client.run_job(connected, client.analogy_job(client.RawImage(8, 8, b"\0" * 256),
                                                     client.RawImage(8, 8, b"\0" * 256),
                                                     {"mode": "no-such-mode"}, ["a_prime"]))


def test_bad_token_is_explained(engine: Engine) -> None:
    wrong = client.Engine(engine.url, "not-the-token")
    assert wrong.health() is None
    with pytest.raises(client.EngineError, match="token"):
        wrong.submit(client.RawImage(8, 8, b"\0" * 256), client.RawImage(8, 8, b"\0" * 256), {})


def test_an_older_engine_is_named_as_such(engine: Engine) -> None:
    """A route the engine does not have (an engine from before painting or animation)."""
    connected = client.connect(f"{engine.url}#{engine.token}", start=False)
    image = client.RawImage(8, 8, b"\0" * 256)
    with pytest.raises(client.EngineError, match="older than the plug-in.*install.sh"):
        connected.submit_to("/v1/no-such-kind", [("image", image)], {})


@pytest.mark.slow  # a real paint job
def test_paint_job_through_the_client(engine: Engine) -> None:
    connected = client.connect(f"{engine.url}#{engine.token}", start=False)
    image = photos.photo(40, 32)
    seen: list[tuple] = []
    job = client.paint_job(client.RawImage(40, 32, image.tobytes()),
                           {"strokes": 20, "brush": "marker", "device": "cpu"})
    results, info = client.run_job(connected, job, notify=lambda f, t: seen.append((f, t)))
    assert info["state"] == "done"
    painting = results["painting"]
    assert (painting.width, painting.height, painting.channels) == (40, 32, 3)
    width, height, stages = load_strokes().parse_strokes(results["strokes"])
    assert (width, height) == (40, 32) and sum(len(s.paths) for s in stages) == 20
    assert seen and all(t.startswith("Painting") for _f, t in seen)
    # The same as what a plain HTTP client gets.
    want, svg = engine.paint(image, {"strokes": 20, "brush": "marker", "device": "cpu"})
    np.testing.assert_array_equal(np.frombuffer(painting.data, np.uint8).reshape(32, 40, 3), want)
    assert results["strokes"] == svg


@pytest.mark.slow  # a real animation job
def test_animate_job_through_the_client(engine: Engine) -> None:
    connected = client.connect(f"{engine.url}#{engine.token}", start=False)
    world = photos.photo(48, 32, seed=4)
    frames = [world[:, i * 2:i * 2 + 40].copy() for i in range(3)]
    b_prime = photos.painting(36, 30)
    params = {"mode": "photo-to-style", "preset": "fast", "size": 32, "device": "cpu"}
    seen: list[tuple] = []
    job = client.animate_job(client.RawImage(36, 30, b_prime.tobytes()),
                             [client.RawImage(40, 32, f.tobytes()) for f in frames], params)
    results, info = client.run_job(connected, job, notify=lambda f, t: seen.append((f, t)))
    assert sorted(results) == ["frame_0001", "frame_0002", "frame_0003"]
    assert info["results"] == ["frame_0001", "frame_0002", "frame_0003"]
    fractions = [f for f, _t in seen if f is not None]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    # The stage text names the frame (which ones a 0.3 s poll sees depends on the machine's speed).
    assert any(re.search(r"frame [123]/3: ", t) for _f, t in seen), seen
    want = engine.animate(b_prime, frames, {**params, "independent": False})
    for name, expected in zip(sorted(results), want, strict=True):
        got = np.frombuffer(results[name].data, np.uint8).reshape(32, 40, 3)
        np.testing.assert_array_equal(got, expected)


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
