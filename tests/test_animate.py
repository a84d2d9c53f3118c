"""analogy_engine.animate: motion, occlusion, flicker, the CLI contract, bad input, cancel."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_runner import run_main
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

import make_sequence as ms  # noqa: E402

from analogy_engine import AnalogyParams, Cancelled, InputError  # noqa: E402
from analogy_engine.animate import animate, lucas_kanade, occlusion  # noqa: E402


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).float() / 255


def test_motion_of_a_known_pan_is_within_a_fifth_of_a_pixel() -> None:
    camera = ms.pan(3, 96, (2.5, -1.5))
    frames = camera.frames(ms.photo(camera.world_side))
    flow = lucas_kanade(_tensor(frames[1]), _tensor(frames[0]))  # (dy, dx)
    error = np.linalg.norm(flow.permute(1, 2, 0).numpy()[..., ::-1] - camera.backward(1), axis=-1)
    assert float(np.median(error[6:-6, 6:-6])) < 0.2


def test_occlusion_marks_what_comes_into_view_and_little_else() -> None:
    camera = ms.pan(2, 96, (6.0, 0.0))  # the camera moves right: new content on the right
    frames = camera.frames(ms.photo(camera.world_side))
    current, previous = _tensor(frames[1]), _tensor(frames[0])
    occluded = occlusion(lucas_kanade(current, previous), lucas_kanade(previous, current))
    assert float(occluded[:, -4:].float().mean()) > 0.9  # came into view (true strip: 6 px)
    assert float(occluded[:, :-10].float().mean()) < 0.05  # tracked


def _known_pan(side: int = 64, n: int = 4) -> tuple[list[np.ndarray], np.ndarray]:
    from known_answer import stylise

    camera = ms.pan(n, side, (2.0, 1.0))
    world = ms.photo(camera.world_side)
    return camera.frames(world), ms.known_answer(camera, world, stylise).b_prime


@pytest.mark.slow  # about 60 s on 2 idle cores (two runs of 4 frames at 64 px)
def test_coherent_frames_flicker_at_most_half_as_much_as_independent_ones(engine) -> None:
    frames, b_prime = _known_pan()
    params = AnalogyParams(size=64, preset="fast")
    coherent = animate(frames, b_prime, params, engine)
    independent = animate(frames, b_prime, params, engine, independent=True)
    ratio = coherent.report["warping_error"]["mean"] / independent.report["warping_error"]["mean"]
    assert ratio <= 0.5, (coherent.report["warping_error"], independent.report["warping_error"])
    assert [f.shape for f in coherent.frames] == [f.shape for f in frames]


@pytest.mark.slow  # the first frame runs whole before frame 2 can be cancelled
def test_cancel_inside_a_later_frame(engine) -> None:
    frames, b_prime = _known_pan(n=2)
    seen: list[str] = []

    def progress(fraction: float, stage: str) -> None:
        seen.append(stage)

    with pytest.raises(Cancelled):
        animate(frames, b_prime, AnalogyParams(size=48, preset="fast"), engine, progress=progress,
                cancel=lambda: any(s.startswith("frame 2/2") for s in seen))
    assert any(s.startswith("frame 2/2") for s in seen)


def test_frames_of_different_sizes_are_refused(engine) -> None:
    frames, b_prime = _known_pan(n=2)
    with pytest.raises(InputError, match="one size"):
        animate([frames[0], frames[1][:-8]], b_prime, AnalogyParams(size=48, preset="fast"), engine)
    with pytest.raises(InputError, match="at least 2"):
        animate(frames[:1], b_prime, AnalogyParams(size=48, preset="fast"), engine)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "analogy_engine.animate", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def sequence_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    folder = tmp_path_factory.mktemp("sequence")
    frames, b_prime = _known_pan(side=48, n=3)
    paths = []
    for i, frame in enumerate(frames):
        paths.append(folder / f"in_{i}.png")
        Image.fromarray(frame).save(paths[-1])
    Image.fromarray(b_prime).save(folder / "b_prime.png")
    return folder / "b_prime.png", paths


@pytest.mark.slow
def test_cli_writes_frames_and_report(sequence_files, tmp_path: Path) -> None:
    b_prime, frames = sequence_files
    out = tmp_path / "out"
    done = _cli(str(b_prime), *map(str, frames), "--out", str(out), "--size", "48", "--preset", "fast",
                "--device", "cpu", "--quiet")
    assert done.returncode == 0, done.stderr
    for i in range(1, 4):
        with Image.open(out / f"frame_{i:04d}.png") as image:
            assert image.size == (48, 48)
    report = json.loads((out / "report.json").read_text())
    assert report["mode"] == "coherent" and report["frames"] == 3
    assert [f["frame"] for f in report["per_frame"]] == [1, 2, 3]
    assert report["per_frame"][0]["warping_error"] is None
    assert all(f["seconds"] > 0 for f in report["per_frame"])
    assert report["warping_error"]["mean"] >= 0


@pytest.mark.parametrize("case", ["sizes", "one", "unreadable"])
def test_cli_bad_input_is_one_line_and_exit_2(case: str, sequence_files, tmp_path: Path,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    """main(argv) in this process (tests/cli_runner.py); the `python -m` run is the slow test above."""
    from analogy_engine.animate.__main__ import main

    b_prime, frames = sequence_files
    if case == "sizes":
        small = tmp_path / "small.png"
        Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(small)
        inputs = [str(frames[0]), str(small)]
    elif case == "one":
        inputs = [str(frames[0])]
    else:
        broken = tmp_path / "broken.png"
        broken.write_bytes(b"not an image at all")
        inputs = [str(frames[0]), str(broken)]
    args = [str(b_prime), *inputs, "--out", str(tmp_path / "out"), "--device", "cpu", "--quiet"]
    done = run_main(main, args, capfd)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert not (tmp_path / "out").exists()
